"""Authentication, authorization, consent and audit, end to end against a server with FHIRSERVER_AUTH=on.

The JWT matrix covers the ways trusted FHIR servers have been fooled (alg none, HS/RS confusion, unknown kid);
the access matrix crosses callers x patients' consent states x interactions and counts over- and under-sharing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import pymongo
import pytest
import requests
from conftest import FHIR_JSON, ServerProcess, audit_settled, free_port, new_server, observation, spooled_audit
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pymongo.read_concern import ReadConcern

ISSUER = "https://auth.test.example"
SECRET = "development-secret-of-at-least-32-chars"
C = "http://hr.example.org/fhir"
REGION = f"{C}/CodeSystem/hr-region"
EMERGENCY = "患者昏迷，急诊抢救需要既往检查"


class Keys:
    def __init__(self, folder: Path) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        jwks = {"keys": [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key())), "kid": "rs1",
                          "alg": "RS256", "use": "sig"},
                         {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key())), "kid": "es1",
                          "alg": "ES256", "use": "sig"}]}
        self.path = folder / "jwks.json"
        self.path.write_text(json.dumps(jwks))

    def rsa_public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Keys]]:
    folder = tmp_path_factory.mktemp("secure")
    keys = Keys(folder)
    handle = new_server(folder)
    handle.extra_env.update({"FHIRSERVER_AUTH": "on", "FHIRSERVER_AUTH_ISSUER": ISSUER,
                             "FHIRSERVER_AUTH_JWKS": str(keys.path), "FHIRSERVER_AUTH_HS256_SECRET": SECRET,
                             "FHIRSERVER_BASE_URL": f"http://127.0.0.1:{handle.port}/fhir",
                             "FHIRSERVER_REORDER_RULE": "off"})
    handle.start()
    yield handle, keys
    handle.stop()


def claims(server: ServerProcess, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": server.base, "sub": "client-1", "iat": now, "nbf": now - 5, "exp": now + 600,
            "scope": "system/*.cruds", "organization": "Organization/sec-a"}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def hs(server: ServerProcess, **extra: Any) -> str:
    return jwt.encode(claims(server, **extra), SECRET, algorithm="HS256")


def call(server: ServerProcess, method: str, path: str, token: str | None, body: Any = None,
         **headers: str) -> requests.Response:
    h = {"Accept": FHIR_JSON, **headers}
    if token:
        h["Authorization"] = f"Bearer {token}"
    if body is not None:
        h["Content-Type"] = FHIR_JSON
    return requests.request(method, f"{server.base}{path}", headers=h, timeout=30,
                            data=None if body is None else json.dumps(body, ensure_ascii=False).encode())


def _unsigned(payload: dict[str, Any], header: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}."


def _hmac_forged(payload: dict[str, Any], secret: bytes) -> str:
    """What an attacker sends when a server might verify HS256 with the RSA public key as the secret."""
    signing_input = _unsigned(payload, {"alg": "HS256", "typ": "JWT", "kid": "rs1"})[:-1]
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


# -- the JWT matrix ----------------------------------------------------------------------------------------
def test_jwt_matrix(secure: tuple[ServerProcess, Keys]) -> None:
    server, keys = secure
    now = int(time.time())
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases: list[tuple[str, str | None, int]] = [
        ("valid HS256", hs(server), 200),
        ("valid RS256", jwt.encode(claims(server), keys.rsa, algorithm="RS256", headers={"kid": "rs1"}), 200),
        ("valid ES256", jwt.encode(claims(server), keys.ec, algorithm="ES256", headers={"kid": "es1"}), 200),
        ("no token", None, 401),
        ("expired", hs(server, exp=now - 3600, iat=now - 7200, nbf=now - 7200), 401),
        ("not yet valid", hs(server, nbf=now + 3600), 401),
        ("wrong issuer", hs(server, iss="https://evil.example"), 401),
        ("wrong audience", hs(server, aud="https://other.example/fhir"), 401),
        ("no exp", hs(server, exp=None), 401),
        ("alg none", _unsigned(claims(server), {"alg": "none", "typ": "JWT"}), 401),
        ("alg None, kid of a real key", _unsigned(claims(server), {"alg": "None", "kid": "rs1"}), 401),
        ("HS/RS confusion: HS256 keyed with the RSA public key",
         _hmac_forged(claims(server), keys.rsa_public_pem()), 401),
        ("RS256 header on an ES key", jwt.encode(claims(server), keys.rsa, algorithm="RS256",
                                                 headers={"kid": "es1"}), 401),
        ("bad signature", hs(server)[:-4] + ("AAAA" if not hs(server).endswith("AAAA") else "BBBB"), 401),
        ("signed by an unknown RSA key", jwt.encode(claims(server), other_rsa, algorithm="RS256",
                                                    headers={"kid": "rs1"}), 401),
        ("unknown key id", jwt.encode(claims(server), other_rsa, algorithm="RS256", headers={"kid": "zz9"}), 401),
        ("HS512 not allowed", jwt.encode(claims(server), SECRET + SECRET, algorithm="HS512"), 401),
        ("garbage", "not.a.jwt", 401),
        ("exp as a string", hs(server, exp=str(int(time.time()) + 600)), 401),
        ("patient scope without a patient claim", hs(server, scope="patient/*.rs"), 401),
        ("malformed patient claim", hs(server, scope="patient/*.rs", patient="Patient/x_y"), 401),
        ("malformed organization claim", hs(server, organization="sec-a"), 401),
        ("missing scopes", hs(server, scope="openid launch"), 403),
        ("scope for another type", hs(server, scope="system/Patient.rs"), 403),
        ("v1 read scope", hs(server, scope="system/Observation.read"), 200),
    ]
    failures = []
    for name, token, expected in cases:
        response = call(server, "GET", "/Observation?_count=1", token)
        if response.status_code != expected:
            failures.append(f"{name}: {response.status_code} (expected {expected}) {response.text[:160]}")
            continue
        if expected >= 400:
            body = response.json()
            assert body["resourceType"] == "OperationOutcome", name
            assert "Traceback" not in response.text
        if expected == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), name
    assert not failures, "\n".join(failures)


def test_break_glass_never_widens_a_patient_token(secure: tuple[ServerProcess, Keys]) -> None:
    server, _ = secure
    token = hs(server, scope="patient/*.rs", organization=None, patient="Patient/someone",
               fhirUser="Practitioner/doc-a")
    answer = call(server, "GET", "/DiagnosticReport?_count=1", token, **{"X-Break-Glass": quote(EMERGENCY)})
    assert answer.status_code == 403 and "no patient context" in answer.text


def test_public_endpoints_need_no_token(secure: tuple[ServerProcess, Keys]) -> None:
    server, _ = secure
    assert call(server, "GET", "/metadata", None).status_code == 200
    smart = requests.get(f"{server.base}/.well-known/smart-configuration", timeout=10)
    assert smart.status_code == 200 and smart.json()["issuer"] == ISSUER
    assert "permission-v2" in smart.json()["capabilities"]
    # no token or authorization endpoint configured: none is guessed, nor a grant that would need one
    assert not {"token_endpoint", "authorization_endpoint", "grant_types_supported"} & set(smart.json())
    assert call(server, "GET", "/Patient", None).status_code == 401
    lists = requests.get(f"{server.base.rsplit('/fhir', 1)[0]}/lists/hr-scope-national.csv", timeout=10)
    assert lists.status_code == 200 and "CT-HEAD" in lists.text  # the published lists need no token


def test_capability_statement_describes_smart_security(secure: tuple[ServerProcess, Keys]) -> None:
    server, _ = secure
    rest = call(server, "GET", "/metadata", None).json()["rest"][0]
    assert rest["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    assert "extension" not in rest["security"]  # no oauth-uris: this deployment configured no endpoints
    assert any(p["name"] == "_federated" for p in rest["searchParam"])


def test_security_headers(secure: tuple[ServerProcess, Keys]) -> None:
    server, _ = secure
    response = call(server, "GET", "/metadata", None, **{"X-Request-Id": "abc-123"})
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-Id"] == "abc-123"
    assert "Access-Control-Allow-Origin" not in response.headers  # no CORS origins configured


# -- the access matrix ---------------------------------------------------------------------------------------
HOSPITALS = {"sec-a": "500000", "sec-b": "510000", "sec-c": "520000"}
CONSENT_STATES = ("none", "permit-b", "expired", "denied", "class-observation", "revoked", "forged-by-a",
                  "unattested")


def _consent(patient: str, state: str, organization: str = "Organization/sec-b") -> dict[str, Any] | None:
    """The Consent of each state, as recorded at `organization` (B, the hospital that wants to look)."""
    base: dict[str, Any] = {"resourceType": "Consent", "status": "active",
                            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                                  "code": "patient-privacy"}]},
                            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                            "patient": {"reference": patient}, "organization": [{"reference": organization}],
                            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                                       "code": "OPTIN"}]}}
    actor_b = {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                    "code": "IRCP"}]}, "reference": {"reference": "Organization/sec-b"}}
    if state == "none":
        return None
    base["provision"] = {"type": "permit", "actor": [actor_b]}
    if state == "expired":
        now = datetime.now(UTC)
        base["provision"]["period"] = {"start": now.isoformat(timespec="seconds"),
                                       "end": (now + timedelta(seconds=4)).isoformat(timespec="seconds")}
    elif state == "class-observation":
        base["provision"]["class"] = [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}]
    return base


def _care_at_b(server: ServerProcess, a_patient: str, confirmed: bool = True) -> str:
    """B's own record of A's patient (linked to A's; A links back, confirming, unless told not to) and B's order
    for them: the care relationship a consent recorded at B needs. Returns B's record."""
    writer_b = hs(server, scope="system/*.cruds", organization="Organization/sec-b")
    b_pid = f"{a_patient}-at-b"
    record = {"resourceType": "Patient", "id": b_pid, "managingOrganization": {"reference": "Organization/sec-b"},
              "link": [{"other": {"reference": f"Patient/{a_patient}"}, "type": "seealso"}]}
    assert call(server, "PUT", f"/Patient/{b_pid}", writer_b, record).status_code == 201
    if confirmed:
        _link(server, a_patient, b_pid, hs(server, scope="system/*.cruds", organization="Organization/sec-a"))
    order = {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "code": {"text": "血常规"},
             "subject": {"reference": f"Patient/{b_pid}"}, "requester": {"reference": "Organization/sec-b"}}
    assert call(server, "POST", "/ServiceRequest", writer_b, order).status_code == 201
    return b_pid


def _a_patient_with_a_report(server: ServerProcess, admin: str, prefix: str) -> tuple[str, str]:
    """A's patient (a fresh id) and a chest CT report A performed for them: (patient id, report id)."""
    pid = f"{prefix}-{uuid.uuid4().hex[:6]}"
    assert call(server, "PUT", f"/Patient/{pid}", admin, {
        "resourceType": "Patient", "id": pid, "managingOrganization": {"reference": "Organization/sec-a"}}
    ).status_code == 201
    rid = call(server, "POST", "/DiagnosticReport", admin, {
        "resourceType": "DiagnosticReport", "status": "final", "code": {"text": "胸部CT"},
        "subject": {"reference": f"Patient/{pid}"}, "performer": [{"reference": "Organization/sec-a"}]}).json()["id"]
    return pid, rid


def _link(server: ServerProcess, record: str, other: str, token: str) -> None:
    """The record's owner (or the steward) adds a seealso link from `record` to `other` with a JSON Patch."""
    patch = [{"op": "add", "path": "/link", "value": [{"other": {"reference": f"Patient/{other}"},
                                                       "type": "seealso"}]}]
    linked = requests.patch(f"{server.base}/Patient/{record}", data=json.dumps(patch), timeout=30, headers={
        "Content-Type": "application/json-patch+json", "Authorization": f"Bearer {token}"})
    assert linked.status_code == 200, linked.text


@pytest.fixture(scope="module")
def world(secure: tuple[ServerProcess, Keys]) -> dict[str, Any]:
    """Hospitals A, B, C; one patient of A per consent state, each with a report A performed. B records its
    consents at B (its own record of the person, an order, its doctor attesting); the forged and unattested ones
    are refused when written."""
    server, _ = secure
    admin = hs(server, scope="system/*.cruds", organization="Organization/sec-a")
    doctor_b = hs(server, scope="user/*.cruds", organization="Organization/sec-b", fhirUser="Practitioner/doc-b")
    system_b = hs(server, scope="system/*.cruds", organization="Organization/sec-b")
    for hospital, region in HOSPITALS.items():
        org = {"resourceType": "Organization", "id": hospital, "name": hospital, "extension": [{
            "url": f"{C}/StructureDefinition/hr-region", "valueCoding": {"system": REGION, "code": region}}]}
        assert call(server, "PUT", f"/Organization/{hospital}", admin, org).status_code in (200, 201)
    patients, reports = {}, {}
    for state in CONSENT_STATES:
        pid = f"sec-{state}-{uuid.uuid4().hex[:6]}"
        patient = {"resourceType": "Patient", "id": pid, "managingOrganization": {"reference": "Organization/sec-a"},
                   "identifier": [{"system": "urn:oid:2.16.156.10011.1.1", "value": pid}]}
        assert call(server, "PUT", f"/Patient/{pid}", admin, patient).status_code == 201
        report = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "血常规"},
                  "subject": {"reference": f"Patient/{pid}"}, "performer": [{"reference": "Organization/sec-a"}],
                  "effectiveDateTime": "2026-11-01"}
        created = call(server, "POST", "/DiagnosticReport", admin, report)
        assert created.status_code == 201, created.text
        if state != "none":
            b_pid = _care_at_b(server, pid)
            if state == "forged-by-a":  # A grants B a look at the person's results from everywhere: refused
                forged = call(server, "POST", "/Consent", admin, _consent(f"Patient/{pid}", state,
                                                                          "Organization/sec-a"))
                assert forged.status_code == 403, forged.text
            elif state == "unattested":  # B's backend, no practitioner: refused
                refused = call(server, "POST", "/Consent", system_b, _consent(f"Patient/{b_pid}", state))
                assert refused.status_code == 403 and "practitioner" in refused.text, refused.text
            else:
                written = call(server, "POST", "/Consent", doctor_b, _consent(f"Patient/{b_pid}", state))
                assert written.status_code == 201, written.text
                if state == "revoked":
                    stored = written.json()
                    assert call(server, "PUT", f"/Consent/{stored['id']}", doctor_b,
                                {**stored, "status": "inactive"}).status_code == 200
                if state == "denied":  # the patient told A: not B. Deny needs no capture, and wins.
                    deny = _consent(f"Patient/{pid}", state, "Organization/sec-a")
                    deny["provision"] = {"type": "deny", "actor": deny["provision"]["actor"]}
                    assert call(server, "POST", "/Consent", admin, deny).status_code == 201
        patients[state], reports[state] = pid, created.json()["id"]
    time.sleep(5)  # the "expired" consent's period (4 s) is over
    return {"patients": patients, "reports": reports}


def _callers(server: ServerProcess, world: dict[str, Any]) -> dict[str, tuple[str, dict[str, str]]]:
    own_patient = world["patients"]["none"]
    return {
        "A user": (hs(server, scope="user/*.cruds", fhirUser="Practitioner/doc-a"), {}),
        "B user": (hs(server, scope="user/*.rs", organization="Organization/sec-b", fhirUser="Practitioner/doc-b"),
                   {}),
        "B system": (hs(server, scope="system/*.rs", organization="Organization/sec-b"), {}),
        "C user": (hs(server, scope="user/*.rs", organization="Organization/sec-c", fhirUser="Practitioner/doc-c"),
                   {}),
        "B break-glass": (hs(server, scope="user/*.rs", organization="Organization/sec-b",
                             fhirUser="Practitioner/doc-b"), {"X-Break-Glass": quote(EMERGENCY)}),
        "patient app": (hs(server, scope="patient/*.rs", organization=None, patient=own_patient), {}),
    }


def _expected(caller: str, state: str) -> bool:
    """The policy, written out: who may see a report A performed for a patient in each consent state."""
    if caller in ("A user", "B break-glass"):
        return True
    if caller == "patient app":
        return state == "none"
    if caller in ("B user", "B system"):
        return state == "permit-b"
    return False  # C: no consent names C


def test_access_matrix(secure: tuple[ServerProcess, Keys], world: dict[str, Any]) -> None:
    server, _ = secure
    over, under, checked = [], [], 0
    for caller, (token, headers) in _callers(server, world).items():
        for state in CONSENT_STATES:
            expected = _expected(caller, state)
            pid, rid = world["patients"][state], world["reports"][state]
            read = call(server, "GET", f"/DiagnosticReport/{rid}", token, **headers)
            searched = call(server, "GET", f"/DiagnosticReport?subject=Patient/{pid}&_total=accurate", token,
                            **headers)
            patient = call(server, "GET", f"/Patient/{pid}", token, **headers)
            has = call(server, "GET", f"/Patient?_id={pid}&_has:DiagnosticReport:subject:status=final", token,
                       **headers)
            seen = {"read": read.status_code == 200, "search": searched.json().get("total") == 1,
                    "patient": patient.status_code == 200, "_has": len(has.json().get("entry", [])) == 1}
            for interaction, visible in seen.items():
                checked += 1
                if visible and not expected:
                    over.append(f"{caller} / {state} / {interaction}")
                if expected and not visible:
                    under.append(f"{caller} / {state} / {interaction}")
            if not expected:  # forbidden looks exactly like missing
                missing = call(server, "GET", f"/DiagnosticReport/no-such-{uuid.uuid4().hex[:6]}", token, **headers)
                assert read.status_code == missing.status_code == 404
                assert read.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]
    print(f"\naccess matrix: {checked} checks, {len(over)} over-shared, {len(under)} under-shared")
    assert not over, f"over-sharing: {over}"
    assert not under, f"under-sharing: {under}"



def test_unfiltered_search_shows_exactly_what_consent_allows(secure: tuple[ServerProcess, Keys],
                                                             world: dict[str, Any]) -> None:
    server, _ = secure
    token = hs(server, scope="user/*.rs", organization="Organization/sec-b", fhirUser="Practitioner/doc-b")
    found = call(server, "GET", "/DiagnosticReport?_count=1000&_total=accurate", token).json()
    ids = {e["resource"]["id"] for e in found.get("entry", [])}
    assert ids == {world["reports"]["permit-b"]}
    assert found["total"] == 1


def test_writes_only_to_own_organization(secure: tuple[ServerProcess, Keys], world: dict[str, Any]) -> None:
    server, _ = secure
    b_writer = hs(server, scope="user/*.cruds", organization="Organization/sec-b", fhirUser="Practitioner/doc-b")
    pid = world["patients"]["permit-b"]
    report = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "x"},
              "subject": {"reference": f"Patient/{pid}"}}
    as_a = call(server, "POST", "/DiagnosticReport", b_writer, {**report, "performer": [
        {"reference": "Organization/sec-a"}]})
    assert as_a.status_code == 403 and as_a.json()["resourceType"] == "OperationOutcome"
    no_owner = call(server, "POST", "/DiagnosticReport", b_writer, report)
    assert no_owner.status_code == 403
    own = call(server, "POST", "/DiagnosticReport", b_writer, {**report, "performer": [
        {"reference": "Organization/sec-b"}]})
    assert own.status_code == 201
    visible_foreign = world["reports"]["permit-b"]  # B may read it (consent) but not change it
    current = call(server, "GET", f"/DiagnosticReport/{visible_foreign}", b_writer).json()
    assert call(server, "PUT", f"/DiagnosticReport/{visible_foreign}", b_writer,
                {**current, "status": "cancelled"}).status_code == 403
    assert call(server, "DELETE", f"/DiagnosticReport/{visible_foreign}", b_writer).status_code == 403
    hidden = world["reports"]["none"]  # B may not even know it exists
    assert call(server, "DELETE", f"/DiagnosticReport/{hidden}", b_writer).status_code == 404
    registry = call(server, "PUT", "/Organization/sec-b", b_writer, {"resourceType": "Organization", "id": "sec-b",
                                                                     "name": "renamed by a user"})
    assert registry.status_code == 403
    read_only = hs(server, scope="user/*.rs", organization="Organization/sec-b")
    assert call(server, "POST", "/DiagnosticReport", read_only, {**report, "performer": [
        {"reference": "Organization/sec-b"}]}).status_code == 403
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {**report, "performer": [{"reference": "Organization/sec-a"}]},
         "request": {"method": "POST", "url": "DiagnosticReport"}}]}
    assert call(server, "POST", "", b_writer, bundle).status_code == 403
    assert call(server, "GET", f"/DiagnosticReport/{visible_foreign}", b_writer).json()["status"] == "final"


def test_break_glass_needs_a_practitioner(secure: tuple[ServerProcess, Keys], world: dict[str, Any]) -> None:
    server, _ = secure
    system = hs(server, scope="system/*.rs", organization="Organization/sec-b")
    response = call(server, "GET", f"/DiagnosticReport/{world['reports']['none']}", system,
                    **{"X-Break-Glass": "emergency"})
    assert response.status_code == 403


# -- audit ---------------------------------------------------------------------------------------------------
def _audit_count(server: ServerProcess, settle: bool = True) -> int:
    """Chained AuditEvents; with settle=False, chained plus spooled (what is stored when the response leaves)."""
    with pymongo.MongoClient(server.mongo_uri()) as client:
        db = client[server.db_name]
        if settle:
            audit_settled(db)
            return db["AuditEvent"].count_documents({})
        # Both collections read in one snapshot: the shipper stores an event before it leaves the spool, so two
        # separate reads could count an event twice (or not at all) while it moves.
        with client.start_session() as session, session.start_transaction(read_concern=ReadConcern("snapshot")):
            return (db["AuditEvent"].count_documents({}, session=session)
                    + db["audit_spool"].count_documents({}, session=session))


def test_every_request_is_audited_and_the_chain_verifies(secure: tuple[ServerProcess, Keys],
                                                          world: dict[str, Any]) -> None:
    server, _ = secure
    a = hs(server, scope="user/*.cruds", fhirUser="Practitioner/doc-a")
    b = hs(server, scope="user/*.rs", organization="Organization/sec-b", fhirUser="Practitioner/doc-b")
    pid, rid = world["patients"]["permit-b"], world["reports"]["permit-b"]
    before = _audit_count(server)
    workload = [
        ("GET", f"/DiagnosticReport/{rid}", a, None), ("GET", f"/DiagnosticReport/{rid}", b, None),
        ("GET", f"/DiagnosticReport?subject=Patient/{pid}", b, None), ("GET", "/DiagnosticReport/missing-x", b, None),
        ("GET", f"/DiagnosticReport/{rid}", None, None), ("GET", f"/DiagnosticReport/{rid}", "bad.token.x", None),
        ("POST", "/Observation", a, {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                                     "subject": {"reference": f"Patient/{pid}"},
                                     "performer": [{"reference": "Organization/sec-a"}]}),
        ("POST", "/Observation", a, {"resourceType": "Observation", "status": "bogus"}),
        ("POST", "/Observation", b, {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
        ("GET", f"/Patient/{pid}/_history", a, None), ("DELETE", f"/DiagnosticReport/{rid}", b, None),
        ("GET", "/metadata", None, None), ("GET", "/CodeSystem/hr-item", a, None),
    ]
    audited = 0
    for method, path, token, body in workload:
        call(server, method, path, token, body)
        audited += path not in ("/metadata", "/CodeSystem/hr-item")
    assert _audit_count(server, settle=False) == before + audited  # every event stored before its response
    assert _audit_count(server) == before + audited  # ... and chained moments later
    events = call(server, "GET", f"/AuditEvent?patient=Patient/{pid}&_count=100", a).json()
    assert any(e["resource"]["outcome"] == "0" for e in events.get("entry", []))
    b_read = call(server, "GET", "/AuditEvent?agent=Practitioner/doc-b&_count=100&date=ge2020-01-01", b).json()
    outcomes = {e["resource"]["outcome"] for e in b_read.get("entry", [])}
    assert {"0", "4"} <= outcomes  # failures are recorded too

    verify = _verify(server)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "INTACT" in verify.stdout
    with pymongo.MongoClient(server.mongo_uri()) as client:
        events_coll = client[server.db_name]["AuditEvent"]
        victim = events_coll.find_one({"text": {"$regex": "doc-b"}})
        assert victim is not None
        events_coll.update_one({"_id": victim["_id"]}, {"$set": {"text": victim["text"].replace("doc-b", "doc-x")}})
        try:
            broken = _verify(server)
        finally:
            events_coll.update_one({"_id": victim["_id"]}, {"$set": {"text": victim["text"]}})
        events_coll.delete_one({"_id": victim["_id"]})
        try:
            removed = _verify(server)
        finally:
            events_coll.insert_one(victim)
    assert broken.returncode == 1
    assert f"AuditEvent/{victim['_id']} was modified" in broken.stdout
    assert removed.returncode == 1 and "no AuditEvent holds this position" in removed.stdout
    assert _verify(server).returncode == 0


def _verify(server: ServerProcess) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FHIRSERVER_AUTH": "off", "FHIRSERVER_MONGODB_DB": server.db_name}
    return subprocess.run([sys.executable, "-m", "fhirserver", "audit", "verify", "--data-dir", str(server.data_dir)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_development_token_command(secure: tuple[ServerProcess, Keys]) -> None:
    server, _ = secure
    env = {**os.environ, "FHIRSERVER_AUTH": "on", "FHIRSERVER_AUTH_ISSUER": ISSUER,
           "FHIRSERVER_AUTH_HS256_SECRET": SECRET, "FHIRSERVER_BASE_URL": server.base}
    issued = subprocess.run([sys.executable, "-m", "fhirserver", "token", "--scope", "system/Observation.rs",
                             "--organization", "Organization/sec-a"], capture_output=True, text=True, env=env,
                            timeout=60, check=True).stdout.strip()
    assert call(server, "GET", "/Observation?_count=1", issued).status_code == 200
    assert call(server, "GET", "/Patient?_count=1", issued).status_code == 403


def test_concurrent_requests_keep_one_intact_chain(secure: tuple[ServerProcess, Keys], world: dict[str, Any]) -> None:
    """Two workers x eight threads commit audit events in groups; every request still gets exactly one."""
    from concurrent.futures import ThreadPoolExecutor

    server, _ = secure
    token = hs(server, scope="user/*.rs", fhirUser="Practitioner/doc-a")
    rid = world["reports"]["none"]
    before = _audit_count(server)
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: call(server, "GET", f"/DiagnosticReport/{rid}", token).status_code,
                                 range(80)))
    assert statuses == [200] * 80
    assert _audit_count(server, settle=False) == before + 80
    assert _audit_count(server) == before + 80
    verify = _verify(server)
    assert verify.returncode == 0 and "INTACT" in verify.stdout, verify.stdout


def test_conditional_create_never_reveals_a_hidden_match(secure: tuple[ServerProcess, Keys],
                                                          world: dict[str, Any]) -> None:
    """If-None-Exist on another hospital's hidden report must not answer 200 with that report."""
    server, _ = secure
    hidden = world["reports"]["none"]
    c_writer = hs(server, scope="user/*.cruds", organization="Organization/sec-c", fhirUser="Practitioner/doc-c")
    pid = world["patients"]["none"]
    report = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "血常规"},
              "subject": {"reference": f"Patient/{pid}"}, "performer": [{"reference": "Organization/sec-c"}]}
    response = call(server, "POST", "/DiagnosticReport", c_writer, report, **{"If-None-Exist": f"_id={hidden}"})
    assert response.status_code == 201
    assert response.json()["id"] != hidden and "sec-a" not in response.text


def test_rate_limit_and_cors(tmp_path: Path) -> None:
    """429 with Retry-After past the per-client limit; CORS headers only for configured origins."""
    server = new_server(tmp_path, FHIRSERVER_RATE_LIMIT="5", FHIRSERVER_CORS_ORIGINS="https://emr.example.cn",
                        FHIRSERVER_AUTH="off")
    server.workers = 1
    server.start()
    try:
        statuses = [call(server, "GET", "/Observation?_count=1", None).status_code for _ in range(8)]
        assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 3
        limited = call(server, "GET", "/Observation?_count=1", None)
        assert limited.json()["issue"][0]["code"] == "throttled" and int(limited.headers["Retry-After"]) >= 1
        preflight = requests.options(f"{server.base}/Observation", timeout=10, headers={
            "Origin": "https://emr.example.cn", "Access-Control-Request-Method": "POST"})
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://emr.example.cn"
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        other = requests.get(f"{server.base}/metadata", headers={"Origin": "https://evil.example"}, timeout=10)
        assert "Access-Control-Allow-Origin" not in other.headers
    finally:
        server.stop()


def test_stow_under_auth_belongs_to_the_uploading_hospital(secure: tuple[ServerProcess, Keys]) -> None:
    """A PACS with a system token stores a study; its hospital owns it (reads it); another hospital does not."""
    import pydicom
    from test_imaging import FILES, stow

    server, _ = secure
    pacs = hs(server, scope="system/*.cruds", organization="Organization/sec-b")
    data = (FILES / "CT_small.dcm").read_bytes()
    refused = stow(server.base, data)
    assert refused.status_code == 401  # no token
    stored = stow(server.base, data, headers={"Authorization": f"Bearer {pacs}"})
    assert stored.status_code == 200, stored.text
    uid = pydicom.dcmread(FILES / "CT_small.dcm").StudyInstanceUID
    own = call(server, "GET", f"/ImagingStudy/{uid}", pacs)
    assert own.status_code == 200
    assert own.json()["series"][0]["performer"][0]["actor"]["reference"] == "Organization/sec-b"
    other = hs(server, scope="user/*.rs", organization="Organization/sec-c", fhirUser="Practitioner/doc-c")
    assert call(server, "GET", f"/ImagingStudy/{uid}", other).status_code == 404
    wado = server.base.rsplit("/fhir", 1)[0] + f"/dicomweb/studies/{uid}/metadata"
    assert requests.get(wado, headers={"Authorization": f"Bearer {pacs}"}, timeout=30).status_code == 200
    assert requests.get(wado, headers={"Authorization": f"Bearer {other}"}, timeout=30).status_code == 404
    qido = server.base.rsplit("/fhir", 1)[0] + "/dicomweb/studies"
    assert uid in requests.get(qido, headers={"Authorization": f"Bearer {pacs}"}, timeout=30).text
    assert uid not in requests.get(qido, headers={"Authorization": f"Bearer {other}"}, timeout=30).text


@pytest.mark.skipif(bool(os.environ.get("FHIRSERVER_MONGODB_URI")), reason="kills the embedded engine's server")
def test_spooled_access_events_survive_a_crash(tmp_path: Path) -> None:
    """An access event is in the store when its response leaves: a server killed before chaining loses none, and
    the next server chains them once, even those a crash left both chained and spooled, or claimed only."""
    first = new_server(tmp_path / "node", FHIRSERVER_AUDIT_SHIP_MS="600000").start()  # ships only after 10 min
    try:
        created = requests.post(f"{first.base}/Observation", json=observation(), timeout=30,
                                headers={"Content-Type": FHIR_JSON})
        assert created.status_code == 201
        for _ in range(4):
            assert requests.get(f"{first.base}/Observation/{created.json()['id']}", timeout=30).status_code == 200
        with pymongo.MongoClient(first.mongo_uri()) as client:
            db = client[first.db_name]
            assert spooled_audit(db) == 5 and len(list(db["AuditEvent"].find({}, {"_id": 1}))) == 0
        engine_pid = json.loads((first.data_dir / "embedded-mongo.json").read_text())["pid"]
    finally:
        assert first.process is not None
        first.process.kill()  # SIGKILL: no shutdown hook runs
        first.process.wait(10)
        first.process = None
    _wait_gone(engine_pid)
    second = ServerProcess(data_dir=first.data_dir, port=free_port(), db_name=first.db_name).start()
    try:
        with pymongo.MongoClient(second.mongo_uri()) as client:
            db = client[second.db_name]
            assert spooled_audit(db) == 5  # nothing lost in the crash
            assert requests.get(f"{second.base}/Observation?_count=1", timeout=30).status_code == 200
            audit_settled(db)
            events = list(db["AuditEvent"].find({}, {"_id": 1, "text": 1}))
            assert len(events) == 6
            # a shipper that died between storing a batch and emptying the spool leaves a chained event spooled
            db["audit_spool"].insert_one({"_id": events[0]["_id"], "at": 0.0, "text": events[0]["text"]})
            assert requests.get(f"{second.base}/Observation?_count=1", timeout=30).status_code == 200
            audit_settled(db)
            assert len(list(db["AuditEvent"].find({}, {"_id": 1}))) == 7  # chained once, not twice
            # a shipper that died between an event's history claim and its current document
            claimed = db["AuditEvent"].find_one_and_delete({"_id": events[1]["_id"]})
            db["audit_spool"].insert_one({"_id": claimed["_id"], "at": 0.0, "text": claimed["text"]})
            assert requests.get(f"{second.base}/Observation?_count=1", timeout=30).status_code == 200
            audit_settled(db)
            assert len(list(db["AuditEvent"].find({}, {"_id": 1}))) == 8  # rolled forward, not chained again
            assert db["AuditEvent"].find_one({"_id": claimed["_id"]})["text"] == claimed["text"]
        verify = _verify(second)
        assert verify.returncode == 0 and "8 events in the chain" in verify.stdout, verify.stdout
    finally:
        second.stop()


def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} still runs")


def test_only_the_lease_holder_chains_and_a_lapsed_lease_is_taken_over(tmp_path: Path) -> None:
    """The head document carries the shipper lease: while another process holds it, this server's events wait
    in the spool (stored, not chained); when that lease lapses, this server takes it over and chains them."""
    server = new_server(tmp_path / "node").start()
    try:
        assert requests.get(f"{server.base}/Observation?_count=1", timeout=30).status_code == 200
        with pymongo.MongoClient(server.mongo_uri()) as client:
            db = client[server.db_name]
            audit_settled(db)
            before = len(list(db["AuditEvent"].find({}, {"_id": 1})))
            db["audit_chain"].update_one({"_id": "head"}, {"$set": {"holder": "another-node:1:x",
                                                                     "until": time.time() + 4}})
            for _ in range(3):
                assert requests.get(f"{server.base}/Observation?_count=1", timeout=30).status_code == 200
            time.sleep(2)
            assert spooled_audit(db) == 3  # stored, waiting for the holder
            assert len(list(db["AuditEvent"].find({}, {"_id": 1}))) == before
            audit_settled(db, timeout=20)  # the lease lapses after 4 s; this server takes over
            assert len(list(db["AuditEvent"].find({}, {"_id": 1}))) == before + 3
        verify = _verify(server)
        assert verify.returncode == 0 and f"{before + 3} events in the chain" in verify.stdout, verify.stdout
    finally:
        server.stop()


def test_consent_given_on_one_record_covers_the_persons_other_records(secure: tuple[ServerProcess, Keys]) -> None:
    """Hospital A's record and hospital B's record of one person (same valid resident ID): the patient's Consent,
    given at B on B's record, lets B see the report A stored under A's record. A person without it stays hidden."""
    from fhirserver.persons.resident_id import check_character

    server, _ = secure
    writers = {h: hs(server, scope="system/*.cruds", organization=f"Organization/{h}") for h in ("sec-a", "sec-b")}
    admin = writers["sec-a"]
    b_user = hs(server, scope="user/*.rs", organization="Organization/sec-b", fhirUser="Practitioner/doc-b")
    reports = {}
    for case in ("consented", "not-consented"):
        body = f"50011220200101{uuid.uuid4().int % 1000:03d}"
        national = body + check_character(body)
        records = {}
        for hospital in ("sec-a", "sec-b"):
            pid = f"per-{hospital}-{uuid.uuid4().hex[:6]}"
            patient = {"resourceType": "Patient", "id": pid,
                       "managingOrganization": {"reference": f"Organization/{hospital}"},
                       "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": national}]}
            assert call(server, "PUT", f"/Patient/{pid}", writers[hospital], patient).status_code == 201
            records[hospital] = pid
        report = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "胸部DR"},
                  "subject": {"reference": f"Patient/{records['sec-a']}"},
                  "performer": [{"reference": "Organization/sec-a"}], "effectiveDateTime": "2026-11-20"}
        created = call(server, "POST", "/DiagnosticReport", admin, report)
        assert created.status_code == 201
        if case == "consented":
            order = {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "code": {"text": "CT"},
                     "subject": {"reference": f"Patient/{records['sec-b']}"},
                     "requester": {"reference": "Organization/sec-b"}}
            assert call(server, "POST", "/ServiceRequest", writers["sec-b"], order).status_code == 201
            consent = _consent(f"Patient/{records['sec-b']}", "permit-b")  # given at B, on B's record
            doctor_b = hs(server, scope="user/*.cruds", organization="Organization/sec-b",
                          fhirUser="Practitioner/doc-b")
            written = call(server, "POST", "/Consent", doctor_b, consent)
            assert written.status_code == 201, written.text
        reports[case] = (created.json()["id"], records["sec-a"])
    rid, pid = reports["consented"]
    assert call(server, "GET", f"/DiagnosticReport/{rid}", b_user).status_code == 200
    searched = call(server, "GET", f"/DiagnosticReport?subject=Patient/{pid}&_total=accurate", b_user).json()
    assert searched["total"] == 1
    rid, pid = reports["not-consented"]
    assert call(server, "GET", f"/DiagnosticReport/{rid}", b_user).status_code == 404
    assert call(server, "GET", f"/DiagnosticReport?subject=Patient/{pid}&_total=accurate", b_user).json()["total"] == 0


def test_a_platform_steward_links_any_hospitals_records_and_changes_nothing_else(
        secure: tuple[ServerProcess, Keys]) -> None:
    """Hospital B's record of a newborn (no resident ID yet) and hospital A's record of the same child: the
    platform's record steward (system/Patient.u, its own organization) links B's record to A's with a JSON Patch;
    the link joins the person index (A's duplicate check now finds B's result). Changing anything else of B's
    record is refused, and a user token may not link records it does not own."""
    server, _ = secure
    writer_a = hs(server, scope="system/*.cruds", organization="Organization/sec-a")
    writer_b = hs(server, scope="system/*.cruds", organization="Organization/sec-b")
    steward = hs(server, scope="system/Patient.ru", organization="Organization/platform")
    user_a = hs(server, scope="user/*.cruds", organization="Organization/sec-a", fhirUser="Practitioner/doc-a")
    tag = uuid.uuid4().hex[:6]
    a_pid, b_pid = f"nb-a-{tag}", f"nb-b-{tag}"
    for pid, hospital, writer in ((a_pid, "sec-a", writer_a), (b_pid, "sec-b", writer_b)):
        patient = {"resourceType": "Patient", "id": pid, "name": [{"text": "新生儿"}],
                   "managingOrganization": {"reference": f"Organization/{hospital}"}}
        assert call(server, "PUT", f"/Patient/{pid}", writer, patient).status_code == 201
    report = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "血常规"},
              "subject": {"reference": f"Patient/{b_pid}"}, "performer": [{"reference": "Organization/sec-b"}],
              "effectiveDateTime": "2026-11-20"}
    assert call(server, "POST", "/DiagnosticReport", writer_b, report).status_code == 201

    doctor_a = hs(server, scope="user/*.rs", organization="Organization/sec-a", fhirUser="Practitioner/doc-a")

    def records_of_a() -> set[str]:  # as A's doctor sees them in an emergency (no consent needed, audited)
        found = call(server, "GET", f"/Patient/{a_pid}/$everything?_type=Patient", doctor_a,
                     **{"X-Break-Glass": quote(EMERGENCY)})
        assert found.status_code == 200, found.text
        return {e["resource"]["id"] for e in found.json().get("entry", []) if "resource" in e}

    patch_type = {"Content-Type": "application/json-patch+json"}
    link = [{"op": "add", "path": "/link", "value": [{"other": {"reference": f"Patient/{a_pid}"},
                                                       "type": "seealso"}]}]
    refused = requests.patch(f"{server.base}/Patient/{b_pid}", data=json.dumps(link), timeout=30,
                             headers={**patch_type, "Authorization": f"Bearer {user_a}"})
    assert refused.status_code in (403, 404), refused.text
    assert records_of_a() == {a_pid}
    renamed = [{"op": "replace", "path": "/name/0/text", "value": "改名"}, *link]
    refused = requests.patch(f"{server.base}/Patient/{b_pid}", data=json.dumps(renamed), timeout=30,
                             headers={**patch_type, "Authorization": f"Bearer {steward}"})
    assert refused.status_code in (403, 404), refused.text
    linked = requests.patch(f"{server.base}/Patient/{b_pid}", data=json.dumps(link), timeout=30,
                            headers={**patch_type, "Authorization": f"Bearer {steward}"})
    assert linked.status_code == 200, linked.text
    assert call(server, "GET", f"/Patient/{b_pid}", writer_b).json()["link"][0]["other"]["reference"] \
        == f"Patient/{a_pid}"
    assert records_of_a() == {a_pid}  # one side of a link between two hospitals' records is not yet a person
    _link(server, a_pid, b_pid, steward)
    assert records_of_a() == {a_pid, b_pid}  # both sides: B's record is now part of the person


def test_a_hospital_cannot_pull_another_hospitals_record_into_its_patient_by_a_link(
        secure: tuple[ServerProcess, Keys]) -> None:
    """B keeps a record of its own, links it one-sidedly to A's patient, has an order and its doctor's attested
    consent: all B's own doing. The consent is stored, but it covers only B's record: A's report stays hidden
    until A confirms the link (links back); then the consent covers the person and B sees the report."""
    server, _ = secure
    admin = hs(server, scope="system/*.cruds", organization="Organization/sec-a")
    doctor_b = hs(server, scope="user/*.cruds", organization="Organization/sec-b", fhirUser="Practitioner/doc-b")
    pid, rid = _a_patient_with_a_report(server, admin, "pull")
    b_pid = _care_at_b(server, pid, confirmed=False)
    assert call(server, "POST", "/Consent", doctor_b, _consent(f"Patient/{b_pid}", "permit-b")).status_code == 201
    assert call(server, "GET", f"/DiagnosticReport/{rid}", doctor_b).status_code == 404
    _link(server, pid, b_pid, admin)  # A confirms: the two records are one person
    assert call(server, "GET", f"/DiagnosticReport/{rid}", doctor_b).status_code == 200


def test_a_consent_is_captured_only_when_narrow_with_care_and_attested(secure: tuple[ServerProcess, Keys]) -> None:
    """Each rule of consent capture refuses with its own sentence; a stamp sent by the client is dropped."""
    server, _ = secure
    admin = hs(server, scope="system/*.cruds", organization="Organization/sec-a")
    doctor_b = hs(server, scope="user/*.cruds", organization="Organization/sec-b", fhirUser="Practitioner/doc-b")
    system_b = hs(server, scope="system/*.cruds", organization="Organization/sec-b")
    reader_b = hs(server, scope="user/*.rs", organization="Organization/sec-b", fhirUser="Practitioner/doc-b")

    def a_patient_with_a_report() -> tuple[str, str]:
        pid = f"cap-{uuid.uuid4().hex[:6]}"
        patient = {"resourceType": "Patient", "id": pid, "managingOrganization": {"reference": "Organization/sec-a"}}
        assert call(server, "PUT", f"/Patient/{pid}", admin, patient).status_code == 201
        report = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "胸部CT"},
                  "subject": {"reference": f"Patient/{pid}"}, "performer": [{"reference": "Organization/sec-a"}]}
        return pid, call(server, "POST", "/DiagnosticReport", admin, report).json()["id"]

    def refused(token: str, consent: dict[str, Any], words: str) -> None:
        answer = call(server, "POST", "/Consent", token, consent)
        assert answer.status_code == 403, answer.text
        assert answer.json()["resourceType"] == "OperationOutcome" and words in answer.text, answer.text

    pid, _ = a_patient_with_a_report()
    refused(doctor_b, _consent(f"Patient/{pid}", "permit-b"), "has no record of this patient")
    b_record = f"{pid}-at-b"
    writer_b = hs(server, scope="system/*.cruds", organization="Organization/sec-b")
    assert call(server, "PUT", f"/Patient/{b_record}", writer_b, {
        "resourceType": "Patient", "id": b_record, "managingOrganization": {"reference": "Organization/sec-b"},
        "link": [{"other": {"reference": f"Patient/{pid}"}, "type": "seealso"}]}).status_code == 201
    refused(doctor_b, _consent(f"Patient/{b_record}", "permit-b"), "has no order")

    pid, rid = a_patient_with_a_report()
    b_record = _care_at_b(server, pid)
    region = _consent(f"Patient/{b_record}", "permit-b")
    region["provision"]["actor"][0]["reference"] = {"identifier": {"system": REGION, "value": "510000"}}
    refused(doctor_b, region, "permits only Organization/sec-b")
    everyone = _consent(f"Patient/{b_record}", "permit-b")
    del everyone["provision"]["actor"]
    refused(doctor_b, everyone, "permits only")
    long = _consent(f"Patient/{b_record}", "permit-b")
    long["provision"]["period"] = {"start": "2026-12-01", "end": "2027-03-01"}
    refused(doctor_b, long, "at most 30 days")
    research = _consent(f"Patient/{b_record}", "permit-b")
    research["provision"]["purpose"] = [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                         "code": "HRESCH"}]
    refused(doctor_b, research, "treatment only")
    forged_stamp = {**_consent(f"Patient/{b_record}", "permit-b"), "status": "proposed", "extension": [
        {"url": f"{C}/StructureDefinition/hr-consent-capture", "valueCode": "attested"}]}
    stored = call(server, "POST", "/Consent", system_b, forged_stamp)
    assert stored.status_code == 201, stored.text
    assert "hr-consent-capture" not in stored.text
    assert call(server, "GET", f"/DiagnosticReport/{rid}", reader_b).status_code == 404
    taken = call(server, "POST", "/Consent", doctor_b, _consent(f"Patient/{b_record}", "permit-b")).json()
    stamps = {e["url"].rsplit("/", 1)[1]: e for e in taken["extension"]}
    assert stamps["hr-consent-capture"]["valueCode"] == "attested"
    assert stamps["hr-consent-attester"]["valueReference"] == {"reference": "Practitioner/doc-b"}
    assert taken["provision"]["purpose"][0]["code"] == "TREAT" and taken["provision"]["period"]["end"]
    assert call(server, "GET", f"/DiagnosticReport/{rid}", reader_b).status_code == 200


def test_in_patient_mode_the_patients_own_token_confirms_and_revokes(tmp_path: Path) -> None:
    """FHIRSERVER_CONSENT_CAPTURE=patient: the hospital stores the consent as proposed; it lets the hospital look
    only once the patient's own token sets it active, and no longer once the patient revokes it."""
    keys = Keys(tmp_path)
    server = new_server(tmp_path / "node")
    server.extra_env.update({"FHIRSERVER_AUTH": "on", "FHIRSERVER_AUTH_ISSUER": ISSUER,
                             "FHIRSERVER_AUTH_JWKS": str(keys.path), "FHIRSERVER_AUTH_HS256_SECRET": SECRET,
                             "FHIRSERVER_BASE_URL": f"http://127.0.0.1:{server.port}/fhir",
                             "FHIRSERVER_REORDER_RULE": "off", "FHIRSERVER_CONSENT_CAPTURE": "patient"})
    server.start()
    try:
        admin = hs(server, scope="system/*.cruds", organization="Organization/sec-a")
        doctor_b = hs(server, scope="user/*.cruds", organization="Organization/sec-b", fhirUser="Practitioner/doc-b")
        pid = "pm-a"
        assert call(server, "PUT", f"/Patient/{pid}", admin, {
            "resourceType": "Patient", "id": pid,
            "managingOrganization": {"reference": "Organization/sec-a"}}).status_code == 201
        rid = call(server, "POST", "/DiagnosticReport", admin, {
            "resourceType": "DiagnosticReport", "status": "final", "code": {"text": "血常规"},
            "subject": {"reference": f"Patient/{pid}"},
            "performer": [{"reference": "Organization/sec-a"}]}).json()["id"]
        b_record = _care_at_b(server, pid)
        consent = _consent(f"Patient/{b_record}", "permit-b")
        active = call(server, "POST", "/Consent", doctor_b, consent)
        assert active.status_code == 403 and "proposed" in active.text, active.text
        proposed = call(server, "POST", "/Consent", doctor_b, {**consent, "status": "proposed"})
        assert proposed.status_code == 201, proposed.text
        assert call(server, "GET", f"/DiagnosticReport/{rid}", doctor_b).status_code == 404

        patient = hs(server, scope="patient/*.rs patient/Consent.u", organization=None, patient=f"Patient/{b_record}")
        stranger = hs(server, scope="patient/*.rs patient/Consent.u", organization=None, patient="Patient/nobody")
        body = {**proposed.json(), "status": "active"}
        assert call(server, "PUT", f"/Consent/{body['id']}", stranger, body).status_code in (403, 404)
        widened = {**body, "dateTime": "2026-01-01"}  # the patient decides the status, nothing else
        assert call(server, "PUT", f"/Consent/{body['id']}", patient, widened).status_code == 403
        confirmed = call(server, "PUT", f"/Consent/{body['id']}", patient, body)
        assert confirmed.status_code == 200, confirmed.text
        stamps = {e["url"].rsplit("/", 1)[1]: e for e in confirmed.json()["extension"]}
        assert stamps["hr-consent-capture"]["valueCode"] == "patient"
        assert stamps["hr-consent-attester"]["valueReference"] == {"reference": f"Patient/{b_record}"}
        assert call(server, "GET", f"/DiagnosticReport/{rid}", doctor_b).status_code == 200
        revoked = call(server, "PUT", f"/Consent/{body['id']}", patient, {**confirmed.json(), "status": "inactive"})
        assert revoked.status_code == 200, revoked.text
        assert call(server, "GET", f"/DiagnosticReport/{rid}", doctor_b).status_code == 404
    finally:
        server.stop()


def _settle(server: ServerProcess) -> None:
    with pymongo.MongoClient(server.mongo_uri()) as client:
        audit_settled(client[server.db_name])


def test_the_owning_hospital_and_the_patient_see_the_consent_and_every_look_it_enabled(
        secure: tuple[ServerProcess, Keys]) -> None:
    """B records, with A's patient, a consent to look (at B, on B's record of the person). A keeps the person's
    results: A sees that consent (by id, and through the person's $everything), a hospital without a record of the
    person does not. When B then reads A's report, the AuditEvent names the Consent as its policy and A as the
    custodian, so A finds it by searching its own audit; the patient's own token sees the consent and the event."""
    server, _ = secure
    admin = hs(server, scope="system/*.cruds", organization="Organization/sec-a")
    doctor_a = hs(server, scope="user/*.rs", organization="Organization/sec-a", fhirUser="Practitioner/doc-a")
    doctor_b = hs(server, scope="user/*.cruds", organization="Organization/sec-b", fhirUser="Practitioner/doc-b")
    doctor_c = hs(server, scope="user/*.rs", organization="Organization/sec-c", fhirUser="Practitioner/doc-c")
    pid, rid = _a_patient_with_a_report(server, admin, "own")
    b_pid = _care_at_b(server, pid)
    cid = call(server, "POST", "/Consent", doctor_b, _consent(f"Patient/{b_pid}", "permit-b")).json()["id"]

    assert call(server, "GET", f"/Consent/{cid}", doctor_a).status_code == 200
    everything = call(server, "GET", f"/Patient/{pid}/$everything?_type=Consent", doctor_a)
    assert everything.status_code == 200, everything.text
    assert cid in {e["resource"]["id"] for e in everything.json().get("entry", [])}
    assert call(server, "GET", f"/Consent/{cid}", doctor_c).status_code == 404
    assert cid not in call(server, "GET", f"/Consent?patient=Patient/{b_pid}", doctor_c).text
    patient_app = hs(server, scope="patient/*.rs", organization=None, patient=f"Patient/{pid}")
    mine = call(server, "GET", "/Consent", patient_app)
    assert mine.status_code == 200 and cid in {e["resource"]["id"] for e in mine.json().get("entry", [])}, mine.text

    assert call(server, "GET", f"/DiagnosticReport/{rid}", doctor_b).status_code == 200
    _settle(server)
    looks = call(server, "GET", f"/AuditEvent?entity=Consent/{cid}", doctor_a)
    assert looks.status_code == 200, looks.text
    events = [e["resource"] for e in looks.json().get("entry", [])]
    read = [e for e in events if any(x.get("what", {}).get("reference") == f"DiagnosticReport/{rid}"
                                     for x in e.get("entity", []))]
    assert len(read) == 1, events
    requestor = next(a for a in read[0]["agent"] if a.get("requestor"))
    assert requestor["who"] == {"reference": "Practitioner/doc-b"}
    assert requestor["policy"] == [f"{server.base}/Consent/{cid}"]
    custodian = [a for a in read[0]["agent"] if a.get("type", {}).get("coding", [{}])[0].get("code") == "CST"]
    assert [a["who"] for a in custodian] == [{"reference": "Organization/sec-a"}]
    seen_by_patient = call(server, "GET", f"/AuditEvent?entity=DiagnosticReport/{rid}", patient_app)
    assert read[0]["id"] in {e["resource"]["id"] for e in seen_by_patient.json().get("entry", [])}
    assert call(server, "GET", f"/AuditEvent/{read[0]['id']}", doctor_c).status_code == 404


def test_a_visit_registered_ordered_and_consented_in_one_transaction_is_captured(
        secure: tuple[ServerProcess, Keys]) -> None:
    """B's doctor sends one transaction: B's new record of A's patient (linked to A's), B's order for them, and the
    patient's consent. The order and the record arrive in the same Bundle; the consent is captured.
    Without the order in the Bundle, the same consent is refused and nothing of the Bundle is stored."""
    server, _ = secure
    admin = hs(server, scope="system/*.cruds", organization="Organization/sec-a")
    doctor_b = hs(server, scope="user/*.cruds", organization="Organization/sec-b", fhirUser="Practitioner/doc-b")
    pid = f"visit-{uuid.uuid4().hex[:6]}"
    assert call(server, "PUT", f"/Patient/{pid}", admin, {
        "resourceType": "Patient", "id": pid, "managingOrganization": {"reference": "Organization/sec-a"}}
    ).status_code == 201

    def visit(with_order: bool) -> requests.Response:
        record, order = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
        entries = [{"fullUrl": record, "resource": {
            "resourceType": "Patient", "managingOrganization": {"reference": "Organization/sec-b"},
            "link": [{"other": {"reference": f"Patient/{pid}"}, "type": "seealso"}]},
            "request": {"method": "POST", "url": "Patient"}}]
        consent = _consent(record, "permit-b")
        entries.append({"resource": consent, "request": {"method": "POST", "url": "Consent"}})
        if with_order:
            entries.append({"fullUrl": order, "resource": {
                "resourceType": "ServiceRequest", "status": "active", "intent": "order", "code": {"text": "胸部CT"},
                "subject": {"reference": record}, "requester": {"reference": "Organization/sec-b"}},
                "request": {"method": "POST", "url": "ServiceRequest"}})
        return call(server, "POST", "", doctor_b, {"resourceType": "Bundle", "type": "transaction", "entry": entries})

    before = call(server, "GET", "/Patient?organization=Organization/sec-b&_summary=count", doctor_b).json()["total"]
    refused = visit(with_order=False)
    assert refused.status_code == 403 and "has no order" in refused.text, refused.text
    assert call(server, "GET", "/Patient?organization=Organization/sec-b&_summary=count",
                doctor_b).json()["total"] == before
    accepted = visit(with_order=True)
    assert accepted.status_code == 200, accepted.text
    consent_url = accepted.json()["entry"][1]["response"]["location"]
    stored = call(server, "GET", "/Consent/" + consent_url.split("Consent/", 1)[1].split("/")[0], doctor_b).json()
    assert {e["url"].rsplit("/", 1)[1]: e.get("valueCode") for e in stored["extension"]}["hr-consent-capture"] \
        == "attested"


def test_a_warning_and_a_refusal_read_the_same_on_every_write_route(secure: tuple[ServerProcess, Keys]) -> None:
    """One write pipeline: the advice on a resident ID that cannot link, the scope refusal of a read-only token and
    the owner refusal of another hospital's record come back with the same words for POST, PUT, PATCH and a
    transaction entry (only the entry's name is prefixed)."""
    server, _ = secure
    writer = hs(server, scope="system/*.cruds", organization="Organization/sec-a")
    reader = hs(server, scope="user/*.rs", organization="Organization/sec-a", fhirUser="Practitioner/doc-a")
    bad_id = {"system": "urn:oid:2.16.156.10011.1.3", "value": "110105194912310021"}  # wrong check character
    pid = f"route-{uuid.uuid4().hex[:6]}"
    mine = {"resourceType": "Patient", "id": pid, "managingOrganization": {"reference": "Organization/sec-a"}}
    assert call(server, "PUT", f"/Patient/{pid}", writer, mine).status_code == 201

    def routes(token: str, resource: dict[str, Any]) -> dict[str, requests.Response]:
        target = resource.get("id", pid)
        patch = [{"op": "replace", "path": "/managingOrganization", "value": resource["managingOrganization"]}]
        if resource.get("identifier"):
            patch.append({"op": "add", "path": "/identifier", "value": resource["identifier"]})
        body = {k: v for k, v in resource.items() if k != "id"}
        tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": body, "request": {"method": "POST", "url": "Patient"}}]}
        prefer = {"Prefer": "return=OperationOutcome"}
        return {
            "POST": call(server, "POST", "/Patient", token, body, **prefer),
            "PUT": call(server, "PUT", f"/Patient/{target}", token, {**resource, "id": target}, **prefer),
            "PATCH": requests.patch(f"{server.base}/Patient/{target}", data=json.dumps(patch), timeout=30, headers={
                "Content-Type": "application/json-patch+json", "Authorization": f"Bearer {token}", **prefer}),
            "transaction": call(server, "POST", "", token, tx),
        }

    def said(response: requests.Response) -> list[str]:
        body = response.json()
        if body.get("resourceType") == "Bundle":
            body = body["entry"][0]["response"].get("outcome", {})
        return [re.sub(r"^Bundle\.entry\[0\]: ", "", i["diagnostics"]) for i in body.get("issue", [])
                if i.get("severity") in ("warning", "error")]

    advised = routes(writer, {**mine, "identifier": [bad_id]})
    assert {route: r.status_code for route, r in advised.items()} == {
        "POST": 201, "PUT": 200, "PATCH": 200, "transaction": 200}, {k: v.text for k, v in advised.items()}
    words = {route: said(r) for route, r in advised.items()}
    assert all(w == words["POST"] and any("is not valid" in x for x in w) for w in words.values()), words

    refused = routes(reader, mine)
    assert {r.status_code for r in refused.values()} == {403}, {k: v.text for k, v in refused.items()}
    words = {route: said(r) for route, r in refused.items()}
    assert words["POST"] == words["transaction"] and "do not allow create" in words["POST"][0], words
    assert words["PUT"] == words["PATCH"] and "do not allow update" in words["PUT"][0], words

    others = routes(writer, {**mine, "managingOrganization": {"reference": "Organization/sec-b"}})
    assert {r.status_code for r in others.values()} == {403}, {k: v.text for k, v in others.items()}
    assert all(any("does not belong to" in x for x in said(r)) for r in others.values())
