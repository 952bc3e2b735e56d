"""`fhirserver demo` loads a network in which the README's recognition examples work."""

from __future__ import annotations

import subprocess
import sys

from conftest import FHIR_JSON


def test_demo_network_loads_and_the_readme_story_works(http, base):
    result = subprocess.run(
        [sys.executable, "-m", "fhirserver", "demo", "--url", base], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    answer = http.post(
        f"{base}/DiagnosticReport/demo-dr-chest/$recognize",
        headers={"Content-Type": FHIR_JSON},
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "requester", "valueReference": {"reference": "Organization/demo-cq-children"}}],
        },
    )
    assert answer.json()["parameter"][0] == {"name": "recognizable", "valueBoolean": True}
    order = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"identifier": {"system": "urn:oid:2.16.156.10011.1.3", "value": "50011220190501001X"}},
        "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5"}]},
        "requester": {"reference": "Organization/demo-cq-children"},
    }
    check = {"resourceType": "Parameters", "parameter": [{"name": "request", "resource": order}]}
    bundle = http.post(
        f"{base}/ServiceRequest/$duplicate-check", headers={"Content-Type": FHIR_JSON}, json=check
    ).json()
    issue = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DetectedIssue")
    assert "重庆市渝北区人民医院" in issue["detail"] and "可互认" in issue["detail"]
    # the township's CT: refused by the children's hospital, taken by 渝北区人民医院 inside their medical community
    def township_ct(requester: str) -> dict:
        body = {"resourceType": "Parameters", "parameter": [
            {"name": "requester", "valueReference": {"reference": f"Organization/{requester}"}}]}
        answer = http.post(f"{base}/DiagnosticReport/demo-ct-head-township/$recognize",
                           headers={"Content-Type": FHIR_JSON}, json=body).json()
        return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in answer["parameter"]}
    assert township_ct("demo-cq-children")["recognizable"] is False
    inside = township_ct("demo-cq-yubei")
    assert inside["recognizable"] is True and "/ValueSet/hr-scope-alliance|" in inside["list"]
    again = subprocess.run(
        [sys.executable, "-m", "fhirserver", "demo", "--url", base], capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0  # loading twice is harmless (PUT by id)


def test_demo_loads_with_authentication_on_and_the_consent_shows_the_outside_dr(tmp_path):
    """Production story: auth on, every hospital's data written with its own token; the children's hospital sees
    the 渝北 chest DR of 小明 through its own record of him and the Consent given there; another hospital does not."""
    import os
    import time

    import jwt
    import requests
    from conftest import new_server

    secret, issuer = "demo-secret-" + "x" * 32, "https://auth.demo.example"
    server = new_server(tmp_path / "node")
    env = {"FHIRSERVER_AUTH": "on", "FHIRSERVER_AUTH_ISSUER": issuer, "FHIRSERVER_AUTH_HS256_SECRET": secret,
           "FHIRSERVER_BASE_URL": f"http://127.0.0.1:{server.port}/fhir"}
    server.extra_env.update(env)
    server.start()
    try:
        loaded = subprocess.run([sys.executable, "-m", "fhirserver", "demo", "--url", server.base],
                                capture_output=True, text=True, timeout=120, env={**os.environ, **env})
        assert loaded.returncode == 0, loaded.stderr

        def doctor(hospital: str) -> dict[str, str]:
            now = int(time.time())
            token = jwt.encode({"iss": issuer, "aud": server.base, "sub": f"doc-{hospital}", "iat": now, "nbf": now,
                                "exp": now + 600, "scope": "user/*.cruds", "organization": f"Organization/{hospital}",
                                "fhirUser": f"Practitioner/doc-{hospital}"}, secret, algorithm="HS256")
            return {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON}

        def check(hospital: str, patient: str = "demo-xiaoming-et") -> list[dict]:
            order = {"resourceType": "ServiceRequest", "status": "draft", "intent": "order",
                     "subject": {"reference": f"Patient/{patient}"},
                     "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5"}]},
                     "requester": {"reference": f"Organization/{hospital}"}}
            answer = requests.post(f"{server.base}/ServiceRequest/$duplicate-check", headers=doctor(hospital),
                                   timeout=30, json={"resourceType": "Parameters",
                                                     "parameter": [{"name": "request", "resource": order}]})
            assert answer.status_code == 200, answer.text
            return [e["resource"] for e in answer.json().get("entry", [])]

        def prompted(hospital: str) -> list[str]:
            return [r["id"] for r in check(hospital) if r["resourceType"] == "DiagnosticReport"]

        assert prompted("demo-cq-children") == ["demo-dr-chest"]
        assert not [r for r in check("demo-cq-children") if r["resourceType"] == "OperationOutcome"]
        assert prompted("demo-sc-huaxi") == []  # no consent for 华西: the DR stays invisible to it
        # 华西 is told that consent is needed, in the same words whether or not results exist (no oracle)
        told = check("demo-sc-huaxi")
        assert [r["resourceType"] for r in told] == ["OperationOutcome"]
        assert "patient's consent" in told[0]["issue"][0]["diagnostics"]
        assert check("demo-sc-huaxi", "no-such-patient") == told
        hidden = requests.get(f"{server.base}/DiagnosticReport/demo-dr-chest", headers=doctor("demo-sc-huaxi"),
                              timeout=30)
        assert hidden.status_code == 404
        # peering with auth on: the platform's token writes the peer Endpoints, owned by its organization
        now = int(time.time())
        claims = {"iss": issuer, "aud": server.base, "sub": "platform", "iat": now, "nbf": now, "exp": now + 600,
                  "scope": "system/*.cruds", "organization": "Organization/demo-network"}
        platform = jwt.encode(claims, secret, algorithm="HS256")
        peered = subprocess.run([sys.executable, "-m", "fhirserver", "peering", "--node", f"{server.base}=cq=500000",
                                 "--node", f"{server.base}=sc=510000"], capture_output=True, text=True, timeout=180,
                                env={**os.environ, **env, "FHIRSERVER_TOKEN": platform})
        assert peered.returncode == 0, peered.stderr
        stored = requests.get(f"{server.base}/Endpoint/peer-sc", timeout=30,
                              headers={"Authorization": f"Bearer {platform}"}).json()
        assert stored["managingOrganization"] == {"reference": "Organization/demo-network"}
    finally:
        server.stop()


def test_demo_follows_the_port_and_audit_verify_needs_no_auth_settings(server):
    """`make demo` after `make run` on another port; `audit verify` from a shell without the server's settings."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRSERVER_") or k == "FHIRSERVER_MONGODB_URI"}
    loaded = subprocess.run([sys.executable, "-m", "fhirserver", "demo"], capture_output=True, text=True, timeout=120,
                            env={**env, "FHIRSERVER_PORT": str(server.port)})
    assert loaded.returncode == 0, loaded.stderr
    verified = subprocess.run([sys.executable, "-m", "fhirserver", "audit", "verify", "--data-dir",
                               str(server.data_dir)], capture_output=True, text=True, timeout=120,
                              env={**env, "FHIRSERVER_MONGODB_DB": server.db_name})
    assert verified.returncode == 0 and "INTACT" in verified.stdout, verified.stdout + verified.stderr
