"""Doctors evaluate other hospitals' results (结果评价), over HTTP: coded, counted by $statistics per performing
hospital and item, listed for the quality-control centre, and never a silent exclusion."""

from __future__ import annotations

import pytest
from conftest import FHIR_JSON, audit_settled
from network import C

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
