"""Every FHIR body the server answers validates with an independent model of FHIR (fhir.resources, R4B models):
reads, searches with includes and elements, history, Bundles' answers, every operation, and the OperationOutcomes
of mistakes. A representative run over the demo network, as a vendor's client would parse it (issue 17)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import FHIR_JSON, ServerProcess, new_server, observation
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

ITEM = "http://hr.example.org/fhir/CodeSystem/hr-item"
NATIONAL = "urn:oid:2.16.156.10011.1.3"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = new_server(tmp_path_factory.mktemp("validity")).start()
    loaded = subprocess.run([sys.executable, "-m", "fhirserver", "demo", "--url", server.base], capture_output=True,
                            text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    yield server
    server.stop()


def _parameters(**values: Any) -> dict[str, Any]:
    parameter = []
    for name, value in values.items():
        if isinstance(value, dict) and "resourceType" in value:
            parameter.append({"name": name, "resource": value})
        elif isinstance(value, dict):
            parameter.append({"name": name, "valueReference": value})
        else:
            parameter.append({"name": name, "valueCode" if name == "mode" else "valueString": value})
    return {"resourceType": "Parameters", "parameter": parameter}


def _requests(base: str) -> list[tuple[str, str, Any, dict[str, str]]]:
    """(method, path, JSON body or None, extra headers): what a representative client run asks."""
    order = {"resourceType": "ServiceRequest", "status": "draft", "intent": "order",
             "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5"}]},
             "subject": {"reference": "Patient/demo-xiaoming-et"},
             "requester": {"reference": "Organization/demo-cq-children"}}
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0b5e7a52-1f7c-4d7e-9a53-5f0d7c2b9e01", "resource": {
            "resourceType": "Patient", "name": [{"text": "验证"}]}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {**observation("validity-1"), "subject": {
            "reference": "urn:uuid:0b5e7a52-1f7c-4d7e-9a53-5f0d7c2b9e01"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": "Patient/demo-xiaoming"}}]}
    batch = {**tx, "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
        {"resource": observation(None, status="bogus"), "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": "DiagnosticReport?subject=Patient/demo-xiaoming"}}]}
    return [
        ("GET", "/metadata", None, {}),
        ("GET", "/Patient/demo-xiaoming", None, {}),
        ("GET", "/Patient/demo-xiaoming?_summary=true", None, {}),
        ("GET", "/Patient/demo-xiaoming?_elements=name", None, {}),
        ("GET", "/Patient?name=%E5%B0%8F%E6%98%8E&_revinclude=DiagnosticReport:subject&_total=accurate", None, {}),
        ("GET", "/DiagnosticReport?_include=DiagnosticReport:subject&_include:iterate=Patient:organization", None, {}),
        ("GET", "/DiagnosticReport?_elements=status,issued&_count=2", None, {}),
        ("GET", "/DiagnosticReport?_summary=count", None, {}),
        ("GET", "/DiagnosticReport?mark=hr-scope-chuanyu&unknown-param=1", None, {}),
        ("GET", f"/DiagnosticReport?person={NATIONAL}%7C50011220190501001X", None, {}),
        ("GET", "/Patient/demo-xiaoming/_history", None, {}),
        ("GET", "/DiagnosticReport/_history?_count=3", None, {}),
        ("GET", "/Patient/demo-xiaoming-et/$everything", None, {}),
        ("POST", "/Patient/$match", _parameters(resource={"resourceType": "Patient", "identifier": [
            {"system": NATIONAL, "value": "50011220190501001X"}]}), {}),
        ("POST", "/DiagnosticReport/demo-dr-chest/$recognize",
         _parameters(requester={"reference": "Organization/demo-cq-children"}), {}),
        ("POST", "/DiagnosticReport/demo-ct-head-township/$recognize",
         _parameters(requester={"reference": "Organization/demo-cq-children"}, mode="check"), {}),
        ("POST", "/ServiceRequest/$duplicate-check", _parameters(request=order), {}),
        ("GET", "/$statistics?period-start=2026-01-01&period-end=2026-12-31", None, {}),
        ("GET", f"/CodeSystem/$lookup?system={ITEM}&code=CT-HEAD", None, {}),
        ("GET", "/ValueSet/hr-scope-national/$expand?count=5", None, {}),
        ("GET", f"/ValueSet/$validate-code?url=http://hr.example.org/fhir/ValueSet/hr-scope-chuanyu&system={ITEM}"
                f"&code=LAB-HEM-001", None, {}),
        ("GET", "/ConceptMap/$translate?system=http://loinc.org&code=24627-2", None, {}),
        ("GET", f"/ConceptMap/hr-loinc-to-item/$translate?system={ITEM}&code=CT-CHEST&reverse=true", None, {}),
        ("GET", f"/CodeSystem/$subsumes?system={ITEM}&codeA=IMG&codeB=CT-HEAD", None, {}),
        ("POST", "/Observation/$validate", observation("v"), {}),
        ("POST", "", tx, {}),
        ("POST", "", batch, {}),
        ("POST", "/Observation", observation("validity-2"), {"Prefer": "return=OperationOutcome"}),
        ("GET", "/Consent/demo-consent-xiaoming", None, {}),
        ("GET", "/AuditEvent?_count=5", None, {}),
        ("GET", "/DetectedIssue?_count=5", None, {}),
        # the answers to mistakes
        ("GET", "/Patient/no-such-patient", None, {}),
        ("GET", "/Observation?value-quantity=big", None, {}),
        ("GET", "/Observation?nope=1", None, {"Prefer": "handling=strict"}),
        ("POST", "/Observation", {**observation(None), "status": "bogus"}, {}),
        ("PUT", "/Patient/demo-xiaoming", {"resourceType": "Patient", "id": "demo-xiaoming"}, {"If-Match": 'W/"99"'}),
        ("DELETE", "/Patient", None, {}),
        ("GET", "/NoSuchType/1", None, {}),
        ("POST", "/ServiceRequest/$duplicate-check", {"resourceType": "Parameters"}, {}),
        ("GET", "/$statistics?period-start=bogus", None, {}),
    ]


def test_every_answer_validates_with_the_r4b_models(demo: ServerProcess) -> None:
    problems = []
    seen = 0
    for method, path, body, headers in _requests(demo.base):
        response = requests.request(method, f"{demo.base}{path}", timeout=60, headers={
            "Accept": FHIR_JSON, **({"Content-Type": FHIR_JSON} if body is not None else {}), **headers},
            data=None if body is None else json.dumps(body, ensure_ascii=False).encode())
        assert response.status_code < 500, (method, path, response.text[:500])
        if not response.content:
            continue
        assert response.headers["Content-Type"].startswith(FHIR_JSON), (method, path, response.headers)
        answer = response.json()
        seen += 1
        try:
            get_fhir_model_class(answer["resourceType"]).model_validate(answer)
        except (ValidationError, KeyError) as exc:  # an invalid body, or a resourceType FHIR lacks
            problems.append(f"{method} {path} -> {response.status_code} {answer.get('resourceType')}: "
                            f"{str(exc)[:800]}")
    assert seen >= 35
    assert not problems, "\n\n".join(problems)
