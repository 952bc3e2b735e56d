"""One person, many records: every hospital keeps its own Patient record (its own MRN) of the same person, and
the national resident ID ties them (persons/index.py). Recognition must find the person's results under any of
their records, never another person's."""

from __future__ import annotations

import json
import random

import pytest
from conftest import FHIR_JSON, unique
from network import ITEM, day, report
from test_recognition import CDS_REQUEST, draft_order

from fhirserver.persons.resident_id import check_character, parse

NATIONAL = "urn:oid:2.16.156.10011.1.3"


def resident(rng: random.Random, born: str = "20200101", female: bool = False) -> str:
    """A valid resident ID of Chongqing Yubei (500112) with the given birth date and sex."""
    body = f"500112{born}{rng.randrange(10)}{rng.randrange(10)}{rng.choice('02468' if female else '13579')}"
    return body + check_character(body)


def test_resident_id_check_follows_gb_11643():
    # the example printed in GB 11643-1999 itself
    assert parse("11010519491231002X").birth_date == "1949-12-31"
    assert parse("11010519491231002X").gender == "female"
    assert "check character should be X" in parse("110105194912310021")
    assert "18 characters" in parse("1101051949123100")
    assert "not a birth date" in parse("110105194913310021")  # month 13, with its right check character


def patient(pid: str, national: str | None, hospital: str, mrn: str, name: str = "小明", **extra: object) -> dict:
    identifiers = [{"system": f"urn:oid:2.16.156.10011.1.99.{hospital}", "value": mrn}]
    if national:
        identifiers.append({"system": NATIONAL, "value": national})
    return {"resourceType": "Patient", "id": pid, "identifier": identifiers, "name": [{"text": name}],
            "managingOrganization": {"reference": f"Organization/{hospital}"}, **extra}


def put_all(http, base, resources: list[dict]) -> list[dict]:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}
    response = http.post(base, data=json.dumps(bundle, ensure_ascii=False).encode(),
                         headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 200, response.text
    return response.json()["entry"]


def found_reports(http, base, net, subject: dict, code: str = "DX-CHEST") -> list[str]:
    order = {**draft_order(net, {"system": ITEM, "code": code}), "subject": subject}
    response = http.post(f"{base}/ServiceRequest/$duplicate-check", headers={"Content-Type": FHIR_JSON},
                         json={"resourceType": "Parameters", "parameter": [{"name": "request", "resource": order}]})
    assert response.status_code == 200, response.text
    return sorted(e["resource"]["id"] for e in response.json().get("entry", [])
                  if e["resource"]["resourceType"] == "DiagnosticReport")


@pytest.fixture(scope="module")
def people(http, base, net):
    """A child with records at 渝北 (where the DR was taken) and at the ordering children's hospital; a namesake
    with another ID; records with a bad check digit, a contradicting birth date, and a replaced record."""
    rng = random.Random(14)
    t, ids = unique("pp"), net["ids"]
    child, namesake, bad = resident(rng), resident(rng), resident(rng)
    bad = bad[:17] + ("0" if bad[17] != "0" else "1")
    born_id = resident(rng, "20190505")
    p = {k: f"{t}-{k}" for k in ("yubei", "children", "huaxi", "namesake", "bad1", "bad2", "born1", "born2",
                                 "old", "survivor", "noid")}
    name = f"小明{t[-6:]}"  # one name for the child, his namesake and a record without an ID
    resources = [
        patient(p["yubei"], child, ids["yubei"], "YB-1", name, birthDate="2020-01-01", gender="male"),
        patient(p["children"], child, ids["children"], "ET-9", name),
        patient(p["huaxi"], child, ids["huaxi"], "HX-3", name),  # a Sichuan record of the same child
        patient(p["namesake"], namesake, ids["children"], "ET-10", name, birthDate="2020-01-01", gender="male"),
        patient(p["noid"], None, ids["township"], "TS-1", name, birthDate="2020-01-01", gender="male"),
        patient(p["bad1"], bad, ids["yubei"], "YB-2"), patient(p["bad2"], bad, ids["children"], "ET-11"),
        patient(p["born1"], born_id, ids["yubei"], "YB-3", birthDate="2019-05-05"),
        patient(p["born2"], born_id, ids["children"], "ET-12", birthDate="2018-05-05"),  # contradicts its ID
        patient(p["old"], None, ids["children"], "ET-13",
                link=[{"other": {"reference": f"Patient/{p['survivor']}"}, "type": "replaced-by"}]),
        patient(p["survivor"], None, ids["children"], "ET-14"),
    ]
    written = put_all(http, base, resources)
    reports = {
        "child_dr": report(f"{t}-dr", p["yubei"], ids["yubei"], "DX-CHEST", day(5)),
        "child_ct": report(f"{t}-ct", p["huaxi"], ids["huaxi"], "CT-HEAD", day(3)),
        "namesake_dr": report(f"{t}-ndr", p["namesake"], ids["yubei"], "DX-CHEST", day(4)),
        "bad_dr": report(f"{t}-bdr", p["bad1"], ids["yubei"], "DX-CHEST", day(4)),
        "born_dr": report(f"{t}-odr", p["born1"], ids["yubei"], "DX-CHEST", day(4)),
        "old_dr": report(f"{t}-rdr", p["old"], ids["yubei"], "DX-CHEST", day(6)),
    }
    put_all(http, base, list(reports.values()))
    return {"p": p, "r": {k: v["id"] for k, v in reports.items()}, "child": child, "bad": bad, "written": written,
            "name": name}


def test_each_hospital_record_finds_the_other_hospitals_result(http, base, net, people):
    p, r = people["p"], people["r"]
    assert found_reports(http, base, net, {"reference": f"Patient/{p['children']}"}) == [r["child_dr"]]
    assert found_reports(http, base, net, {"reference": f"Patient/{p['yubei']}"}) == [r["child_dr"]]
    # three records in two regions: the Sichuan record finds the Chongqing DR, the Chongqing record the Sichuan CT
    assert found_reports(http, base, net, {"reference": f"Patient/{p['huaxi']}"}) == [r["child_dr"]]
    assert found_reports(http, base, net, {"reference": f"Patient/{p['children']}"}, "CT-HEAD") == [r["child_ct"]]


def test_the_national_id_finds_the_result_once_several_records_carry_it(http, base, net, people):
    assert found_reports(http, base, net, {"identifier": {"system": NATIONAL, "value": people["child"]}}) == \
        [people["r"]["child_dr"]]


def test_a_namesake_with_another_id_is_never_matched(http, base, net, people):
    p, r = people["p"], people["r"]
    assert r["namesake_dr"] not in found_reports(http, base, net, {"reference": f"Patient/{p['children']}"})
    assert found_reports(http, base, net, {"reference": f"Patient/{p['namesake']}"}) == [r["namesake_dr"]]


def test_an_id_with_a_wrong_check_digit_links_nothing_and_its_write_is_warned(http, base, net, people):
    p, r = people["p"], people["r"]
    assert found_reports(http, base, net, {"reference": f"Patient/{p['bad2']}"}) == []
    assert found_reports(http, base, net, {"reference": f"Patient/{p['bad1']}"}) == [r["bad_dr"]]  # its own
    # the ID alone names two unlinked records: not one person, so no prompt rather than a guess
    assert found_reports(http, base, net, {"identifier": {"system": NATIONAL, "value": people["bad"]}}) == []
    warned = http.post(f"{base}/Patient", json=patient(unique("w"), people["bad"], net["ids"]["yubei"], "YB-9"),
                       headers={"Content-Type": FHIR_JSON, "Prefer": "return=OperationOutcome"})
    assert warned.status_code == 201
    issues = [i for i in warned.json()["issue"] if i["severity"] == "warning"]
    assert issues and "check character" in issues[0]["diagnostics"]
    assert issues[0]["expression"] == ["Patient.identifier"]
    # without asking for an OperationOutcome the client gets its Patient, as stored
    plain = http.post(f"{base}/Patient", json=patient(unique("w"), people["bad"], net["ids"]["yubei"], "YB-8"),
                      headers={"Content-Type": FHIR_JSON})
    assert plain.status_code == 201 and plain.json()["resourceType"] == "Patient"


def test_a_record_contradicting_its_id_is_not_linked(http, base, net, people):
    p = people["p"]
    assert found_reports(http, base, net, {"reference": f"Patient/{p['born2']}"}) == []
    assert found_reports(http, base, net, {"reference": f"Patient/{p['born1']}"}) == [people["r"]["born_dr"]]
    entry = next(e for e in people["written"] if e["response"]["location"].startswith(f"Patient/{p['born2']}/"))
    assert entry["response"]["status"].startswith("20")


def test_replaced_record_results_follow_the_surviving_record(http, base, net, people):
    p, r = people["p"], people["r"]
    assert found_reports(http, base, net, {"reference": f"Patient/{p['survivor']}"}) == [r["old_dr"]]


def test_cds_order_select_prompts_from_the_ordering_hospitals_own_record(http, base, net, people):
    root = base.replace("/fhir", "")
    body = json.loads(json.dumps(CDS_REQUEST).replace("PATIENT", people["p"]["children"])
                      .replace("REQUESTER", net["ids"]["children"]))
    body["hook"] = "order-select"
    cards = http.post(f"{root}/cds-services/hr-recognition-order-select", json=body).json()["cards"]
    assert [c["links"][0]["url"].rsplit("/", 1)[1] for c in cards] == [people["r"]["child_dr"]]


def test_patient_match_grades_the_records_of_the_person(http, base, people):
    p = people["p"]

    def match(resource: dict, **extra: object) -> list[tuple[str, float, str]]:
        parameters = [{"name": "resource", "resource": resource}]
        parameters += [{"name": k, ("valueBoolean" if isinstance(v, bool) else "valueInteger"): v}
                       for k, v in extra.items()]
        answer = http.post(f"{base}/Patient/$match", headers={"Content-Type": FHIR_JSON},
                           json={"resourceType": "Parameters", "parameter": parameters})
        assert answer.status_code == 200, answer.text
        bundle = answer.json()
        assert bundle["type"] == "searchset"
        return [(e["resource"]["id"], e["search"]["score"], e["search"]["extension"][0]["valueCode"])
                for e in bundle.get("entry", [])]

    query = {"resourceType": "Patient", "name": [{"text": people["name"]}], "birthDate": "2020-01-01",
             "gender": "male", "identifier": [{"system": NATIONAL, "value": people["child"]}]}
    found = match(query)
    certain = sorted(i for i, s, g in found if g == "certain")
    assert certain == sorted([p["yubei"], p["children"], p["huaxi"]]) and all(s == 1.0 for i, s, g in found
                                                                                if g == "certain")
    assert (p["noid"], 0.8, "probable") in found  # same name, birth date and sex, no ID to contradict
    assert p["namesake"] not in {i for i, _, _ in found}  # same name and birth date, another resident ID
    assert sorted(i for i, _, _ in match(query, onlyCertainMatches=True)) == certain
    assert len(match(query, count=2)) == 2
    refused = http.post(f"{base}/Patient/$match", headers={"Content-Type": FHIR_JSON},
                        json={"resourceType": "Parameters", "parameter": [
                            {"name": "resource", "resource": {"resourceType": "Observation", "status": "final"}}]})
    assert refused.status_code == 400 and refused.json()["resourceType"] == "OperationOutcome"
    capability = http.get(f"{base}/metadata").json()
    patient_ops = next(r for r in capability["rest"][0]["resource"] if r["type"] == "Patient").get("operation", [])
    assert {"match", "everything"} <= {o["name"] for o in patient_ops}


def test_generated_region_finds_every_result_of_the_person_and_none_of_another(http, base, net):
    """40 people, each with records at 1-4 of the network's hospitals (one name for every 7th person: namesakes
    abound), results of one item under random records: from every record, $duplicate-check must find exactly the
    person's results. Prints the counts (0 missed, 0 unsafe is the bar)."""
    rng = random.Random(2026)
    t, ids = unique("region"), net["ids"]
    hospitals = [ids[h] for h in ("children", "yubei", "township", "huaxi")]
    people, resources, results = [], [], []
    for n in range(40):
        national = resident(rng, f"2015{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}", female=bool(n % 2))
        records = []
        for h, hospital in enumerate(rng.sample(hospitals, rng.randint(1, 4))):
            rid = f"{t}-{n}-{h}"
            resources.append(patient(rid, national, hospital, f"MRN-{n}-{h}", f"同名{n % 7}"))  # namesakes abound
            records.append(rid)
        expected = set()
        for k in range(rng.randint(0, 3)):
            report_id = f"{t}-r{n}-{k}"
            results.append(report(report_id, rng.choice(records), ids["yubei"], "DX-CHEST", day(rng.randint(1, 60))))
            expected.add(report_id)
        people.append((records, expected))
    for start in range(0, len(resources), 50):
        put_all(http, base, resources[start:start + 50])
    put_all(http, base, results)
    missed = unsafe = checked = 0
    for records, expected in people:
        for record in records:
            found = set(found_reports(http, base, net, {"reference": f"Patient/{record}"}))
            missed += len(expected - found)
            unsafe += len(found - expected)
            checked += 1
    print(f"\nperson index over a generated region: {len(people)} people, {len(resources)} records, "
          f"{len(results)} results, {checked} checks: {missed} missed, {unsafe} unsafe")
    assert checked > 40 and results
    assert (missed, unsafe) == (0, 0)


def test_everything_returns_the_persons_records_and_their_compartments_paged(http, base, people):
    p, r = people["p"], people["r"]
    first = http.get(f"{base}/Patient/{p['children']}/$everything", params={"_count": 2})
    assert first.status_code == 200, first.text
    bundle = first.json()
    assert bundle["type"] == "searchset"
    seen, pages = [], 0
    while True:
        pages += 1
        seen += [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            break
        if pages == 1:  # a new record of the person, sorting before the cursor: offsets would shift, keys do not
            early = patient(f"0-{unique('early')}", people["child"], "x", "EARLY-1", people["name"])
            early.pop("managingOrganization")
            assert http.put(f"{base}/Patient/{early['id']}", json=early,
                            headers={"Content-Type": FHIR_JSON}).status_code == 201
        bundle = http.get(following[0]).json()
    # every entry once, although each page request adds AuditEvents to the compartment while paging
    assert pages > 1 and len(seen) == len(set(seen)) >= first.json()["total"]
    assert {f"Patient/{p[k]}" for k in ("yubei", "children", "huaxi")} <= set(seen)
    assert {f"DiagnosticReport/{r['child_dr']}", f"DiagnosticReport/{r['child_ct']}"} <= set(seen)
    assert f"Patient/{p['namesake']}" not in seen and f"DiagnosticReport/{r['namesake_dr']}" not in seen
    only_reports = http.get(f"{base}/Patient/{p['yubei']}/$everything", params={"_type": "DiagnosticReport"}).json()
    assert {e["resource"]["resourceType"] for e in only_reports["entry"]} == {"DiagnosticReport"}
    recent = http.get(f"{base}/Patient/{p['yubei']}/$everything",
                      params={"_type": "DiagnosticReport", "start": day(4)[:10]}).json()
    assert [e["resource"]["id"] for e in recent.get("entry", [])] == [r["child_ct"]]  # the DR is 5 days old
    assert http.get(f"{base}/Patient/{p['yubei']}/$everything", params={"_type": "Unicorn"}).status_code == 400
    assert http.get(f"{base}/Patient/no-such-{unique()}/$everything").status_code == 404


def test_records_whose_id_cannot_link_are_tagged_and_searchable(http, base, people):
    """The server computes the hr-identity tag (never taken from the sender): the records to correct are a search."""
    system = "http://hr.example.org/fhir/CodeSystem/hr-identity"
    p = people["p"]

    def tagged(code: str) -> set[str]:
        bundle = http.get(f"{base}/Patient", params={"_tag": f"{system}|{code}", "_count": 500}).json()
        return {e["resource"]["id"] for e in bundle.get("entry", [])}

    assert {p["bad1"], p["bad2"]} <= tagged("invalid-id") and p["yubei"] not in tagged("invalid-id")
    assert p["born2"] in tagged("contradicted-id") and p["born1"] not in tagged("contradicted-id")
    forged = patient(unique("forged"), people["child"], "x", "F-1", people["name"],
                     meta={"tag": [{"system": system, "code": "contradicted-id"}]})
    forged.pop("managingOrganization")
    stored = http.post(f"{base}/Patient", json=forged, headers={"Content-Type": FHIR_JSON}).json()
    assert "meta" not in stored or not [t for t in stored["meta"].get("tag", []) if t["system"] == system]
    corrected = http.get(f"{base}/Patient/{p['born2']}").json()
    corrected["birthDate"] = "2019-05-05"
    assert http.put(f"{base}/Patient/{p['born2']}", json=corrected, headers={"Content-Type": FHIR_JSON}).ok
    assert p["born2"] not in tagged("contradicted-id")


def test_a_repeat_avoided_counts_once_per_person_and_item(http, base, net, people):
    """The children's hospital accepts the child's DR twice (two orders): two recognitions, one repeat avoided."""
    requester = net["ids"]["children"]
    for _ in range(2):
        accepted = http.post(f"{base}/DiagnosticReport/{people['r']['child_dr']}/$recognize",
                             headers={"Content-Type": FHIR_JSON}, json={"resourceType": "Parameters", "parameter": [
                                 {"name": "requester", "valueReference": {"reference": f"Organization/{requester}"}},
                                 {"name": "mode", "valueCode": "accept"}]})
        assert accepted.status_code == 200, accepted.text
    report = http.get(f"{base}/$statistics", params={"organization": requester}).json()
    scores = {g["code"]["coding"][0]["code"] if "coding" in g["code"] else "saved": g["measureScore"]["value"]
              for g in report["group"]}
    assert scores["recognition"] == 2 and scores["repeat-avoided"] == 1
    assert scores["saved"] == 80.0  # one chest DR at its reference price
