"""A corpus of hostile and broken requests: none may produce a 5xx, a stack trace or a stored resource."""

from __future__ import annotations

import json
import socket
from collections import Counter
from typing import Any

import pymongo
import requests
from conftest import FHIR_JSON, observation

from fhirserver.fhir.resource_types import SUPPORTED_TYPES

BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                            for i in range(1, 10))
                  + ']><Observation xmlns="http://hl7.org/fhir"><status value="&lol9;"/></Observation>')
XXE = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       '<Observation xmlns="http://hl7.org/fhir"><status value="&xxe;"/></Observation>')


def _nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


def corpus() -> list[tuple[str, str, str, bytes, dict[str, str]]]:
    """(name, method, path, body, headers): at least 100 requests."""
    ok = observation()
    js = {"Content-Type": FHIR_JSON}
    cases: list[tuple[str, str, str, bytes, dict[str, str]]] = []

    def body(name: str, raw: bytes | str, path: str = "/Observation", method: str = "POST",
             headers: dict[str, str] | None = None) -> None:
        data = raw.encode() if isinstance(raw, str) else raw
        cases.append((name, method, path, data, js if headers is None else headers))

    def resource(name: str, change: dict[str, Any], path: str = "/Observation", method: str = "POST") -> None:
        body(name, json.dumps({**ok, **change}, ensure_ascii=False), path, method)

    # malformed JSON
    for i, raw in enumerate(['{', '}', '[]', 'null', '"text"', '123', 'true', '{"resourceType":}', "{'a': 1}",
                             '{resourceType: "Observation"}', '{"resourceType":"Observation",}', '/* c */ {}',
                             '{"resourceType":"Observation"} trailing', '{"status": NaN}', '{"status": Infinity}',
                             '{"resourceType":"Observation","status":"final","status":"final"}', '',
                             ' \n\t ', '{"a":"\x01"}', '\ufeff{"resourceType":"Observation"}', '{"a":1e999999}',
                             '{"resourceType":"Observation","status":"final","code":{"text":"x"}',
                             '{"resourceType":"Observation","status":"\\ud800","code":{"text":"x"}}']):
        body(f"malformed {i}", raw)
    # wrong types and shapes
    for i, change in enumerate([
            {"status": 1}, {"status": None}, {"status": ["final"]}, {"status": "bogus"}, {"code": "718-7"},
            {"code": []}, {"code": {}}, {"subject": []}, {"subject": {"reference": 5}},
            {"valueQuantity": {"value": "135"}},
            {"valueQuantity": {"value": True}}, {"identifier": {}}, {"identifier": [{"system": 1}]},
            {"effectiveDateTime": 20260101}, {"effectiveDateTime": "2026-13-45"}, {"effectiveDateTime": "yesterday"},
            {"resourceType": 5}, {"resourceType": "Patient"}, {"resourceType": "Observation\u200b"},
            {"meta": "x"}, {"meta": {"profile": ["not a url"]}}, {"extension": [{}]}, {"extension": [{"url": 1}]},
            {"id": {"$gt": ""}}, {"unknownElement": 1}, {"_status": {"id": []}}, {"text": {"div": "<script>"}},
            {"status": "final\u0000"}, {"issued": "2026-01-01T00:00:00"},
            {"category": [{"coding": [{"code": {"$ne": None}}]}]}, {"$where": "sleep(1000)"}, {"sp": {"owner": ["x"]}},
            {"a.b": 1}, {"component": [{"code": {"text": "x"}, "valueQuantity": {"value": "NaN"}}]}]):
        resource(f"wrong type {i}: {next(iter(change))}", change)
    # deep nesting
    for depth in (65, 200, 5000, 100_000):
        body(f"nested arrays {depth}", f'{{"resourceType":"Observation","x":{_nested(depth)}}}')
        objects = '{"a":' * depth + "1" + "}" * depth
        body(f"nested objects {depth}", '{"resourceType":"Observation","x":' + objects + "}")
    deep_extension: dict[str, Any] = {"url": "http://x", "valueString": "v"}
    for _ in range(70):
        deep_extension = {"url": "http://x", "extension": [deep_extension]}
    resource("nested extensions 70", {"extension": [deep_extension]})
    # huge bodies
    body("17 MB body", b'{"resourceType":"Observation","x":"' + b"a" * (17 * 1024 * 1024) + b'"}')
    body("17 MB of spaces", b" " * (17 * 1024 * 1024))
    # invalid UTF-8 and odd encodings
    for i, raw in enumerate([b'{"resourceType":"Observation","status":"\xff\xfe"}', b'\xc0\xaf',
                             b'{"resourceType":"Observation","status":"\xed\xa0\x80"}',
                             '{"resourceType":"Observation"}'.encode("utf-16"), b"\x00" * 32]):
        body(f"bad utf-8 {i}", raw)
    # XML in every form
    for i, (raw, ctype) in enumerate([(BILLION_LAUGHS, "application/fhir+xml"), (BILLION_LAUGHS, "application/xml"),
                                      (XXE, "application/fhir+xml"), (XXE, "text/xml"), (BILLION_LAUGHS, FHIR_JSON)]):
        body(f"xml {i}", raw, headers={"Content-Type": ctype})
    # wrong content types and methods
    body("form body", "status=final", headers={"Content-Type": "application/x-www-form-urlencoded"})
    body("multipart", "--x\r\n\r\n--x--", headers={"Content-Type": "multipart/form-data; boundary=x"})
    body("no content type", json.dumps(ok), headers={})
    body("text/plain", json.dumps(ok), headers={"Content-Type": "text/plain"})
    body("patch not json-patch", json.dumps({"op": "replace"}), "/Observation/x", "PATCH",
         {"Content-Type": "application/json-patch+json"})
    body("put id mismatch", json.dumps({**ok, "id": "other"}), "/Observation/one", "PUT")
    body("put bad id", json.dumps({**ok, "id": "a b"}), "/Observation/a%20b", "PUT")
    body("put operator id", json.dumps({**ok, "id": "$gt"}), "/Observation/$gt", "PUT")
    # injection through URLs (reads and searches; answers may be 200 with nothing, never 5xx)
    for i, query in enumerate(['_id[$ne]=x', 'code=$where', "subject=Patient/x'||'1'=='1", '_sort=$natural',
                               '_elements=__proto__', '_count=-1', '_count=99999999999999999999', '_page=garbage',
                               'name:contains=.*(a+)+$', 'subject:Patient.name={"$gt":""}', 'date=ge{"$gt":1}',
                               '_has:Observation:subject:code:below=x', 'value-quantity=1e99999',
                               '_include=*:*', '_id=' + "a," * 5000, '%ff=%fe', 'code=%00', '_filter=status eq x',
                               'subject.$where=1', '_summary=__class__']):
        cases.append((f"query {i}", "GET", f"/Observation?{query}", b"", {}))
    for i, path in enumerate(['/Observation/{"$gt":""}', "/Observation/../../etc/passwd", "/Observation/%00",
                              "/Observation/" + "x" * 5000, "/$where", "/Observation/x/_history/-1",
                              "/observation", "/Observation/x/$recognize"]):
        cases.append((f"path {i}", "GET", path, b"", {}))
    # a transaction that is half valid: all or nothing
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1f3e0c2e-0000-4000-8000-000000000001", "resource": ok,
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {**ok, "status": "nonsense"}, "request": {"method": "POST", "url": "Observation"}}]}
    body("half-valid transaction", json.dumps(bundle), "")
    body("transaction with operator url", json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": ok, "request": {"method": "POST", "url": "Observation?$where=1"}}]}), "")
    body("bundle of wrong type", json.dumps({"resourceType": "Bundle", "type": "searchset"}), "")
    same_full_url = {"fullUrl": "urn:uuid:1f3e0c2e-0000-4000-8000-000000000009", "resource": ok,
                     "request": {"method": "POST", "url": "Observation"}}
    for kind in ("transaction", "batch"):  # bdl-7: a fullUrl names one entry
        body(f"{kind} with one fullUrl twice", json.dumps({"resourceType": "Bundle", "type": kind,
                                                           "entry": [same_full_url, same_full_url]}), "")
    # numbers beyond what FHIR (18 digits) and the store hold
    body("30-digit integer", '{"resourceType":"Observation","status":"final","code":{"text":"x"},'
                             '"valueInteger":123456789012345678901234567890}')
    body("unsigned 64-bit integer", '{"resourceType":"Observation","status":"final","code":{"text":"x"},'
                                    '"valueQuantity":{"value":18446744073709551615}}')
    # other FHIR versions
    body("fhirVersion 3.0", json.dumps(ok), headers={"Content-Type": "application/fhir+json; fhirVersion=3.0"})
    cases.append(("accept fhirVersion 5.0", "GET", "/Observation?_count=1", b"",
                  {"Accept": "application/fhir+json; fhirVersion=5.0"}))
    return cases


def _stored(db: pymongo.database.Database) -> dict[str, int]:
    return {t: db[t].count_documents({}) for t in SUPPORTED_TYPES if t != "AuditEvent"}


def test_bad_input_corpus(base: str, store: pymongo.database.Database) -> None:
    cases = corpus()
    assert len(cases) >= 100
    before = _stored(store)
    statuses: Counter[int] = Counter()
    problems = []
    with requests.Session() as session:
        for name, method, path, raw, headers in cases:
            response = session.request(method, f"{base}{path}", data=raw or None,
                                       headers={"Accept": FHIR_JSON, **headers}, timeout=60)
            if name == "accept fhirVersion 5.0":
                assert response.status_code == 406, response.text
            statuses[response.status_code] += 1
            text = response.text
            if response.status_code >= 500:
                problems.append(f"{name}: HTTP {response.status_code} {text[:200]}")
            elif "Traceback" in text or 'File "/' in text:
                problems.append(f"{name}: stack trace in the response")
            elif response.status_code >= 400 and response.json().get("resourceType") != "OperationOutcome":
                problems.append(f"{name}: error without an OperationOutcome")
            elif method != "GET" and response.status_code < 300:
                problems.append(f"{name}: accepted ({response.status_code})")
    after = _stored(store)
    stored = {t: after[t] - before[t] for t in after if after[t] != before[t]}
    print(f"\nbad-input corpus: {len(cases)} requests, statuses {dict(sorted(statuses.items()))}, "
          f"5xx: {sum(v for k, v in statuses.items() if k >= 500)}, stored resources: {sum(stored.values())}")
    assert not problems, "\n".join(problems)
    assert not stored, stored


def test_malformed_http_framing_is_a_400_not_a_500(base: str) -> None:
    """A chunked body whose chunk size is not hexadecimal: the request is refused as malformed."""
    host, port = base.split("//", 1)[1].split("/", 1)[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"POST /fhir/Observation HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\n{}\r\n0\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:300]
