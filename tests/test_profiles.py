"""Profile validation (StructureDefinitions in profiles/), $validate, and item coding at ingestion."""

from __future__ import annotations

import copy

import pytest
import requests
from conftest import FHIR_JSON, new_server, post, stored_counts, unique

C = "http://hr.example.org/fhir"
ITEM = f"{C}/CodeSystem/hr-item"
LEVEL = f"{C}/CodeSystem/hr-institution-level"


def profile(name: str) -> dict:
    return {"profile": [f"{C}/StructureDefinition/{name}"]}


GOOD = {
    "hr-organization": {"resourceType": "Organization", "meta": profile("hr-organization"),
                        "extension": [{"url": f"{C}/StructureDefinition/hr-region",
                                       "valueCoding": {"system": f"{C}/CodeSystem/hr-region", "code": "510100"}}],
                        "identifier": [{"system": "urn:uscc", "value": "12510000450717830A"}],
                        "type": [{"coding": [{"system": LEVEL, "code": "3A"}]}], "name": "四川省示范人民医院"},
    "hr-organization-affiliation": {
        "resourceType": "OrganizationAffiliation", "meta": profile("hr-organization-affiliation"), "active": True,
        "period": {"start": "2023-01-01"}, "organization": {"reference": "Organization/network-510000"},
        "participatingOrganization": {"reference": "Organization/hospital-a"},
        "code": [{"coding": [{"system": f"{C}/CodeSystem/hr-affiliation", "code": "qc-accredited"}]}],
        "specialty": [{"coding": [{"system": ITEM, "code": "LAB"}]}]},
    "hr-observation": {"resourceType": "Observation", "meta": profile("hr-observation"), "status": "final",
                       "code": {"coding": [{"system": ITEM, "code": "LAB-HEM-014"}]},
                       "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-11-01",
                       "performer": [{"reference": "Organization/hospital-a"}],
                       "valueQuantity": {"value": 135, "unit": "g/L"}},
    "hr-diagnostic-report": {"resourceType": "DiagnosticReport", "meta": profile("hr-diagnostic-report"),
                             "status": "final", "category": [{"text": "检验"}],
                             "code": {"coding": [{"system": ITEM, "code": "LAB-HEM-001"}]},
                             "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-11-01",
                             "issued": "2026-11-01T10:00:00+08:00",
                             "performer": [{"reference": "Organization/hospital-a"}],
                             "result": [{"reference": "Observation/o1"}]},
    "hr-imaging-study": {"resourceType": "ImagingStudy", "meta": profile("hr-imaging-study"), "status": "available",
                         "subject": {"reference": "Patient/p1"}, "started": "2026-11-01T09:00:00+08:00",
                         "procedureCode": [{"coding": [{"system": ITEM, "code": "CT-CHEST"}]}],
                         "series": [{"uid": "1.2.3", "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM",
                                                                 "code": "CT"}}]},
    "hr-service-request": {"resourceType": "ServiceRequest", "meta": profile("hr-service-request"), "status": "active",
                           "intent": "order", "subject": {"reference": "Patient/p1"},
                           "code": {"coding": [{"system": ITEM, "code": "CT-CHEST"}]},
                           "extension": [{"url": f"{C}/StructureDefinition/hr-override-reason",
                                          "valueCodeableConcept": {"coding": [{"system": f"{C}/CodeSystem/hr-exception",
                                                                               "code": "condition-changed"}]}}]},
}


def broken(name: str) -> tuple[dict, str, str]:
    """A non-conforming copy of each good example, the location expected and a word of the message."""
    resource = copy.deepcopy(GOOD[name])
    if name == "hr-organization":
        resource.pop("extension")
        return resource, f"Organization.extension('{C}/StructureDefinition/hr-region')", "required"
    if name == "hr-organization-affiliation":
        resource["code"] = [{"coding": [{"system": f"{C}/CodeSystem/hr-affiliation", "code": "friend"}]}]
        return resource, "OrganizationAffiliation.code", "not in the required ValueSet"
    if name == "hr-observation":
        resource["subject"] = {"reference": "Group/g1"}
        return resource, "Observation.subject", "must reference Patient"
    if name == "hr-diagnostic-report":
        resource.pop("issued")
        return resource, "DiagnosticReport.issued", "required"
    if name == "hr-imaging-study":
        resource["procedureCode"] = [{"coding": [{"system": ITEM, "code": "LAB-HEM-001"}]}]
        return resource, "ImagingStudy.procedureCode", "not in the required ValueSet"
    resource["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = "outside-window"
    return resource, f"ServiceRequest.extension('{C}/StructureDefinition/hr-override-reason').valueCodeableConcept", \
        "not in the required ValueSet"


@pytest.mark.parametrize("name", sorted(GOOD))
def test_conforming_resource_is_stored(http, base, name):
    response = post(http, base, GOOD[name])
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("name", sorted(GOOD))
def test_non_conforming_resource_is_422_with_location_and_nothing_stored(http, base, store, name):
    resource, location, words = broken(name)
    before = stored_counts(store, resource["resourceType"])
    response = post(http, base, resource)
    assert response.status_code == 422, response.text
    issues = response.json()["issue"]
    assert any(location in i.get("expression", []) and words in i["diagnostics"] for i in issues), issues
    assert stored_counts(store, resource["resourceType"]) == before


def test_extension_value_is_checked_against_its_definition(http, base):
    resource = copy.deepcopy(GOOD["hr-organization"])
    resource["extension"][0]["valueCoding"]["code"] = "999999"
    response = post(http, base, resource)
    assert response.status_code == 422
    assert "Organization.extension" in response.json()["issue"][0]["expression"][0]


def test_unknown_profile_claim_is_not_enforced(http, base):
    resource = {"resourceType": "Observation", "meta": {"profile": ["http://example.org/some-other-ig"]},
                "status": "final", "code": {"text": "x"}}
    assert post(http, base, resource).status_code == 201


def test_validate_operation_type_and_instance_level(http, base):
    resource, location, _ = broken("hr-observation")
    outcome = http.post(f"{base}/Observation/$validate", json=resource, headers={"Content-Type": FHIR_JSON}).json()
    assert outcome["resourceType"] == "OperationOutcome" and location in outcome["issue"][0]["expression"]
    plain = {k: v for k, v in resource.items() if k != "meta"}
    with_profile = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": plain},
        {"name": "profile", "valueUri": f"{C}/StructureDefinition/hr-observation"}]}
    checked = http.post(f"{base}/Observation/$validate", json=with_profile, headers={"Content-Type": FHIR_JSON}).json()
    assert any(location in i.get("expression", []) for i in checked["issue"])
    stored = post(http, base, {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}).json()
    instance = http.get(f"{base}/Observation/{stored['id']}/$validate",
                        params={"profile": "hr-observation"}).json()
    locations = {e for i in instance["issue"] for e in i.get("expression", [])}
    assert {"Observation.subject", "Observation.effective", "Observation.performer"} <= locations
    valid = http.post(f"{base}/Observation/$validate", json=GOOD["hr-observation"],
                      headers={"Content-Type": FHIR_JSON}).json()
    assert valid["issue"][0]["severity"] == "information"
    unknown = http.get(f"{base}/Observation/{stored['id']}/$validate", params={"profile": "nope"})
    assert unknown.status_code == 400


def test_results_get_their_item_coding_at_ingestion(http, base):
    tag = unique("enrich")
    meta = {"tag": [{"system": "urn:test", "code": tag}]}
    by_loinc = post(http, base, {"resourceType": "Observation", "meta": meta, "status": "final",
                                 "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]}}).json()
    assert {"system": ITEM, "code": "LAB-HEM-014", "display": "血红蛋白"} in by_loinc["code"]["coding"]
    by_local = post(http, base, {"resourceType": "DiagnosticReport", "meta": meta, "status": "final",
                                 "code": {"coding": [{"system": "http://hospital-a.example.cn/CodeSystem/lis",
                                                      "code": "JY0001", "display": "血常规(本院)"}]}}).json()
    assert by_local["code"]["coding"][-1]["code"] == "LAB-HEM-001"
    assert by_local["code"]["coding"][0]["code"] == "JY0001"  # the sender's coding is kept
    study = post(http, base, {"resourceType": "ImagingStudy", "meta": meta, "status": "available",
                              "subject": {"reference": "Patient/p1"}, "series": [
                                  {"uid": "1.2.840.1", "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM",
                                                                   "code": "CT"},
                                   "bodySite": {"code": "HEAD"}}]}).json()
    assert study["procedureCode"][0]["coding"][0]["code"] == "CT-HEAD"
    found = http.get(f"{base}/Observation", params={"item": "LAB-HEM-014", "_tag": f"urn:test|{tag}"}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [by_loinc["id"]]
    assert http.get(f"{base}/ImagingStudy", params={"item": "CT-HEAD", "_tag": f"urn:test|{tag}"}).json()["entry"]


def test_enforced_profile_applies_to_every_resource_of_its_type(tmp_path):
    server = new_server(tmp_path / "node", FHIRSERVER_ENFORCE_PROFILES="hr-organization").start()
    try:
        plain = {"resourceType": "Organization", "name": "无级别机构"}
        refused = requests.post(f"{server.base}/Organization", json=plain, headers={"Content-Type": FHIR_JSON},
                                timeout=30)
        assert refused.status_code == 422
        ok = {k: v for k, v in GOOD["hr-organization"].items() if k != "meta"}
        assert requests.post(f"{server.base}/Organization", json=ok, headers={"Content-Type": FHIR_JSON},
                             timeout=30).status_code == 201
        patient = requests.post(f"{server.base}/Patient", json={"resourceType": "Patient"},
                                headers={"Content-Type": FHIR_JSON}, timeout=30)
        assert patient.status_code == 201
    finally:
        server.stop()
