"""Validation accepts what is valid: every R4 specification example of our types is stored and read back
unchanged (tests/data/r4-examples, from hl7.fhir.r4.examples@4.0.1, re-created by tools/vendor_spec.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FHIR_JSON

from fhirserver.fhir.errors import FhirError
from fhirserver.fhir.validation import ResourceValidator

EXAMPLES = sorted((Path(__file__).parent / "data" / "r4-examples").glob("*.json"))
# A stored Subscription makes the server call its endpoint (the examples name real hosts), and its status is the
# server's to set (a client submits it as requested): the examples are validated, not stored.
SUBSCRIPTIONS = [p for p in EXAMPLES if p.name.startswith("Subscription-")]
STORED = [p for p in EXAMPLES if p not in SUBSCRIPTIONS]
PROFILES = Path(__file__).resolve().parents[1] / "profiles"


ITEM_SYSTEM = "http://hr.example.org/fhir/CodeSystem/hr-item"


def _without_item_codings(node):
    """The one documented addition at ingestion: the recognized-item coding beside the sender's codes."""
    if isinstance(node, list):
        return [_without_item_codings(v) for v in node if not (isinstance(v, dict) and v.get("system") == ITEM_SYSTEM)]
    if isinstance(node, dict):
        return {k: _without_item_codings(v) for k, v in node.items()}
    return node


def _without_server_meta(resource: dict) -> dict:
    resource = _without_item_codings(resource)
    out = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    return out


def test_examples_are_present():
    assert len(EXAMPLES) >= 180


@pytest.mark.parametrize("path", STORED, ids=[p.stem for p in STORED])
def test_specification_example_is_accepted_and_reads_back_unchanged(http, base, path):
    raw = path.read_bytes()
    resource = json.loads(raw)
    rtype, rid = resource["resourceType"], resource["id"]
    response = http.put(f"{base}/{rtype}/{rid}", data=raw, headers={"Content-Type": FHIR_JSON})
    assert response.status_code in (200, 201), response.text
    read = http.get(f"{base}/{rtype}/{rid}")
    assert read.status_code == 200
    # Parse decimals as text on both sides: "reads back unchanged" includes the digits of every number.
    stored = json.loads(read.text, parse_float=str)
    sent = json.loads(raw, parse_float=str)
    if rtype == "Endpoint":  # Endpoint.header carries a peer's credentials: stored, never shown (README)
        sent.pop("header", None)
    assert _without_server_meta(stored) == _without_server_meta(sent)


@pytest.mark.parametrize("path", SUBSCRIPTIONS, ids=[p.stem for p in SUBSCRIPTIONS])
def test_specification_subscription_example_is_valid(http, base, path):
    response = http.post(f"{base}/Subscription/$validate", data=path.read_bytes(), headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 200
    assert not [i for i in response.json()["issue"] if i["severity"] in ("error", "fatal")], response.text


@pytest.fixture(scope="module")
def validator() -> ResourceValidator:
    return ResourceValidator(PROFILES / "fhir.schema.v4.json")


def _issues(validator: ResourceValidator, resource: dict) -> list:
    with pytest.raises(FhirError) as caught:
        validator.validate(resource)
    return caught.value.issues


def test_required_binding_is_enforced(validator):
    issues = _issues(validator, {"resourceType": "DiagnosticReport", "status": "done", "code": {"text": "x"}})
    assert issues[0].code == "code-invalid"
    assert issues[0].expression == ("DiagnosticReport.status",)
    assert "registered" in issues[0].diagnostics


def test_nested_errors_have_indexed_fhirpath_locations(validator):
    resource = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "component": [{"code": {"text": "a"}}, {"code": {"text": "b"}, "valueQuantity": {"value": "1"}}]}
    issues = _issues(validator, resource)
    assert {e for i in issues for e in i.expression} == {"Observation.component[1].valueQuantity.value"}


def test_ideographic_space_and_chinese_text_are_valid_strings(validator):
    validator.validate({"resourceType": "Patient", "name": [{"text": "张　三"}], "address": [{"text": "重庆市渝中区"}]})


def test_contained_resources_are_validated(validator):
    resource = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "x"},
                "contained": [{"resourceType": "Observation", "id": "o1", "status": "nope", "code": {"text": "y"}}]}
    assert _issues(validator, resource)
