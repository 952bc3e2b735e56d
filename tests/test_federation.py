"""Federation across three real nodes (Sichuan, Chongqing, Guizhou), each a `fhirserver serve` process with its
own embedded store, plus misbehaving peers (stopped, slow, garbage, failing) served on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pymongo
import pytest
import requests
from conftest import FHIR_JSON, ServerProcess, audit_settled, free_port, new_server

C = "http://hr.example.org/fhir"
ITEM = f"{C}/CodeSystem/hr-item"
NATIONAL_ID = "urn:oid:2.16.156.10011.1.3"
PERSON = "510104198001010022"
TIMEOUT_S = 2.0
CST = timezone(timedelta(hours=8))


def _when(days_ago: int) -> str:
    return (datetime.now(CST) - timedelta(days=days_ago)).strftime("%Y-%m-%dT10:00:00+08:00")


def _hospital(oid: str, name: str, region: str) -> list[dict[str, Any]]:
    org = {"resourceType": "Organization", "id": oid, "name": name,
           "type": [{"coding": [{"system": f"{C}/CodeSystem/hr-institution-level", "code": "3A"}]}],
           "extension": [{"url": f"{C}/StructureDefinition/hr-region",
                          "valueCoding": {"system": f"{C}/CodeSystem/hr-region", "code": region}}]}
    affiliations = [{"resourceType": "OrganizationAffiliation", "id": f"{oid}-{code}", "active": True,
                     "period": {"start": "2022-01-01"}, "organization": {"reference": "Organization/network"},
                     "participatingOrganization": {"reference": f"Organization/{oid}"},
                     "code": [{"coding": [{"system": f"{C}/CodeSystem/hr-affiliation", "code": code}]}],
                     "specialty": [{"coding": [{"system": ITEM, "code": c}]} for c in ("LAB", "IMG")]}
                    for code in ("network-member", "qc-accredited")]
    return [{"resourceType": "Organization", "id": "network", "name": "互认网络"}, org, *affiliations]


def _patient(pid: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "name": [{"text": "王芳"}],
            "identifier": [{"system": NATIONAL_ID, "value": PERSON}]}


def _report(rid: str, patient: str, hospital: str, item: str, days_ago: int) -> dict[str, Any]:
    return {"resourceType": "DiagnosticReport", "id": rid, "status": "final",
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.99", "value": f"acc-{rid}"}],
            "code": {"coding": [{"system": ITEM, "code": item}]}, "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": _when(days_ago), "issued": _when(days_ago),
            "performer": [{"reference": f"Organization/{hospital}"}]}


def _load(server: ServerProcess, resources: list[dict[str, Any]]) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}
    response = requests.post(server.base, json=bundle, headers={"Content-Type": FHIR_JSON}, timeout=120)
    assert response.status_code == 200, response.text[:500]


def _endpoint(eid: str, name: str, address: str, region: str | None = None, **extra: Any) -> dict[str, Any]:
    endpoint = {"resourceType": "Endpoint", "id": eid, "status": "active", "name": name, "address": address,
                "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                                   "code": "hl7-fhir-rest"},
                "payloadType": [{"text": "FHIR R4"}], **extra}
    if region:
        endpoint["extension"] = [{"url": f"{C}/StructureDefinition/hr-region",
                                  "valueCoding": {"system": f"{C}/CodeSystem/hr-region", "code": region}}]
    return endpoint


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    env = {"FHIRSERVER_PEER_TIMEOUT": str(TIMEOUT_S), "FHIRSERVER_PEER_COOLDOWN": "2",
           "FHIRSERVER_REORDER_RULE": "off"}
    handles = {}
    for name, region in (("sichuan", "510000"), ("chongqing", "500000"), ("guizhou", "520000")):
        handle = new_server(tmp_path_factory.mktemp(name), FHIRSERVER_NODE_ID=name, FHIRSERVER_REGION=region, **env)
        handle.workers = 1  # one breaker per node, so the breaker test counts every failure
        handles[name] = handle.start()
    try:
        sc, cq, gz = handles["sichuan"], handles["chongqing"], handles["guizhou"]
        _load(sc, [*_hospital("sc-req", "四川省人民医院", "510100"), _patient("sc-p"),
                   _report("sc-ct-old", "sc-p", "sc-req", "CT-CHEST", 25),
                   _endpoint("peer-cq", "chongqing", cq.base, "500000"),
                   _endpoint("peer-gz", "guizhou", gz.base, "520000")])
        _load(cq, [*_hospital("cq-hosp", "重庆医科大学附属第一医院", "500000"), _patient("cq-p"),
                   _report("cq-ct", "cq-p", "cq-hosp", "CT-CHEST", 10),
                   _report("cq-lab", "cq-p", "cq-hosp", "LAB-CHEM-040", 5),
                   _report("cq-dx", "cq-p", "cq-hosp", "DX-CHEST", 30)])
        _load(gz, [*_hospital("gz-hosp", "贵州省人民医院", "520000"), _patient("gz-p"),
                   _report("gz-ct", "gz-p", "gz-hosp", "CT-CHEST", 40),
                   {**_report("gz-dx", "gz-p", "gz-hosp", "DX-CHEST", 30),
                    "identifier": [{"system": "urn:oid:2.16.156.10011.1.99", "value": "acc-cq-dx"}]}])
        yield handles
    finally:
        for handle in handles.values():
            handle.stop()


def duplicate_check(node: ServerProcess, item: str, **headers: str) -> tuple[requests.Response, float]:
    order = {"resourceType": "ServiceRequest", "status": "draft", "intent": "order",
             "code": {"coding": [{"system": ITEM, "code": item}]}, "subject": {"reference": "Patient/sc-p"},
             "requester": {"reference": "Organization/sc-req"}}
    started = time.monotonic()
    response = requests.post(f"{node.base}/ServiceRequest/$duplicate-check", timeout=60,
                             json={"resourceType": "Parameters", "parameter": [{"name": "request", "resource": order}]},
                             headers={"Content-Type": FHIR_JSON, **headers})
    return response, time.monotonic() - started


def issues(bundle: dict[str, Any]) -> dict[str, str]:
    """implicated result URL -> recognizable / not-recognizable."""
    out = {}
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        if resource["resourceType"] == "DetectedIssue":
            code = next(c["code"] for c in resource["code"]["coding"] if c["system"].endswith("hr-detected-issue"))
            out[resource["implicated"][0]["reference"]] = code
    return out


def warnings(bundle: dict[str, Any]) -> list[str]:
    return [i["diagnostics"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == "OperationOutcome"
            for i in e["resource"]["issue"]]


def test_chengdu_doctor_finds_the_chongqing_chest_ct(nodes: dict[str, ServerProcess]) -> None:
    sc, cq, gz = nodes["sichuan"], nodes["chongqing"], nodes["guizhou"]
    response, _ = duplicate_check(sc, "CT-CHEST")
    assert response.status_code == 200, response.text
    found = issues(response.json())
    assert found[f"{cq.base}/DiagnosticReport/cq-ct"] == "recognizable"
    # Guizhou is not in the Sichuan-Chongqing agreement: its CT is shown, and not recognizable here
    assert found[f"{gz.base}/DiagnosticReport/gz-ct"] == "not-recognizable"
    details = [e["resource"]["detail"] for e in response.json()["entry"]
               if e["resource"]["resourceType"] == "DetectedIssue"]
    assert any("重庆市" in d and "可互认" in d for d in details)
    results = {e["fullUrl"] for e in response.json()["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"}
    assert f"{cq.base}/DiagnosticReport/cq-ct" in results
    assert not warnings(response.json())
    metrics = requests.get(sc.base.rsplit("/fhir", 1)[0] + "/metrics", timeout=30).text
    assert 'fhirserver_peer_request_seconds_count{outcome="ok",peer="chongqing"}' in metrics


def test_recognize_sees_a_newer_result_on_a_peer(nodes: dict[str, ServerProcess]) -> None:
    """Sichuan's own CT of 25 days ago is superseded by Chongqing's of 10 days ago."""
    sc = nodes["sichuan"]
    response = requests.post(f"{sc.base}/DiagnosticReport/sc-ct-old/$recognize", timeout=60, json={
        "resourceType": "Parameters", "parameter": [{"name": "requester",
                                                     "valueReference": {"reference": "Organization/sc-req"}}]},
        headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 200, response.text
    parts = response.json()["parameter"]
    assert next(p["valueBoolean"] for p in parts if p["name"] == "recognizable") is False
    reasons = {c["code"] for p in parts if p["name"] == "reason" for c in p["valueCodeableConcept"]["coding"]}
    assert "superseded" in reasons


def test_item_outside_the_agreement_is_not_recognized(nodes: dict[str, ServerProcess]) -> None:
    sc, cq = nodes["sichuan"], nodes["chongqing"]
    response, _ = duplicate_check(sc, "LAB-CHEM-040")
    found = issues(response.json())
    assert found == {f"{cq.base}/DiagnosticReport/cq-lab": "not-recognizable"}


def test_federated_search_merges_and_deduplicates(nodes: dict[str, ServerProcess]) -> None:
    sc, cq, gz = nodes["sichuan"], nodes["chongqing"], nodes["guizhou"]
    bundle = requests.get(f"{sc.base}/DiagnosticReport", params={"patient": "Patient/sc-p", "_federated": "true"},
                          headers={"Accept": FHIR_JSON}, timeout=60).json()
    urls = [e["fullUrl"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert f"{cq.base}/DiagnosticReport/cq-ct" in urls and f"{gz.base}/DiagnosticReport/gz-ct" in urls
    # the same accession number on two nodes is one result, listed once
    assert len([u for u in urls if u.endswith(("/cq-dx", "/gz-dx"))]) == 1
    origins = {e["fullUrl"]: e["extension"][0]["valueReference"]["display"] for e in bundle["entry"]}
    assert origins[f"{cq.base}/DiagnosticReport/cq-ct"] == "chongqing (500000)"
    by_identifier = requests.get(f"{sc.base}/DiagnosticReport", timeout=60, params={
        "patient.identifier": f"{NATIONAL_ID}|{PERSON}", "item": "CT-CHEST", "_federated": "true"}).json()
    assert {e["fullUrl"] for e in by_identifier["entry"]} == {f"{cq.base}/DiagnosticReport/cq-ct",
                                                              f"{gz.base}/DiagnosticReport/gz-ct",
                                                              f"{sc.base}/DiagnosticReport/sc-ct-old"}
    nameless = requests.get(f"{sc.base}/DiagnosticReport", params={"name": "王芳", "_federated": "true"}, timeout=30)
    assert nameless.status_code == 400  # patients are matched by identifier only, never by name


# -- misbehaving peers ------------------------------------------------------------------------------------
class FakePeer:
    """A real HTTP server on 127.0.0.1 whose behaviour the test sets: ok, slow, garbage, error."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict[str, str]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                peer.requests.append({**dict(self.headers), "path": self.path})
                if peer.mode == "slow":
                    time.sleep(8)
                if peer.mode == "error":
                    self._send(500, b'{"resourceType":"OperationOutcome"}')
                elif peer.mode == "garbage":
                    self._send(200, b"<html><body>It works!</body></html>", "text/html")
                elif peer.mode == "huge":
                    self._send(200, b'{"resourceType":"Bundle","type":"searchset","x":"' + b"a" * (9 << 20) + b'"}')
                elif peer.mode in ("paged", "paged-elsewhere") and self.path.startswith("/fhir/DiagnosticReport"):
                    page = int(self.path.rsplit("page=", 1)[1]) if "page=" in self.path else 1
                    target = peer.base if peer.mode == "paged" else "http://198.51.100.7/fhir"
                    report = {"resourceType": "DiagnosticReport", "id": f"p{page}", "status": "final",
                              "code": {"coding": [{"system": ITEM, "code": "CT-CHEST"}]},
                              "subject": {"reference": "Patient/x"}, "issued": _when(100 + page)}
                    self._send(200, json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [
                        {"resource": report, "search": {"mode": "match"}}], "link": [
                        {"relation": "next", "url": f"{target}/DiagnosticReport?page={page + 1}"}]}).encode())
                elif peer.mode == "no-person" and "person=" in self.path:  # a peer of another make
                    self._send(400, b'{"resourceType":"OperationOutcome","issue":[{"severity":"error",'
                                    b'"code":"not-supported","diagnostics":"Unknown search parameter person"}]}')
                elif peer.mode == "no-person" and self.path.startswith("/fhir/DiagnosticReport"):
                    report = {"resourceType": "DiagnosticReport", "id": "other-make", "status": "final",
                              "code": {"coding": [{"system": ITEM, "code": "CT-CHEST"}]},
                              "subject": {"reference": "Patient/x"}, "issued": _when(3)}
                    self._send(200, json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [
                        {"resource": report, "search": {"mode": "match"}}]}).encode())
                elif peer.mode == "invalid":
                    self._send(200, json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [
                        {"resource": {"resourceType": "DiagnosticReport", "id": "x", "status": "bogus"},
                         "search": {"mode": "match"}}]}).encode())
                else:
                    self._send(200, b'{"resourceType":"Bundle","type":"searchset","total":0}')

            def _send(self, status: int, body: bytes, ctype: str = FHIR_JSON) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout): expected for the slow mode

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake(nodes: dict[str, ServerProcess]) -> Iterator[FakePeer]:
    peer = FakePeer()
    sc = nodes["sichuan"]
    eid = f"fake-{uuid.uuid4().hex[:8]}"
    _load(sc, [_endpoint(eid, "fake", peer.base, "530000", header=["Authorization: Bearer peer-secret-token"])])
    yield peer
    requests.delete(f"{sc.base}/Endpoint/{eid}", timeout=30)
    peer.close()


def test_stopped_peer_gives_partial_results_and_a_warning(nodes: dict[str, ServerProcess]) -> None:
    sc, cq = nodes["sichuan"], nodes["chongqing"]
    eid = f"gone-{uuid.uuid4().hex[:8]}"
    _load(sc, [_endpoint(eid, "stopped", f"http://127.0.0.1:{free_port()}/fhir")])
    try:
        response, elapsed = duplicate_check(sc, "CT-CHEST")
    finally:
        requests.delete(f"{sc.base}/Endpoint/{eid}", timeout=30)
    assert response.status_code == 200
    assert issues(response.json())[f"{cq.base}/DiagnosticReport/cq-ct"] == "recognizable"
    assert any("stopped" in w and "missing" in w for w in warnings(response.json()))
    assert elapsed < TIMEOUT_S + 3


def test_slow_peer_is_cut_at_the_timeout(nodes: dict[str, ServerProcess], fake: FakePeer) -> None:
    fake.mode = "slow"
    response, elapsed = duplicate_check(nodes["sichuan"], "CT-CHEST")
    assert response.status_code == 200
    assert any(f"within {TIMEOUT_S:g} s" in w for w in warnings(response.json()))
    assert issues(response.json())[f"{nodes['chongqing'].base}/DiagnosticReport/cq-ct"] == "recognizable"
    assert elapsed < TIMEOUT_S + 3, elapsed


@pytest.mark.parametrize("mode,words", [("garbage", "not FHIR JSON"), ("error", "HTTP 500"),
                                        ("invalid", "invalid resource")])
def test_broken_peer_is_reported_not_propagated(nodes: dict[str, ServerProcess], fake: FakePeer, mode: str,
                                                words: str) -> None:
    fake.mode = mode
    response, _ = duplicate_check(nodes["sichuan"], "CT-CHEST")
    assert response.status_code == 200
    assert any(words in w for w in warnings(response.json())), warnings(response.json())
    assert issues(response.json())[f"{nodes['chongqing'].base}/DiagnosticReport/cq-ct"] == "recognizable"


def test_oversized_peer_answer_is_cut(nodes: dict[str, ServerProcess], fake: FakePeer) -> None:
    fake.mode = "huge"
    response, _ = duplicate_check(nodes["sichuan"], "CT-CHEST")
    assert response.status_code == 200
    assert any("more than 8 MB" in w for w in warnings(response.json())), warnings(response.json())


@pytest.mark.parametrize("mode,pages", [("paged", 5), ("paged-elsewhere", 1)])
def test_peer_paging_is_bounded_and_stays_on_the_peer(nodes: dict[str, ServerProcess], fake: FakePeer, mode: str,
                                                      pages: int) -> None:
    """An endless chain of next links stops at 5 pages; a next link to another host is never followed."""
    fake.mode = mode
    response, _ = duplicate_check(nodes["sichuan"], "CT-CHEST")
    from_fake = sorted(u for u in issues(response.json()) if u.startswith(fake.base))
    assert from_fake == [f"{fake.base}/DiagnosticReport/p{i}" for i in range(1, pages + 1)]
    assert not warnings(response.json())  # a followed foreign link would have hung and failed the peer


def test_breaker_opens_after_repeated_failures_and_recovers(nodes: dict[str, ServerProcess],
                                                             fake: FakePeer) -> None:
    sc = nodes["sichuan"]
    fake.mode = "error"
    for _ in range(3):
        duplicate_check(sc, "CT-CHEST")
    seen = len(fake.requests)
    response, _ = duplicate_check(sc, "CT-CHEST")
    assert any("circuit breaker open" in w for w in warnings(response.json()))
    assert len(fake.requests) == seen  # the open breaker sent nothing
    fake.mode = "ok"
    time.sleep(2.5)  # FHIRSERVER_PEER_COOLDOWN=2: the next call probes
    response, _ = duplicate_check(sc, "CT-CHEST")
    assert len(fake.requests) > seen
    assert not warnings(response.json())


def test_peer_credentials_are_sent_but_never_shown(nodes: dict[str, ServerProcess], fake: FakePeer) -> None:
    sc = nodes["sichuan"]
    duplicate_check(sc, "CT-CHEST", **{"X-Request-Id": "trace-fed-1"})
    assert any(h.get("Authorization") == "Bearer peer-secret-token" for h in fake.requests)
    assert any(h.get("X-Request-Id") == "trace-fed-1" for h in fake.requests)
    listed = requests.get(f"{sc.base}/Endpoint?name=fake", timeout=30).text
    assert "peer-secret-token" not in listed and '"header"' not in listed
    # not even its writer gets it back: neither the PUT's answer nor a transaction's entry
    secret = _endpoint("peer-secret-echo", "echo", "http://127.0.0.1:9/fhir", header=["Authorization: Bearer s3cr3t"])
    put = requests.put(f"{sc.base}/Endpoint/peer-secret-echo", json={**secret, "status": "off"}, timeout=30,
                       headers={"Content-Type": FHIR_JSON})
    assert put.status_code in (200, 201) and "s3cr3t" not in put.text and put.json()["name"] == "echo"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {**secret, "status": "off"}, "request": {"method": "PUT", "url": "Endpoint/peer-secret-echo"}}]}
    answer = requests.post(sc.base, json=bundle, timeout=30, headers={"Content-Type": FHIR_JSON})
    assert answer.status_code == 200 and "s3cr3t" not in answer.text
    assert answer.json()["entry"][0]["resource"]["name"] == "echo"  # the entry does carry the resource


def test_correlation_id_reaches_the_peer_audit(nodes: dict[str, ServerProcess]) -> None:
    sc, cq = nodes["sichuan"], nodes["chongqing"]
    duplicate_check(sc, "CT-CHEST", **{"X-Request-Id": "trace-fed-2"})
    for node in (sc, cq):
        with pymongo.MongoClient(node.mongo_uri()) as client:
            audit_settled(client[node.db_name])
            audited = client[node.db_name]["AuditEvent"].count_documents({"text": {"$regex": "trace-fed-2"}})
        assert audited >= 1, node.base
    time.sleep(0.5)  # access log lines are written after the response
    for node in (sc, cq):  # ... and the same id is in both nodes' access logs
        assert "rid=trace-fed-2" in node.log_path.read_text(errors="replace"), node.base




def test_peers_are_asked_by_the_identity_that_links_the_person_here(nodes: dict[str, ServerProcess]) -> None:
    """A record without the national ID, linked to one that has it, still reaches the peers' results of the person;
    a record whose ID fails its check character is never sent to peers (it would tie unrelated records there)."""
    sc, cq = nodes["sichuan"], nodes["chongqing"]
    linked = {"resourceType": "Patient", "id": "sc-p-linked", "name": [{"text": "王芳"}],
              "link": [{"other": {"reference": "Patient/sc-p"}, "type": "seealso"}]}
    wrong = {"resourceType": "Patient", "id": "sc-p-wrong", "name": [{"text": "王芳"}],
             "identifier": [{"system": NATIONAL_ID, "value": PERSON[:17] + "1"}]}  # the right one ends in 2
    _load(sc, [linked, wrong])
    # Chongqing holds an unrelated record with the same mistyped ID, and a result under it
    _load(cq, [{**wrong, "id": "cq-p-wrong"}, _report("cq-ct-wrong", "cq-p-wrong", "cq-hosp", "CT-CHEST", 3)])

    def remote(patient: str) -> set[str]:
        order = {"resourceType": "ServiceRequest", "status": "draft", "intent": "order",
                 "code": {"coding": [{"system": ITEM, "code": "CT-CHEST"}]}, "subject": {"reference": patient},
                 "requester": {"reference": "Organization/sc-req"}}
        response = requests.post(f"{sc.base}/ServiceRequest/$duplicate-check", timeout=60, headers={
            "Content-Type": FHIR_JSON}, json={"resourceType": "Parameters", "parameter": [
                {"name": "request", "resource": order}]})
        assert response.status_code == 200, response.text
        return {url for url in issues(response.json()) if url.startswith("http")}

    assert f"{cq.base}/DiagnosticReport/cq-ct" in remote("Patient/sc-p-linked")
    assert remote("Patient/sc-p-wrong") == set()


def test_the_peer_applies_its_own_person_rules(nodes: dict[str, ServerProcess]) -> None:
    """Peers are asked `person=<id>`, which each resolves with its own person index: Chongqing's record linked to its
    ID-carrying record (no ID of its own) is found; its record with the right ID but a contradicting birth date is
    not (on the peer, as it would not be here)."""
    sc, cq = nodes["sichuan"], nodes["chongqing"]
    _load(cq, [{"resourceType": "Patient", "id": "cq-p-seealso", "name": [{"text": "王芳"}],
                "link": [{"other": {"reference": "Patient/cq-p"}, "type": "seealso"}]},
               {**_patient("cq-p-contra"), "birthDate": "1990-05-05"},  # the ID says 1980-01-01
               _report("cq-ct-seealso", "cq-p-seealso", "cq-hosp", "CT-CHEST", 4),
               _report("cq-ct-contra", "cq-p-contra", "cq-hosp", "CT-CHEST", 2)])
    direct = requests.get(f"{cq.base}/DiagnosticReport", params={"person": f"{NATIONAL_ID}|{PERSON}",
                                                                  "item": "CT-CHEST"}, timeout=30)
    assert direct.status_code == 200, direct.text
    assert {e["resource"]["id"] for e in direct.json().get("entry", [])} == {"cq-ct", "cq-ct-seealso"}
    records = requests.get(f"{cq.base}/Patient", params={"person": f"{NATIONAL_ID}|{PERSON}"}, timeout=30).json()
    assert {e["resource"]["id"] for e in records.get("entry", [])} == {"cq-p", "cq-p-seealso"}
    response, _ = duplicate_check(sc, "CT-CHEST")
    found = issues(response.json())
    assert f"{cq.base}/DiagnosticReport/cq-ct-seealso" in found
    assert f"{cq.base}/DiagnosticReport/cq-ct-contra" not in found
    bad = requests.get(f"{cq.base}/DiagnosticReport", params={"person": "urn:mrn:x|1"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["person"], bad.text
    assert "system|value" in bad.json()["issue"][0]["diagnostics"]


def test_a_peer_without_the_person_parameter_is_asked_by_the_chain(nodes: dict[str, ServerProcess],
                                                                   fake: FakePeer) -> None:
    """A peer of another make refuses `person` (400); it is asked `patient.identifier` instead, and its result
    counts like any other peer's."""
    fake.mode = "no-person"
    response, _ = duplicate_check(nodes["sichuan"], "CT-CHEST")
    assert response.status_code == 200
    assert f"{fake.base}/DiagnosticReport/other-make" in issues(response.json())
    paths = [r["path"] for r in fake.requests if r["path"].startswith("/fhir/DiagnosticReport")]
    assert any("person=" in p for p in paths) and any("patient.identifier=" in p for p in paths), paths
    assert not any(fake.base in w for w in warnings(response.json())), warnings(response.json())
