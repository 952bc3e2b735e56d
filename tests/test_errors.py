"""Bad input: the right status, an OperationOutcome a vendor's engineer understands, nothing stored."""

from __future__ import annotations

import json
import os

import pytest
from conftest import FHIR_JSON, observation, post, stored_counts, unique

VALID = json.dumps(observation("x"))

# (name, method, path, body bytes, headers, expected status, words the diagnostics must contain)
BAD_WRITES = [
    ("malformed JSON", "POST", "/Observation", b'{"resourceType": "Observation",', {}, 400, "not valid JSON"),
    ("empty body", "POST", "/Observation", b"", {}, 400, "empty"),
    ("not an object", "POST", "/Observation", b"[1,2]", {}, 400, "JSON object"),
    ("duplicate key", "POST", "/Observation",
     b'{"resourceType":"Observation","status":"final","status":"preliminary","code":{"text":"x"}}', {}, 400,
     "repeats the property 'status'"),
    ("NaN", "POST", "/Observation", b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
                                    b'"valueQuantity":{"value":NaN}}', {}, 400, "NaN"),
    ("not UTF-8", "POST", "/Observation", '{"resourceType":"Observation","code":{"text":"血常规"}}'.encode("gbk"), {},
     400, "UTF-8"),
    ("type mismatch", "POST", "/Observation", json.dumps({"resourceType": "Patient"}).encode(), {}, 400,
     "holds a Patient but the URL is for Observation"),
    ("no resourceType", "POST", "/Observation", b'{"status":"final"}', {}, 400, "no 'resourceType'"),
    ("bogus status", "POST", "/Observation", json.dumps(observation(None, status="bogus")).encode(), {}, 400,
     "not a valid code for Observation.status"),
    ("unknown element", "POST", "/Observation", json.dumps(observation(None, colour="red")).encode(), {}, 400,
     "Unknown element 'colour'"),
    ("missing required", "POST", "/Observation", b'{"resourceType":"Observation","status":"final"}', {}, 400,
     "Required element 'code'"),
    ("bad date", "POST", "/Observation", json.dumps(observation(None, effectiveDateTime="2024-13-45")).encode(), {},
     400, "not a valid FHIR dateTime"),
    ("wrong JSON type", "POST", "/Observation",
     json.dumps(observation(None, valueQuantity={"value": "high"})).encode(), {}, 400, "valueQuantity.value"),
    ("empty array", "POST", "/Observation", json.dumps({**observation(None), "identifier": []}).encode(), {}, 400,
     "empty array"),
    ("XML body", "POST", "/Observation", b"<Observation/>", {"Content-Type": "application/fhir+xml"}, 415, "XML"),
    ("form body", "POST", "/Observation", b"a=b", {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     "application/fhir+json"),
    ("no content type", "POST", "/Observation", VALID.encode(), {"Content-Type": ""}, 415, "Content-Type"),
    ("unknown type", "POST", "/Unicorn", VALID.encode(), {}, 404, "not supported"),
    ("PUT id mismatch", "PUT", "/Observation/abc", json.dumps(observation(None, id="xyz")).encode(), {}, 400,
     "differs from the id in the URL"),
    ("PUT without id", "PUT", "/Observation/abc", VALID.encode(), {}, 400, "must carry its id"),
    ("PUT invalid id", "PUT", "/Observation/bad_id!", json.dumps(observation(None, id="bad_id!")).encode(), {}, 400,
     "not a valid FHIR id"),
    ("PUT overlong id", "PUT", "/Observation/" + "a" * 65, json.dumps(observation(None, id="a" * 65)).encode(), {},
     400, "not a valid FHIR id"),
    ("bad If-Match", "PUT", "/Observation/abc", json.dumps(observation(None, id="abc")).encode(),
     {"If-Match": "yesterday"}, 400, "If-Match"),
    ("If-Match on missing", "PUT", "/Observation/never-there", json.dumps(observation(None, id="never-there")).encode(),
     {"If-Match": 'W/"1"'}, 412, "does not exist"),
    ("If-None-Exist operator injection", "POST", "/Observation", VALID.encode(),
     {"If-None-Exist": 'identifier[$ne]=1'}, 400, "identifier[$ne]"),
    ("If-None-Exist other type", "POST", "/Observation", VALID.encode(), {"If-None-Exist": "Patient?identifier=1"},
     400, "must be for Observation"),
    ("If-None-Exist modifier", "POST", "/Observation", VALID.encode(), {"If-None-Exist": "identifier:exact=x"},
     400, "Modifier"),
    ("If-None-Exist empty value", "POST", "/Observation", VALID.encode(), {"If-None-Exist": "identifier="}, 400,
     "has no value"),
]


@pytest.mark.parametrize(("name", "method", "path", "body", "headers", "status", "words"), BAD_WRITES,
                         ids=[case[0] for case in BAD_WRITES])
def test_bad_write_is_refused_with_operation_outcome_and_stores_nothing(
        http, base, store, name, method, path, body, headers, status, words):
    before = stored_counts(store, "Observation")
    response = http.request(method, base + path, data=body, headers={"Content-Type": FHIR_JSON, **headers})
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(FHIR_JSON)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    text = " ".join(i["diagnostics"] for i in outcome["issue"])
    assert words in text
    assert "Traceback" not in response.text and "pymongo" not in response.text
    assert stored_counts(store, "Observation") == before


def test_validation_errors_name_the_element(http, base):
    response = post(http, base, observation(None, status="bogus", effectiveDateTime="2024-02-30T25:00:00Z"))
    expressions = [e for issue in response.json()["issue"] for e in issue.get("expression", [])]
    assert "Observation.status" in expressions
    assert "Observation.effectiveDateTime" in expressions


def test_body_too_large_is_413(http, base, store):
    before = stored_counts(store, "Observation")
    huge = observation(None, note=[{"text": "x" * (17 * 1024 * 1024)}])
    response = post(http, base, huge)
    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-long"
    assert stored_counts(store, "Observation") == before


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/Observation/does-not-exist", 404),
    ("GET", "/Observation/does-not-exist/_history/1", 404),
    ("GET", "/Observation/x/_history/notanumber", 404),
    ("GET", "/Unicorn/1", 404),
    ("GET", "/observation/1", 404),
    ("GET", "/fhir-typo/metadata", 404),
    ("POST", "/Observation/abc", 405),
    ("DELETE", "/metadata", 405),
    ("POST", "/Observation/abc/_history", 405),
])
def test_error_statuses_are_operation_outcomes(http, base, method, path, status):
    url = base + path if not path.startswith("/fhir-typo") else base.replace("/fhir", "") + path
    response = http.request(method, url)
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"
    if status == 405:
        assert response.headers["Allow"]


def test_xml_only_accept_is_406(http, base):
    response = http.get(f"{base}/metadata", headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 406
    assert response.json()["resourceType"] == "OperationOutcome"
    assert http.get(f"{base}/metadata?_format=xml").status_code == 406


def test_trailing_slash_is_not_an_html_redirect(http, base):
    response = http.get(f"{base}/Observation/", allow_redirects=False)
    assert response.status_code == 200
    assert response.json()["resourceType"] == "Bundle"


def test_search_reports_unknown_parameters_and_rejects_operator_values(http, base):
    unknown = http.get(f"{base}/Observation?colour=red", headers={"Prefer": "handling=strict"})
    assert unknown.status_code == 400 and "colour" in unknown.json()["issue"][0]["diagnostics"]
    ignored = http.get(f"{base}/Observation?colour=red&_count=1").json()  # by default: ignored, and said so
    assert any("colour" in e["resource"]["issue"][0]["diagnostics"] for e in ignored["entry"]
               if e["search"]["mode"] == "outcome")
    ident = unique()
    post(http, base, observation(ident))
    injected = http.get(f"{base}/Observation", params={"identifier": '{"$gt": ""}'})
    assert injected.status_code == 200 and "entry" not in injected.json()
    assert http.get(f"{base}/Observation", params={"_id": "$where"}).status_code == 400
    assert http.get(f"{base}/Observation", params={"identifier": "x" * 600}).status_code == 400


def test_raw_utf8_in_the_url_gets_an_operation_outcome_not_gunicorns_html(base):
    """The HTTP parser refuses it before Flask runs; the answer must still be FHIR."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(f"GET {parts.path}/Observation?code:text=血常规 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"application/fhir+json" in head
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert "percent-encoded" in outcome["issue"][0]["diagnostics"]


def test_a_newcomers_mistakes_get_one_clear_sentence(http, base):
    """GET /fhir (a system search), a type-level POST of an instance operation, and a bad $statistics date are each
    answered plainly."""
    root = http.get(base, params={"_count": "1"})
    assert root.status_code == 200 and root.json()["type"] == "searchset", root.text
    everything = http.post(f"{base}/Patient/$everything", json={"resourceType": "Parameters"},
                           headers={"Content-Type": FHIR_JSON})
    assert everything.status_code == 404, everything.text
    assert "Patient/<id>/$everything" in everything.json()["issue"][0]["diagnostics"]
    stats = http.get(f"{base}/$statistics", params={"period-start": "bogus"})
    assert stats.status_code == 400
    said = stats.json()["issue"][0]
    assert "gebogus" not in said["diagnostics"] and "'bogus'" in said["diagnostics"]
    assert said["expression"] == ["period-start"]


def test_start_up_mistakes_get_one_sentence_and_exit_2(server, tmp_path):
    """The port taken, the data folder used by a running server, a file as data folder, a folder that cannot be
    created: each is one sentence on stderr and exit code 2, before anything starts, never a traceback."""
    import os
    import socket
    import subprocess
    import sys

    from conftest import free_port

    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "FHIRSERVER_AUTH": "off"}
        return subprocess.run([sys.executable, "-m", "fhirserver", "serve", *args], capture_output=True, text=True,
                              timeout=60, env=env)

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    cases: list[tuple[tuple[str, ...], str]] = [
        (("--port", str(taken.getsockname()[1]), "--data-dir", str(tmp_path / "d1")), "already in use"),
        (("--port", str(free_port()), "--data-dir", str(server.data_dir)), "another server already uses"),
        (("--port", str(free_port()), "--data-dir", str(a_file)), "is a file, not a folder"),
        (("--port", str(free_port()), "--data-dir", "/proc/no-such/data"), "cannot be written"),
    ]
    if os.environ.get("FHIRSERVER_MONGODB_URI"):
        cases = cases[:1]  # the data folder matters to the embedded engine only
    try:
        for args, words in cases:
            answer = serve(*args)
            assert answer.returncode == 2, (args, answer.stderr[-2000:])
            assert words in answer.stderr and "Traceback" not in answer.stderr, answer.stderr[-2000:]
    finally:
        taken.close()


CONFIGURATION_MISTAKES = [
    ({"FHIRSERVER_AUTH": "on"}, "FHIRSERVER_AUTH=on needs FHIRSERVER_AUTH_JWKS"),
    ({"FHIRSERVER_AUTH": "on", "FHIRSERVER_AUTH_HS256_SECRET": "development-secret-of-at-least-32-chars"},
     "FHIRSERVER_AUTH=on needs FHIRSERVER_AUTH_ISSUER"),
    ({"FHIRSERVER_AUTH": "maybe"}, "FHIRSERVER_AUTH is on or off"),
    ({"FHIRSERVER_MAX_COUNT": "many"}, "FHIRSERVER_MAX_COUNT must be an integer, got 'many'"),
    ({"FHIRSERVER_DEFAULT_COUNT": "600", "FHIRSERVER_MAX_COUNT": "100"}, "cannot exceed FHIRSERVER_MAX_COUNT"),
    ({"FHIRSERVER_BASE_URL": "ftp://fhir.example.cn"}, "FHIRSERVER_BASE_URL must start with http:// or https://"),
    ({"FHIRSERVER_REORDER_RULE": "sometimes"}, "FHIRSERVER_REORDER_RULE is enforce, warn or off"),
    ({"FHIRSERVER_CONSENT_CAPTURE": "verbal"}, "FHIRSERVER_CONSENT_CAPTURE is attested or patient"),
    ({"FHIRSERVER_CONSENT_DAYS": "1000"}, "FHIRSERVER_CONSENT_DAYS is at most 366"),
    ({"FHIRSERVER_MONGODB_DB": "a/b"}, "FHIRSERVER_MONGODB_DB 'a/b' is not a valid database name"),
    ({"FHIRSERVER_AUTH_DEV_LOGIN": "yes"}, "FHIRSERVER_AUTH_DEV_LOGIN is on or off"),
    ({"FHIRSERVER_AUTH": "on", "FHIRSERVER_AUTH_JWKS": "/nonexistent/jwks.json", "FHIRSERVER_AUTH_ISSUER": "x",
      "FHIRSERVER_BASE_URL": "http://127.0.0.1:9/fhir", "FHIRSERVER_AUTH_DEV_LOGIN": "on"},
     "FHIRSERVER_AUTH_DEV_LOGIN=on signs with FHIRSERVER_AUTH_HS256_SECRET"),
    ({"FHIRSERVER_HOOK_ATTEMPTS": "0"}, "FHIRSERVER_HOOK_ATTEMPTS must be at least 1"),
]


@pytest.mark.parametrize(("env", "words"), CONFIGURATION_MISTAKES, ids=[w[:30] for _, w in CONFIGURATION_MISTAKES])
def test_each_configuration_mistake_is_one_sentence_and_exit_2(tmp_path, env, words):
    """`serve` with a setting config.py refuses: exit 2, the setting named in one line on stderr, no traceback,
    nothing started (the data folder stays empty)."""
    import subprocess
    import sys

    from conftest import free_port

    clean = {k: v for k, v in os.environ.items() if not k.startswith("FHIRSERVER_")}
    answer = subprocess.run([sys.executable, "-m", "fhirserver", "serve", "--port", str(free_port()), "--data-dir",
                             str(tmp_path / "data")], capture_output=True, text=True, timeout=60,
                            env={**clean, "FHIRSERVER_AUTH": "off", **env})
    assert answer.returncode == 2, answer.stderr[-2000:]
    lines = [line for line in answer.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], answer.stderr[-2000:]
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_an_engine_that_cannot_start_says_why_in_its_own_words(tmp_path):
    """The embedded engine's storage path is taken by a file: `serve` exits 2 with the engine's own last error line
    inline (not only "see engine.out")."""
    import subprocess
    import sys

    from conftest import free_port

    if os.environ.get("FHIRSERVER_MONGODB_URI"):
        pytest.skip("the embedded engine is not used with FHIRSERVER_MONGODB_URI")
    data = tmp_path / "data"
    data.mkdir()
    (data / "wiredtiger").write_text("not a folder")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FHIRSERVER_")}
    answer = subprocess.run([sys.executable, "-m", "fhirserver", "serve", "--port", str(free_port()), "--data-dir",
                             str(data)], capture_output=True, text=True, timeout=120,
                            env={**clean, "FHIRSERVER_AUTH": "off"})
    assert answer.returncode == 2, answer.stderr[-2000:]
    assert "the embedded engine exited (FileExistsError" in answer.stderr, answer.stderr[-2000:]
    assert "Traceback" not in answer.stderr
