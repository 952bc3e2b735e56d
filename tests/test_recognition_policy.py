"""The policy as data, over HTTP: close medical alliances as a scope of their own, a region's level direction,
list versions in force by date, and the plain-Chinese explanation for the patient (seed stories: Guizhou's
county medical community, Chongqing's growing list)."""

from __future__ import annotations

import json
import re

from conftest import FHIR_JSON
from network import ITEM, ROOT, C, decision, put_all, report


def recognize(http, base, result_id: str, requester: str, when: str = "2026-11-23T12:00:00+08:00") -> dict:
    response = http.post(f"{base}/DiagnosticReport/{result_id}/$recognize", headers={"Content-Type": FHIR_JSON},
                         json={"resourceType": "Parameters", "parameter": [
                             {"name": "requester", "valueReference": {"reference": f"Organization/{requester}"}},
                             {"name": "date", "valueDateTime": when}]})
    assert response.status_code == 200, response.text
    return decision(response.json())


def test_a_township_ct_is_recognized_by_its_county_hospital_inside_the_medical_community(http, base, guizhou):
    ids, results = guizhou["ids"], guizhou["results"]
    inside = recognize(http, base, results["township_ct"], ids["county"])
    assert inside["recognizable"] is True, inside
    assert inside["list"].startswith(f"{C}/ValueSet/hr-scope-alliance|")
    # The same result, asked by a tertiary hospital outside the community: the item's minimum level (CT: 2) and
    # Guizhou's level direction (level 3 does not take level-1 results) both refuse it.
    outside = recognize(http, base, results["township_ct"], ids["tertiary"])
    assert outside["recognizable"] is False
    assert set(outside["reason"]) == {"performer-level-too-low", "level-direction"}
    assert outside["list"].startswith(f"{C}/ValueSet/hr-scope-520000|")


def test_an_organization_not_stored_as_an_alliance_makes_no_alliance(http, base, guizhou):
    ids, results = guizhou["ids"], guizhou["results"]
    # tertiary and township share the "fake" group: still refused, by the regional rules
    answer = recognize(http, base, results["township_dr"], ids["tertiary"])
    assert answer["recognizable"] is False and answer["reason"] == ["level-direction"]


def test_guizhou_level_direction_level_two_and_three_recognize_each_other(http, base, guizhou):
    ids, results = guizhou["ids"], guizhou["results"]
    assert recognize(http, base, results["tertiary_ct"], ids["city2"])["recognizable"] is True  # 2 takes 3
    assert recognize(http, base, results["city2_ct"], ids["tertiary"])["recognizable"] is True  # 3 takes 2
    # level 1 takes every level (the county community's township asks the tertiary hospital's result)
    assert recognize(http, base, results["tertiary_ct"], ids["township"])["recognizable"] is True


def test_the_rules_table_in_the_data_is_what_decides(http, base, guizhou):
    """The Guizhou pairs come from the scope ValueSet (extension hr-level-direction), not from code."""
    vs = http.get(f"{base}/ValueSet/hr-scope-520000").json()
    pairs = {(e["extension"][0]["valueInteger"], e["extension"][1]["valueInteger"]) for e in vs["extension"]
             if e["url"].endswith("/hr-level-direction")}
    assert (3, 1) not in pairs and {(2, 3), (3, 2), (1, 1)} <= pairs
    alliance_vs = http.get(f"{base}/ValueSet/hr-scope-alliance").json()
    assert {"url": f"{C}/StructureDefinition/hr-min-level-applies", "valueBoolean": False} in alliance_vs["extension"]


def _codes(name: str) -> list[str]:
    vs = json.loads((ROOT / "terminology" / f"ValueSet-{name}.json").read_text(encoding="utf-8"))
    return [c["code"] for c in vs["compose"]["include"][0]["concept"]]


def test_a_list_version_that_did_not_yet_hold_the_item(http, base, net):
    """Chongqing's 2025 list had 60 imaging items; the 2026 list (in force from 2026-01-01) has 80. A CT of an
    item added in 2026 is judged against the list in force when it is used."""
    added = next(c for c in _codes("hr-scope-500000") if c not in _codes("hr-scope-500000-2025.1")
                 and c.startswith("CT-"))
    ids, t = net["ids"], net["t"]
    put_all(http, base, [report(f"{t}-v25", ids["adult"], ids["yubei"], added, "2025-12-20T10:00:00+08:00")])
    in_2025 = recognize(http, base, f"{t}-v25", ids["children"], "2025-12-28T10:00:00+08:00")
    assert in_2025["recognizable"] is False and in_2025["reason"] == ["not-in-scope"]
    assert in_2025["list"] == f"{C}/ValueSet/hr-scope-500000|2025.1"
    in_2026 = recognize(http, base, f"{t}-v25", ids["children"], "2026-01-05T10:00:00+08:00")
    assert in_2026["recognizable"] is True and in_2026["list"] == f"{C}/ValueSet/hr-scope-500000|2026.1"
    # both versions are published side by side, each with its effective period
    found = http.get(f"{base}/ValueSet", params={"url": f"{C}/ValueSet/hr-scope-500000"}).json()
    periods = {e["resource"]["version"]: next(x["valuePeriod"] for x in e["resource"]["extension"]
                                              if x["url"].endswith("resource-effectivePeriod"))
               for e in found["entry"]}
    assert periods == {"2025.1": {"end": "2025-12-31"}, "2026.1": {"start": "2026-01-01"}}
    old = http.get(f"{base}/ValueSet/$expand", params={"url": f"{C}/ValueSet/hr-scope-500000",
                                                        "valueSetVersion": "2025.1", "filter": added}).json()
    assert old["expansion"]["total"] == 0 and old["version"] == "2025.1"


def test_the_patient_reads_the_refusal_in_plain_chinese(http, base, guizhou):
    ids, results = guizhou["ids"], guizhou["results"]
    outside = recognize(http, base, results["township_ct"], ids["tertiary"])
    text = outside["patientExplanation"]
    assert "某镇卫生院" in text and "需要重新检查" in text and "更高级别的医院" in text
    assert not re.search(r"[a-z]+-[a-z]+", text), text  # no codes
    assert "level" in outside["explanation"] or "机构级别不足" in outside["explanation"]
    inside = recognize(http, base, results["township_ct"], ids["county"])
    assert "不用重复检查" in inside["patientExplanation"]


def test_duplicate_check_gives_the_patient_sentence_too(http, base, guizhou):
    ids = guizhou["ids"]
    order = {"resourceType": "ServiceRequest", "status": "draft", "intent": "order",
             "code": {"coding": [{"system": ITEM, "code": "CT-HEAD"}]},
             "subject": {"reference": f"Patient/{ids['patient']}"},
             "requester": {"reference": f"Organization/{ids['tertiary']}"}}
    body = {"resourceType": "Parameters", "parameter": [{"name": "request", "resource": order}]}
    bundle = http.post(f"{base}/ServiceRequest/$duplicate-check", headers={"Content-Type": FHIR_JSON}, json=body).json()
    issue = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DetectedIssue")
    patient = next(x["valueString"] for x in issue["extension"] if x["url"].endswith("/hr-patient-text"))
    assert "不能直接使用" in patient and "更高级别的医院" in patient
