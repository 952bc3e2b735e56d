"""Mutual recognition scenarios from the seed stories, over HTTP: decisions with coded reasons,
$duplicate-check, the re-order rule, the HR mark, CDS Hooks and $statistics."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import requests
from conftest import FHIR_JSON, audit_settled
from network import ITEM, NOW, WHEN, C, affiliation, day, decision, organization, report, scope_codes

ROOT = Path(__file__).resolve().parents[1]
def recognize(http, base, result: dict, requester: str, *context: str, mode: str = "check") -> dict:
    parameters = [
        {"name": "requester", "valueReference": {"reference": f"Organization/{requester}"}},
        {"name": "date", "valueDateTime": WHEN},
        {"name": "mode", "valueCode": mode},
    ]
    parameters += [
        {"name": "context", "valueCodeableConcept": {"coding": [{"system": f"{C}/CodeSystem/hr-exception", "code": c}]}}
        for c in context
    ]
    response = http.post(
        f"{base}/DiagnosticReport/{result['id']}/$recognize",
        headers={"Content-Type": FHIR_JSON},
        json={"resourceType": "Parameters", "parameter": parameters},
    )
    assert response.status_code == 200, response.text
    return decision(response.json())


def test_child_chest_dr_five_days_old_at_another_chongqing_hospital_is_recognized(http, base, net):
    answer = recognize(http, base, net["results"]["dr5"], net["ids"]["children"])
    assert answer["recognizable"] is True and answer["reason"] == []
    assert answer["item"]["code"] == "DX-CHEST" and answer["item"]["display"] == "胸部DR"
    # Chongqing recognizes DR results for 90 days (its scope overrides the 30-day default).
    assert answer["validUntil"].startswith((NOW - timedelta(days=5) + timedelta(days=90)).strftime("%Y-%m-%d"))
    assert answer["result"] == {"reference": f"DiagnosticReport/{net['results']['dr5']['id']}"}
    assert answer["list"] == "http://hr.example.org/fhir/ValueSet/hr-scope-500000|2026.1"  # the list it used


def test_the_same_dr_100_days_old_is_outside_the_window(http, base, net):
    assert recognize(http, base, net["results"]["dr100"], net["ids"]["children"])["reason"] == ["outside-window"]


def test_township_ct_for_an_item_requiring_level_two_is_not_recognized(http, base, net):
    answer = recognize(http, base, net["results"]["township_ct"], net["ids"]["children"])
    assert answer["recognizable"] is False and answer["reason"] == ["performer-level-too-low"]


def test_emergency_context_excludes(http, base, net):
    answer = recognize(http, base, net["results"]["dr5"], net["ids"]["children"], "emergency")
    assert answer["recognizable"] is False and answer["reason"] == ["emergency"]


def test_sichuan_result_inside_the_sichuan_chongqing_agreement_is_recognized_in_chongqing(http, base, net):
    inside = recognize(http, base, net["results"]["sc_inside"], net["ids"]["children"])
    assert inside["recognizable"] is True, inside
    outside = recognize(http, base, net["results"]["sc_outside"], net["ids"]["children"])
    assert outside["reason"] == ["not-in-scope"]


def test_hospital_that_left_the_network_is_not_recognized(http, base, net):
    assert recognize(http, base, net["results"]["left"], net["ids"]["children"])["reason"] == ["performer-not-admitted"]


def test_cancelled_report_is_not_recognized_and_amended_report_is(http, base, net):
    assert recognize(http, base, net["results"]["cancelled"], net["ids"]["children"])["reason"] == ["status-not-final"]
    assert recognize(http, base, net["results"]["amended"], net["ids"]["children"])["recognizable"] is True


def test_older_result_is_superseded_by_a_newer_one(http, base, net):
    assert recognize(http, base, net["results"]["older"], net["ids"]["children"])["reason"] == ["superseded"]
    assert recognize(http, base, net["results"]["newer"], net["ids"]["children"])["recognizable"] is True


def test_recognize_refuses_bad_input(http, base, net):
    url = f"{base}/DiagnosticReport/{net['results']['dr5']['id']}/$recognize"
    no_requester = http.post(
        url, json={"resourceType": "Parameters", "parameter": []}, headers={"Content-Type": FHIR_JSON}
    )
    assert no_requester.status_code == 400 and "requester" in no_requester.text
    unknown = http.post(
        url,
        headers={"Content-Type": FHIR_JSON},
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "requester", "valueReference": {"reference": "Organization/nope"}}],
        },
    )
    assert unknown.status_code == 400
    bad_context = http.post(
        url,
        headers={"Content-Type": FHIR_JSON},
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "requester", "valueReference": {"reference": f"Organization/{net['ids']['children']}"}},
                {
                    "name": "context",
                    "valueCodeableConcept": {
                        "coding": [{"system": f"{C}/CodeSystem/hr-exception", "code": "outside-window"}]
                    },
                },
            ],
        },
    )
    assert bad_context.status_code == 400
    assert http.get(url).status_code == 405


def test_mark_is_computed_and_never_taken_from_the_sender(http, base, net):
    dr5 = http.get(f"{base}/DiagnosticReport/{net['results']['dr5']['id']}").json()
    marks = {t["code"]: t["display"] for t in dr5["meta"]["tag"] if t["system"] == f"{C}/CodeSystem/hr-mark"}
    assert marks["hr-scope-500000"] == "渝HR" and "hr-scope-national" not in marks
    assert marks.get("hr-scope-chuanyu") == ("川渝HR" if "DX-CHEST" in scope_codes("chuanyu") else None)
    cancelled = http.get(f"{base}/DiagnosticReport/{net['results']['cancelled']['id']}").json()
    assert not [t for t in cancelled["meta"].get("tag", []) if t["system"] == f"{C}/CodeSystem/hr-mark"]
    found = http.get(
        f"{base}/DiagnosticReport", params={"mark": "hr-scope-500000", "subject": f"Patient/{net['ids']['child']}"}
    ).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [net["results"]["dr5"]["id"]]


def draft_order(net: dict, code: dict, patient: str | None = None, **extra) -> dict:
    order = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"coding": [code]},
        "authoredOn": WHEN,
        "requester": {"reference": f"Organization/{net['ids']['children']}"},
        **extra,
    }
    order["subject"] = {"reference": f"Patient/{patient or net['ids']['child']}"}
    return order


def local_chest_dr_code() -> dict:
    cm = json.loads((ROOT / "terminology" / "ConceptMap-hr-local-hospital-b-to-item.json").read_text(encoding="utf-8"))
    group = next(g for g in cm["group"] if g["source"].endswith("/pacs"))
    element = next(e for e in group["element"] if e["target"][0]["code"] == "DX-CHEST")
    return {"system": group["source"], "code": element["code"]}


def test_duplicate_check_finds_the_prior_results_of_the_item_from_a_local_code(http, base, net):
    order = draft_order(net, local_chest_dr_code())
    order["subject"] = {
        "identifier": {"system": "urn:oid:2.16.156.10011.1.3", "value": f"50011220200101{net['t'][-4:]}"}
    }
    response = http.post(
        f"{base}/ServiceRequest/$duplicate-check",
        headers={"Content-Type": FHIR_JSON},
        json={"resourceType": "Parameters", "parameter": [{"name": "request", "resource": order}]},
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "collection"
    issues = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DetectedIssue"]
    results = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
    assert [r["id"] for r in results] == [net["results"]["dr5"]["id"]]
    assert len(issues) == 1
    codes = {(c["system"], c["code"]) for c in issues[0]["code"]["coding"]}
    assert ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "DUPTHPY") in codes
    assert (f"{C}/CodeSystem/hr-detected-issue", "recognizable") in codes
    assert issues[0]["implicated"] == [{"reference": f"DiagnosticReport/{net['results']['dr5']['id']}"}]
    assert (
        "重庆市渝北区人民医院" in issues[0]["detail"]
        and "胸部DR" in issues[0]["detail"]
        and "可互认" in issues[0]["detail"]
    )
    assert http.get(f"{base}/DetectedIssue/{issues[0]['id']}").status_code == 200  # the prompt is recorded


def test_duplicate_check_reports_not_recognizable_results_with_reasons(http, base, net):
    order = draft_order(net, {"system": ITEM, "code": "DX-CHEST"}, patient=net["ids"]["adult"])
    bundle = http.post(
        f"{base}/ServiceRequest/$duplicate-check",
        headers={"Content-Type": FHIR_JSON},
        json={"resourceType": "Parameters", "parameter": [{"name": "request", "resource": order}]},
    ).json()
    issue = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DetectedIssue")
    assert {c["code"] for c in issue["code"]["coding"]} >= {"not-recognizable"}
    assert issue["evidence"][0]["code"][0]["coding"][0]["code"] == "outside-window"


def test_reorder_without_reason_is_422_and_with_reason_is_stored(http, base, net, store):
    order = draft_order(net, {"system": ITEM, "code": "DX-CHEST"})
    before = len(list(store["ServiceRequest"].find({})))
    refused = http.post(f"{base}/ServiceRequest", json=order, headers={"Content-Type": FHIR_JSON})
    assert refused.status_code == 422
    text = " ".join(i["diagnostics"] for i in refused.json()["issue"])
    assert "重庆市渝北区人民医院" in text and "hr-override-reason" in text
    assert len(list(store["ServiceRequest"].find({}))) == before
    order["extension"] = [
        {
            "url": f"{C}/StructureDefinition/hr-override-reason",
            "valueCodeableConcept": {
                "coding": [{"system": f"{C}/CodeSystem/hr-exception", "code": "condition-changed"}],
                "text": "咳嗽加重",
            },
        }
    ]
    stored = http.post(f"{base}/ServiceRequest", json=order, headers={"Content-Type": FHIR_JSON})
    assert stored.status_code == 201, stored.text
    in_bundle = http.post(
        base,
        headers={"Content-Type": FHIR_JSON},
        json={
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": {k: v for k, v in order.items() if k != "extension"},
                    "request": {"method": "POST", "url": "ServiceRequest"},
                }
            ],
        },
    )
    assert in_bundle.status_code == 422


CDS_REQUEST = {  # shaped like the CDS Hooks 2.0 order-select example
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "fhirServer": "http://fhir.example.org",
    "hook": "order-select",
    "context": {
        "userId": "PractitionerRole/123",
        "patientId": "PATIENT",
        "encounterId": "E1",
        "selections": ["ServiceRequest/draft-1"],
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {
                    "resource": {
                        "resourceType": "ServiceRequest",
                        "id": "draft-1",
                        "status": "draft",
                        "intent": "order",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5"}]},
                        "requester": {"reference": "Organization/REQUESTER"},
                    }
                }
            ],
        },
    },
}


def cds_request(net: dict, hook: str) -> dict:
    body = json.loads(
        json.dumps(CDS_REQUEST).replace("PATIENT", net["ids"]["child"]).replace("REQUESTER", net["ids"]["children"])
    )
    body["hook"] = hook
    return body


def test_cds_hooks_discovery_cards_and_feedback(http, base, net):
    root = base.replace("/fhir", "")
    services = http.get(f"{root}/cds-services").json()["services"]
    assert {s["hook"] for s in services} == {"order-select", "order-sign"}
    response = http.post(f"{root}/cds-services/hr-recognition-order-select", json=cds_request(net, "order-select"))
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert len(cards) == 1
    card = cards[0]
    assert len(card["summary"]) <= 140 and card["indicator"] in ("info", "warning", "critical")
    assert "重庆市渝北区人民医院" in card["summary"] and card["source"]["label"]
    assert card["links"][0]["url"].endswith(f"DiagnosticReport/{net['results']['dr5']['id']}")
    action = card["suggestions"][0]["actions"][0]
    assert action == {"type": "delete", "description": "取消本次重复申请", "resourceId": "ServiceRequest/draft-1"}
    assert {r["code"] for r in card["overrideReasons"]} >= {"emergency", "condition-changed"}
    accepted = http.post(
        f"{root}/cds-services/hr-recognition-order-select/feedback",
        json={
            "feedback": [
                {
                    "card": card["uuid"],
                    "outcome": "accepted",
                    "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                    "outcomeTimestamp": "2026-11-23T12:00:00Z",
                }
            ]
        },
    )
    assert accepted.status_code == 200
    signed = http.post(f"{root}/cds-services/hr-recognition-order-sign", json=cds_request(net, "order-sign")).json()
    overridden = http.post(
        f"{root}/cds-services/hr-recognition-order-sign/feedback",
        json={
            "feedback": [
                {
                    "card": signed["cards"][0]["uuid"],
                    "outcome": "overridden",
                    "outcomeTimestamp": "2026-11-23T12:01:00Z",
                    "overrideReason": {
                        "reason": {"system": f"{C}/CodeSystem/hr-exception", "code": "emergency"},
                        "userComment": "急诊",
                    },
                }
            ]
        },
    )
    assert overridden.status_code == 200
    bad = http.post(
        f"{root}/cds-services/hr-recognition-order-select/feedback",
        json={"feedback": [{"card": "nope", "outcome": "accepted"}]},
    )
    assert bad.status_code == 400
    assert (
        http.post(f"{root}/cds-services/hr-recognition-order-select", json={"hook": "order-select"}).status_code == 400
    )


def test_statistics_match_the_scenario(http, base, net):
    """Accept one recognition through $recognize, then count everything this requester did in this module."""
    recognize(http, base, net["results"]["amended"], net["ids"]["children"], mode="accept")
    assert (
        http.post(
            f"{base}/DiagnosticReport/{net['results']['cancelled']['id']}/$recognize",
            headers={"Content-Type": FHIR_JSON},
            json={
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "requester", "valueReference": {"reference": f"Organization/{net['ids']['children']}"}},
                    {"name": "mode", "valueCode": "accept"},
                ],
            },
        ).status_code
        == 422
    )
    report = http.get(f"{base}/$statistics", params={"organization": net["ids"]["children"]}).json()
    assert report["resourceType"] == "MeasureReport" and report["type"] == "summary"
    scores = {
        g["code"]["coding"][0]["code"] if "coding" in g["code"] else "saved": g["measureScore"]["value"]
        for g in report["group"]
    }
    # recognitions: $recognize accept (DX-SHOULDER) + CDS feedback accepted (DX-CHEST)
    assert scores["recognition"] == 2 and scores["repeat-avoided"] == 2
    assert scores["saved"] == 160.0  # two DR reference prices of 80 CNY
    # overrides: the stored re-order (condition-changed) and the CDS override (emergency)
    assert scores["override"] == 2
    override_group = next(g for g in report["group"] if g["code"].get("coding", [{}])[0].get("code") == "override")
    by_reason = {
        s["value"]["coding"][0]["code"]: s["measureScore"]["value"] for s in override_group["stratifier"][0]["stratum"]
    }
    assert by_reason == {"condition-changed": 1, "emergency": 1}
    # prompts: $duplicate-check twice (one recognizable each time? only the child's) + order-sign card
    assert scores["duplicate-prompt"] == 2
    # views: 13 $recognize calls (11 scenario checks, the accept, the refused accept) + 2 $duplicate-check look-ups
    assert scores["view"] == 15
    sichuan = http.get(
        f"{base}/$statistics", params={"organization": net["ids"]["children"], "region": "510000"}
    ).json()
    assert all(g["measureScore"]["value"] == 0 for g in sichuan["group"])
    labs = http.get(f"{base}/$statistics", params={"organization": net["ids"]["children"], "category": "LAB"}).json()
    assert all(g["measureScore"]["value"] == 0 for g in labs["group"])
    assert http.get(f"{base}/$statistics", params={"category": "XRAY"}).status_code == 400


def test_a_withdrawn_accreditation_counts_at_once_in_every_worker(http, base, net):
    """Standings are cached per worker while the registry is unchanged: a change is seen by the next decision."""
    t, ids = net["t"], net["ids"]
    hospital = f"{t}-wanzhou"
    qc = affiliation(f"{t}-q-wanzhou", ids["network"], hospital, "qc-accredited", "2020-01-01")
    result = report(f"{t}-wz", ids["child"], hospital, "DX-KNEE", day(3))
    for resource in (organization(hospital, "万州区人民医院", "3A", "500101"),
                     affiliation(f"{t}-m-wanzhou", ids["network"], hospital, "network-member", "2020-01-01"), qc,
                     result):
        stored = http.put(f"{base}/{resource['resourceType']}/{resource['id']}", json=resource,
                          headers={"Content-Type": FHIR_JSON})
        assert stored.status_code in (200, 201), stored.text

    def decisions() -> list[list[str]]:  # fresh connections, so both workers answer (and cache)
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda _: recognize(requests.Session(), base, result, ids["children"])["reason"],
                                 range(16)))

    assert decisions() == [[]] * 16
    withdrawn = http.put(f"{base}/OrganizationAffiliation/{qc['id']}", json={**qc, "active": False},
                         headers={"Content-Type": FHIR_JSON})
    assert withdrawn.status_code == 200
    assert decisions() == [["performer-not-qc"]] * 16
    assert http.put(f"{base}/OrganizationAffiliation/{qc['id']}", json=qc,
                    headers={"Content-Type": FHIR_JSON}).status_code == 200
    assert decisions() == [[]] * 16


def test_a_hospital_looking_at_its_own_result_is_not_a_cross_institution_view(http, base, net, store):
    def views() -> int:
        audit_settled(store)
        report = http.get(f"{base}/$statistics", params={"organization": f"Organization/{net['ids']['yubei']}"}).json()
        return next(g["measureScore"]["value"] for g in report["group"] if g["code"].get("coding", [{}])[0].get("code")
                    == "view")

    before = views()
    recognize(http, base, net["results"]["dr5"], net["ids"]["yubei"])  # 渝北's own DR
    assert views() == before
    recognize(http, base, net["results"]["township_ct"], net["ids"]["yubei"])  # the township's CT
    assert views() == before + 1
