"""A third-party FHIR client (fhirpy, as an EMR vendor would use it) against the person features: two hospitals'
records of one person, an absolute subject reference, Patient $match and $everything; its conditional create."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from conftest import ServerProcess, new_server
from fhirpy import SyncFHIRClient

from fhirserver.persons.resident_id import check_character

NATIONAL = "urn:oid:2.16.156.10011.1.3"


def test_fhirpy_sees_one_person_across_two_records(base):
    client = SyncFHIRClient(base)
    body = f"11010519491231{uuid.uuid4().int % 1000:03d}"  # a valid birth date; the last three digits vary
    national = body + check_character(body)
    first = client.resource("Patient", identifier=[{"system": NATIONAL, "value": national}])
    first.save()
    second = client.resource("Patient", identifier=[{"system": NATIONAL, "value": national},
                                                    {"system": "urn:oid:2.16.156.10011.1.99.other", "value": "MRN-7"}])
    second.save()
    report = client.resource("DiagnosticReport", status="final", code={"text": "胸部DR"},
                             subject={"reference": f"{base}/Patient/{first.id}"})
    report.save()
    assert [r.id for r in client.resources("DiagnosticReport").search(subject=f"Patient/{first.id}").fetch_all()] \
        == [report.id]
    matched = client.execute("Patient/$match", method="post", data={"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Patient",
                                          "identifier": [{"system": NATIONAL, "value": national}]}}]})
    assert sorted(e["resource"]["id"] for e in matched["entry"]) == sorted([first.id, second.id])
    assert {e["search"]["extension"][0]["valueCode"] for e in matched["entry"]} == {"certain"}
    everything = client.execute(f"Patient/{second.id}/$everything", method="get",
                                params={"_type": "DiagnosticReport"})
    assert [e["resource"]["id"] for e in everything["entry"]] == [report.id]


def test_fhirpy_get_or_create_creates_once(base):
    """fhirpy's conditional create sends the criteria in the POST's query: the second call finds the first record."""
    client = SyncFHIRClient(base)
    mrn = f"MRN-{uuid.uuid4().hex[:8]}"
    patient = client.resource("Patient", identifier=[{"system": "urn:oid:2.16.156.10011.1.99.h1", "value": mrn}])
    search = client.resources("Patient").search(identifier=f"urn:oid:2.16.156.10011.1.99.h1|{mrn}")
    first, created = search.get_or_create(patient)
    again, created_again = search.get_or_create(patient)
    assert created and not created_again and first.id == again.id
    assert len(search.fetch_all()) == 1


# -- other vendors' clients, with authentication on ---------------------------------------------------------------
ISSUER = "https://auth.clients.example"
SECRET = "client-tests-secret-of-at-least-32-chars"
JS = Path(__file__).resolve().parent / "js"
TOKEN_URL = "https://auth.clients.example/realms/hr/protocol/openid-connect/token"  # Keycloak's form
AUTHORIZE_URL = "https://auth.clients.example/realms/hr/protocol/openid-connect/auth"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with authentication on (HS256 development tokens), as production runs with tokens."""
    handle = new_server(tmp_path_factory.mktemp("clients"))
    handle.extra_env.update({"FHIRSERVER_AUTH": "on", "FHIRSERVER_AUTH_ISSUER": ISSUER,
                             "FHIRSERVER_AUTH_HS256_SECRET": SECRET,
                             "FHIRSERVER_BASE_URL": f"http://127.0.0.1:{handle.port}/fhir",
                             "FHIRSERVER_AUTH_TOKEN_ENDPOINT": TOKEN_URL,
                             "FHIRSERVER_AUTH_AUTHORIZATION_ENDPOINT": AUTHORIZE_URL})
    handle.start()
    yield handle
    handle.stop()


def _token(server: ServerProcess, scope: str = "system/*.cruds") -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "aud": server.base, "sub": "vendor-app", "iat": now, "nbf": now - 5,
                       "exp": now + 900, "scope": scope, "organization": "Organization/clients-a"}, SECRET,
                      algorithm="HS256")


def _node(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None or not (JS / "node_modules").exists():
        pytest.fail("node and tests/js/node_modules are needed (make test runs npm ci in tests/js)")
    return subprocess.run(["node", str(JS / script), *args], capture_output=True, text=True, timeout=180)


def test_fhir_kit_client_does_crud_search_paging_history_transaction_and_errors(secured: ServerProcess) -> None:
    ran = _node("fhir_kit_client.mjs", secured.base, _token(secured))
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert json.loads(ran.stdout.strip().splitlines()[-1])["pages"] == 5


def test_medplum_client_does_crud_conditional_create_search_batch_and_errors(secured: ServerProcess) -> None:
    ran = _node("medplum.mjs", f"http://127.0.0.1:{secured.port}/", _token(secured))
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert json.loads(ran.stdout.strip().splitlines()[-1])["ok"] is True


def test_smart_fhirclient_reads_the_capability_statement_and_its_models_round_trip(secured: ServerProcess) -> None:
    """fhirclient (SMART's Python client) parses the CapabilityStatement with its R4 models, creates, reads and
    searches through its model classes with a bearer token."""
    from fhirclient import client
    from fhirclient.models.observation import Observation
    from fhirclient.models.patient import Patient

    smart = client.FHIRClient(settings={"app_id": "vendor-app", "api_base": secured.base + "/"})
    smart.server.session.headers["Authorization"] = f"Bearer {_token(secured)}"
    smart.server.get_capability()
    assert smart.server.capabilityStatement.fhirVersion == "4.0.1"
    patient = Patient({"name": [{"text": "赵六"}], "managingOrganization": {"reference": "Organization/clients-a"}})
    created = patient.create(smart.server)
    assert created["id"]
    read = Patient.read(created["id"], smart.server)
    assert read.name[0].text == "赵六"
    observation = Observation({"status": "final", "code": {"text": "血红蛋白"}, "subject": {
        "reference": f"Patient/{read.id}"}, "performer": [{"reference": "Organization/clients-a"}],
        "valueQuantity": {"value": 131, "unit": "g/L"}})
    observation.create(smart.server)
    found = list(Observation.where(struct={"subject": f"Patient/{read.id}"}).perform_resources_iter(smart.server))
    assert [o.valueQuantity.value for o in found] == [131]


def test_smart_discovery_names_the_configured_endpoints_and_only_true_grants(secured: ServerProcess, base) -> None:
    """With the identity provider's endpoints configured, SMART discovery (well-known and CapabilityStatement)
    names them as absolute URLs, with the grants they make possible; fhir-kit-client reads them. With
    authentication off the well-known document is a 404 that says so."""
    smart = requests.get(f"{secured.base}/.well-known/smart-configuration", timeout=10).json()
    assert smart["token_endpoint"] == TOKEN_URL and smart["authorization_endpoint"] == AUTHORIZE_URL
    assert smart["grant_types_supported"] == ["client_credentials", "authorization_code"]
    assert smart["response_types_supported"] == ["code"] and smart["issuer"] == ISSUER
    ran = _node("smart_discovery.mjs", secured.base)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert json.loads(ran.stdout.strip().splitlines()[-1]) == {"token": TOKEN_URL, "authorize": AUTHORIZE_URL}
    off = requests.get(f"{base}/.well-known/smart-configuration", timeout=10)
    assert off.status_code == 404 and "Authentication is off" in off.text
