"""Doctors evaluate other hospitals' results (结果评价), over HTTP: coded, counted by $statistics per performing
hospital and item, listed for the quality-control centre, and never a silent exclusion."""

from __future__ import annotations

import time

import pytest
from conftest import FHIR_JSON, audit_settled, call_as, dev_token, wait_for
from network import C, affiliation, organization, report

EVALUATION = f"{C}/CodeSystem/hr-evaluation"
EVENT = f"{C}/CodeSystem/hr-event"


def evaluate(http, base, result: str, evaluator: str | None, code: str, note: str | None = None):
    parameters = [{"name": "evaluation", "valueCoding": {"system": EVALUATION, "code": code}}]
    if evaluator:
        parameters.append({"name": "evaluator", "valueReference": {"reference": f"Organization/{evaluator}"}})
    if note:
        parameters.append({"name": "note", "valueString": note})
    return http.post(f"{base}/DiagnosticReport/{result}/$evaluate", headers={"Content-Type": FHIR_JSON},
                     json={"resourceType": "Parameters", "parameter": parameters})


def evaluation_groups(http, base, organization: str) -> dict:
    report = http.get(f"{base}/$statistics", params={"organization": organization}).json()
    return {g["code"]["coding"][0]["code"]: g for g in report["group"] if g["code"].get("coding")}


def test_evaluations_are_counted_per_performer_and_item_and_listed_for_qc(http, base, store, guizhou):
    ids, results = guizhou["ids"], guizhou["results"]
    township = f"Organization/{ids['township']}"
    assert evaluate(http, base, results["township_ct"], ids["county"], "acceptable").status_code == 200
    poor = evaluate(http, base, results["township_ct"], ids["tertiary"], "image-quality-insufficient")
    assert poor.status_code == 200, poor.text
    out = {p["name"]: p for p in poor.json()["parameter"]}
    assert out["performer"]["valueReference"]["reference"] == township
    assert evaluate(http, base, results["township_dr"], ids["tertiary"], "other", "侧位片缺失").status_code == 200
    audit_settled(store)

    groups = evaluation_groups(http, base, township)
    assert groups["evaluation"]["measureScore"]["value"] == 3
    assert groups["poor"]["measureScore"]["value"] == 2
    strata = {(s["value"]["coding"][0]["code"], s["component"][1]["value"].get("coding", [{}])[0].get("code")):
              s["measureScore"]["value"] for s in groups["evaluation"]["stratifier"][0]["stratum"]
              if s["component"][0]["value"]["text"] == township}
    assert strata == {("acceptable", "CT-HEAD"): 1, ("image-quality-insufficient", "CT-HEAD"): 1,
                      ("other", "DX-CHEST"): 1}

    # The QC centre's list: the township's poorly evaluated results, with the doctors' notes.
    listed = http.get(f"{base}/AuditEvent", params={"type": f"{EVENT}|evaluation", "subtype": f"{EVALUATION}|poor",
                                                   "entity": township}).json()
    assert len(listed["entry"]) == 2
    whats = {e["resource"]["entity"][0]["what"]["reference"] for e in listed["entry"]}
    assert whats == {f"DiagnosticReport/{results['township_ct']}", f"DiagnosticReport/{results['township_dr']}"}
    assert "侧位片缺失" in {e["resource"]["entity"][0].get("description") for e in listed["entry"]}

    # Poor evaluations do not exclude the result: the county hospital still recognizes it (QC decides, as data).
    answer = http.post(f"{base}/DiagnosticReport/{results['township_ct']}/$recognize",
                       headers={"Content-Type": FHIR_JSON}, json={"resourceType": "Parameters", "parameter": [
                           {"name": "requester", "valueReference": {"reference": f"Organization/{ids['county']}"}},
                           {"name": "date", "valueDateTime": "2026-11-23T12:00:00+08:00"}]}).json()
    assert next(p["valueBoolean"] for p in answer["parameter"] if p["name"] == "recognizable") is True


@pytest.mark.parametrize(("code", "note", "evaluator", "status", "where"), [
    ("excellent", None, "county", 400, "evaluation"),       # not a code of hr-evaluation
    ("poor", None, "county", 400, "evaluation"),            # the group, not an evaluation
    ("other", None, "county", 400, "note"),                 # 'other' needs its text
    ("acceptable", None, None, 400, "evaluator"),           # who evaluates is required (auth off)
    ("acceptable", None, "township", 422, "evaluator"),     # a hospital's own result is not an outside result
])
def test_bad_evaluations_are_refused_and_nothing_is_recorded(http, base, store, guizhou, code, note, evaluator,
                                                             status, where):
    ids, results = guizhou["ids"], guizhou["results"]
    audit_settled(store)
    before = evaluation_groups(http, base, f"Organization/{ids['township']}")["evaluation"]["measureScore"]["value"]
    response = evaluate(http, base, results["township_ct"], ids[evaluator] if evaluator else None, code, note)
    assert response.status_code == status, response.text
    issue = response.json()["issue"][0]
    assert issue["expression"] == [where] and issue["diagnostics"]
    audit_settled(store)
    after = evaluation_groups(http, base, f"Organization/{ids['township']}")["evaluation"]["measureScore"]["value"]
    assert after == before


def test_evaluating_a_result_that_does_not_exist_is_404(http, base, guizhou):
    response = evaluate(http, base, "no-such-report", guizhou["ids"]["county"], "acceptable")
    assert response.status_code == 404 and response.json()["resourceType"] == "OperationOutcome"


def test_with_authentication_on_the_qc_centre_and_the_performer_read_the_evaluations(authed):
    """The county hospital evaluates the township's report of its own order; the QC centre that accredited the
    township (its qc-accredited affiliation's organization) and the township read the evaluation; nobody else."""
    t = f"ev{int(time.time() * 1000) % 10**8}"
    ids = {k: f"{t}-{k}" for k in ("qc", "county", "township", "other", "patient")}
    admin = dev_token(authed, None, "system/*.cruds")
    registry = [{"resourceType": "Organization", "id": ids["qc"], "name": "某市检查检验质控中心"}]
    for key, level in (("county", "2A"), ("township", "1"), ("other", "2A")):
        registry.append(organization(ids[key], f"{key} 医院", level, "360482"))
        registry.append(affiliation(f"{t}-m-{key}", ids["qc"], ids[key], "network-member", "2020-01-01"))
        registry.append(affiliation(f"{t}-q-{key}", ids["qc"], ids[key], "qc-accredited", "2020-01-01"))
    qc = dev_token(authed, f"Organization/{ids['qc']}")  # the QC centre writes its own accreditations
    for resource in registry:
        writer = qc if resource["resourceType"] == "OrganizationAffiliation" else admin
        assert call_as(authed, "PUT", f"/{resource['resourceType']}/{resource['id']}", writer,
                       resource).status_code in (200, 201)
    county = dev_token(authed, f"Organization/{ids['county']}")
    township = dev_token(authed, f"Organization/{ids['township']}")
    patient = {"resourceType": "Patient", "id": ids["patient"],
               "managingOrganization": {"reference": f"Organization/{ids['county']}"}}
    assert call_as(authed, "PUT", f"/Patient/{ids['patient']}", county, patient).status_code in (200, 201)
    order = call_as(authed, "POST", "/ServiceRequest", county, {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "code": {"coding": [{"system": f"{C}/CodeSystem/hr-item", "code": "DX-CHEST"}]},
        "subject": {"reference": f"Patient/{ids['patient']}"},
        "requester": {"reference": f"Organization/{ids['county']}"}}).json()
    result = report(f"{t}-dr", ids["patient"], ids["township"], "DX-CHEST", "2026-11-30T10:00:00+08:00")
    result["basedOn"] = [{"reference": f"ServiceRequest/{order['id']}"}]
    assert call_as(authed, "PUT", f"/DiagnosticReport/{t}-dr", township, result).status_code in (200, 201)

    body = {"resourceType": "Parameters", "parameter": [
        {"name": "evaluation", "valueCoding": {"system": EVALUATION, "code": "report-incomplete"}}]}
    # the evaluator is the caller's organization: naming another one is refused
    forged = {**body, "parameter": [*body["parameter"], {"name": "evaluator", "valueReference": {
        "reference": f"Organization/{ids['other']}"}}]}
    assert call_as(authed, "POST", f"/DiagnosticReport/{t}-dr/$evaluate", county, forged).status_code == 403
    done = call_as(authed, "POST", f"/DiagnosticReport/{t}-dr/$evaluate", county, body)
    assert done.status_code == 200, done.text
    # likewise $recognize: the views and recognitions it records are the requester's, so it is the caller's own
    as_other = {"resourceType": "Parameters", "parameter": [
        {"name": "requester", "valueReference": {"reference": f"Organization/{ids['other']}"}}]}
    assert call_as(authed, "POST", f"/DiagnosticReport/{t}-dr/$recognize", county, as_other).status_code == 403
    as_self = {"resourceType": "Parameters", "parameter": [
        {"name": "requester", "valueReference": {"reference": f"Organization/{ids['county']}"}}]}
    assert call_as(authed, "POST", f"/DiagnosticReport/{t}-dr/$recognize", county, as_self).status_code == 200

    query = (f"/AuditEvent?type={EVENT}|evaluation&subtype={EVALUATION}|poor&entity=Organization/{ids['township']}")

    def listed(bearer: str) -> list:
        return [e["resource"]["id"] for e in call_as(authed, "GET", query, bearer).json().get("entry", [])]

    assert len(wait_for(lambda: listed(qc))) == 1
    assert len(listed(township)) == 1
    assert listed(dev_token(authed, f"Organization/{ids['other']}")) == []
