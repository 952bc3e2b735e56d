"""batch and transaction Bundles: order, urn:uuid and conditional references, all-or-nothing, concurrency."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import requests
from conftest import FHIR_JSON, observation, post, stored_counts, unique

ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"


def send(http, base, bundle, **headers) -> requests.Response:
    return http.post(base, data=json.dumps(bundle, ensure_ascii=False).encode(),
                     headers={"Content-Type": FHIR_JSON, **headers})


def tx(*entries, kind="transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def patient_entry(national_id: str, full_url: str | None = None, conditional: bool = True) -> dict:
    entry = {"resource": {"resourceType": "Patient", "identifier": [{"system": ID_SYSTEM, "value": national_id}],
                          "name": [{"text": "张三"}]},
             "request": {"method": "POST", "url": "Patient"}}
    if conditional:
        entry["request"]["ifNoneExist"] = f"identifier={ID_SYSTEM}|{national_id}"
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def test_transaction_resolves_urn_uuid_references_and_reports_each_entry(http, base):
    nid = unique("nid")
    report_ref = "urn:uuid:8c4f2c3a-0000-4000-8000-000000000001"
    obs_ref = "urn:uuid:8c4f2c3a-0000-4000-8000-000000000002"
    pat_ref = "urn:uuid:8c4f2c3a-0000-4000-8000-000000000003"
    bundle = tx(
        {"fullUrl": report_ref, "resource": {"resourceType": "DiagnosticReport", "status": "final",
                                             "code": {"text": "血常规"}, "subject": {"reference": pat_ref},
                                             "result": [{"reference": obs_ref}],
                                             "text": {"status": "generated", "div": (
                                                 f'<div xmlns="http://www.w3.org/1999/xhtml">患者 <a href="{pat_ref}">'
                                                 f'张三</a>, 结果 <a href=\'{obs_ref}\'>血红蛋白</a></div>')}},
         "request": {"method": "POST", "url": "DiagnosticReport"}},
        {"fullUrl": obs_ref, "resource": observation(None, subject={"reference": pat_ref}),
         "request": {"method": "POST", "url": "Observation"}},
        patient_entry(nid, pat_ref),
    )
    response = send(http, base, bundle)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created"] * 3
    report = result["entry"][0]["resource"]
    patient_id = result["entry"][2]["resource"]["id"]
    obs_id = result["entry"][1]["resource"]["id"]
    assert report["subject"]["reference"] == f"Patient/{patient_id}"
    assert report["result"][0]["reference"] == f"Observation/{obs_id}"
    div = report["text"]["div"]  # the narrative's links are rewritten too (R4 transaction rules: SHALL)
    assert f'href="Patient/{patient_id}"' in div and f"href='Observation/{obs_id}'" in div and "urn:uuid" not in div
    assert result["entry"][1]["response"]["location"].startswith(f"Observation/{obs_id}/_history/1")
    stored = http.get(f"{base}/DiagnosticReport/{report['id']}").json()
    assert stored["subject"]["reference"] == f"Patient/{patient_id}"


def test_conditional_create_and_conditional_reference_inside_a_transaction(http, base):
    nid = unique("nid")
    first = send(http, base, tx(patient_entry(nid))).json()
    patient_id = first["entry"][0]["resource"]["id"]
    # Same conditional create again, plus an Observation pointing at the patient by identifier.
    second = send(http, base, tx(
        patient_entry(nid),
        {"resource": observation(None, subject={"reference": f"Patient?identifier={ID_SYSTEM}|{nid}"}),
         "request": {"method": "POST", "url": "Observation"}})).json()
    assert second["entry"][0]["response"]["status"] == "200 OK"
    assert second["entry"][0]["fullUrl"].endswith(f"Patient/{patient_id}")
    assert second["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{patient_id}"


def test_conditional_reference_to_a_patient_created_in_the_same_transaction(http, base):
    nid = unique("nid")
    result = send(http, base, tx(
        {"resource": observation(None, subject={"reference": f"Patient?identifier={ID_SYSTEM}|{nid}"}),
         "request": {"method": "POST", "url": "Observation"}},
        patient_entry(nid))).json()
    assert result["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{result['entry'][1]['resource']['id']}"


def test_failing_entry_in_the_middle_leaves_nothing_behind(http, base, store):
    keep = post(http, base, observation(unique())).json()
    doomed = post(http, base, observation(unique())).json()
    before = {t: stored_counts(store, t) for t in ("Observation", "Patient", "DiagnosticReport")}
    bundle = tx(
        patient_entry(unique("nid")),
        {"resource": observation(unique()), "request": {"method": "POST", "url": "Observation"}},
        {"resource": {**keep, "status": "amended"}, "request": {"method": "PUT", "url": f"Observation/{keep['id']}"}},
        {"resource": observation(None, status="bogus"), "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "DELETE", "url": f"Observation/{doomed['id']}"}},
    )
    response = send(http, base, bundle)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert "Bundle.entry[3]" in issue["diagnostics"]
    assert {t: stored_counts(store, t) for t in before} == before
    assert http.get(f"{base}/Observation/{keep['id']}").json()["meta"]["versionId"] == "1"
    assert http.get(f"{base}/Observation/{doomed['id']}").status_code == 200


def test_stale_if_match_inside_a_transaction_is_412_and_nothing_is_written(http, base, store):
    target = post(http, base, observation(unique())).json()
    before = stored_counts(store, "Observation")
    response = send(http, base, tx(
        {"resource": observation(unique()), "request": {"method": "POST", "url": "Observation"}},
        {"resource": {**target, "status": "amended"},
         "request": {"method": "PUT", "url": f"Observation/{target['id']}", "ifMatch": 'W/"9"'}}))
    assert response.status_code == 412
    assert stored_counts(store, "Observation") == before


def test_write_that_loses_a_race_mid_commit_is_undone(http, base, store):
    """Version 2 of the target is claimed behind the transaction's back: the commit fails on it and the MongoDB
    transaction aborts, so the entries written before it inside the transaction are gone too."""
    target = post(http, base, observation(unique())).json()
    claimed = dict(store["Observation_history"].find_one({"_id": f"{target['id']}/1"}))
    claimed.update({"_id": f"{target['id']}/2", "vid": 2, "ts": claimed["ts"] + 1})
    before_patients = stored_counts(store, "Patient")
    # PUT without ifMatch reads current (v1) and claims v2, which is already taken.
    store["Observation_history"].insert_one(claimed)
    response = send(http, base, tx(
        patient_entry(unique("nid"), conditional=False),
        {"resource": {**target, "status": "amended"},
         "request": {"method": "PUT", "url": f"Observation/{target['id']}"}}))
    assert response.status_code == 409
    assert stored_counts(store, "Patient") == before_patients


def test_transaction_order_delete_then_create_then_update_then_read(http, base):
    doomed = post(http, base, observation(unique())).json()
    updated = post(http, base, observation(unique())).json()
    ident = unique()
    result = send(http, base, tx(
        {"request": {"method": "GET", "url": f"Observation?identifier={ident}"}},
        {"resource": {**updated, "status": "amended"},
         "request": {"method": "PUT", "url": f"Observation/{updated['id']}"}},
        {"resource": observation(ident), "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "DELETE", "url": f"Observation/{doomed['id']}"}},
    )).json()
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["200 OK", "200 OK", "201 Created", "204 No Content"]
    searchset = result["entry"][0]["resource"]
    assert len(searchset["entry"]) == 1  # the GET ran after the POST
    assert http.get(f"{base}/Observation/{doomed['id']}").status_code == 410


def test_conditional_update_and_delete_and_patch_in_a_transaction(http, base):
    ident = unique()
    created = post(http, base, observation(ident)).json()
    ops = base64.b64encode(json.dumps([{"op": "replace", "path": "/status", "value": "corrected"}]).encode()).decode()
    other = post(http, base, observation(unique())).json()
    gone_ident = unique()
    post(http, base, observation(gone_ident))
    result = send(http, base, tx(
        {"resource": observation(ident, status="amended"),
         "request": {"method": "PUT", "url": f"Observation?identifier={ident}"}},
        {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": ops},
         "request": {"method": "PATCH", "url": f"Observation/{other['id']}"}},
        {"request": {"method": "DELETE", "url": f"Observation?identifier={gone_ident}"}},
    ))
    assert result.status_code == 200, result.text
    assert http.get(f"{base}/Observation/{created['id']}").json()["status"] == "amended"
    assert http.get(f"{base}/Observation/{other['id']}").json()["status"] == "corrected"
    assert "entry" not in http.get(f"{base}/Observation?identifier={gone_ident}").json()


def test_conditional_patch_entries_in_a_transaction_and_a_batch(http, base):
    """A PATCH entry whose url is criteria patches the one match, in a transaction as in a batch; criteria that match
    nothing fail the transaction with 404 (nothing stored) and the batch entry alone."""
    ident, other_ident = unique(), unique()
    created = post(http, base, observation(ident)).json()
    other = post(http, base, observation(other_ident)).json()

    def patch_entry(criteria: str, status: str) -> dict:
        ops = base64.b64encode(json.dumps([{"op": "replace", "path": "/status", "value": status}]).encode()).decode()
        return {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": ops},
                "request": {"method": "PATCH", "url": f"Observation?identifier={criteria}"}}

    result = send(http, base, tx(patch_entry(ident, "corrected")))
    assert result.status_code == 200, result.text
    assert http.get(f"{base}/Observation/{created['id']}").json()["status"] == "corrected"
    missing = send(http, base, tx(patch_entry(other_ident, "amended"), patch_entry(unique(), "amended")))
    assert missing.status_code == 404, missing.text
    assert "match no Observation" in missing.text
    assert http.get(f"{base}/Observation/{other['id']}").json()["status"] == "final"  # nothing of it stored
    batch = send(http, base, tx(patch_entry(other_ident, "amended"), patch_entry(unique(), "amended"), kind="batch"))
    assert batch.status_code == 200, batch.text
    assert [e["response"]["status"].split()[0] for e in batch.json()["entry"]] == ["200", "404"]
    assert http.get(f"{base}/Observation/{other['id']}").json()["status"] == "amended"


def test_two_transactions_on_the_same_resource_are_serialised(http, base):
    target = post(http, base, observation(unique())).json()

    def run(i: int) -> int:
        body = tx({"resource": {**target, "valueQuantity": {"value": 100 + i, "unit": "g/L"}},
                   "request": {"method": "PUT", "url": f"Observation/{target['id']}", "ifMatch": 'W/"1"'}})
        return requests.post(base, data=json.dumps(body), headers={"Content-Type": FHIR_JSON}, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(run, range(6)))
    assert statuses == [200] + [412] * 5
    assert http.get(f"{base}/Observation/{target['id']}").json()["meta"]["versionId"] == "2"


def test_batch_reports_each_entry_and_keeps_the_good_ones(http, base):
    ident = unique()
    result = send(http, base, tx(
        {"resource": observation(ident), "request": {"method": "POST", "url": "Observation"}},
        {"resource": observation(None, status="bogus"), "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": "Observation/does-not-exist"}},
        {"request": {"method": "GET", "url": f"Observation?identifier={ident}"}},
        kind="batch"))
    assert result.status_code == 200
    entries = result.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["201 Created", "400 Bad Request", "404 Not Found", "200 OK"]
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert len(entries[3]["resource"]["entry"]) == 1


def test_bundle_envelope_errors(http, base):
    assert send(http, base, {"resourceType": "Bundle", "type": "collection"}).status_code == 400
    assert send(http, base, {"resourceType": "Patient"}).status_code == 400
    assert send(http, base, tx({"request": {"method": "FLY", "url": "Patient"}})).status_code == 400
    unicorn = tx({"request": {"method": "POST", "url": "Unicorn"}, "resource": {"resourceType": "Unicorn"}})
    assert send(http, base, unicorn).status_code == 404
    dangling = tx({"resource": observation(None, subject={"reference": "urn:uuid:0000-missing"}),
                   "request": {"method": "POST", "url": "Observation"}})
    assert send(http, base, dangling).status_code == 400
    twice = tx({"resource": {"resourceType": "Patient", "id": "dup-1"},
                "request": {"method": "PUT", "url": "Patient/dup-1"}},
               {"request": {"method": "DELETE", "url": "Patient/dup-1"}})
    assert send(http, base, twice).status_code == 400


def test_transaction_with_a_thousand_entries(http, base, store):
    tag = unique("bulk")
    entries = [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
                "resource": observation(f"{tag}-{i}", meta={"tag": [{"system": "urn:test", "code": tag}]}),
                "request": {"method": "POST", "url": "Observation"}} for i in range(1000)]
    response = send(http, base, tx(*entries), Prefer="return=minimal")
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["entry"]) == 1000
    assert "resource" not in response.json()["entry"][0]
    counted = http.get(f"{base}/Observation?_tag=urn:test|{tag}&_summary=count").json()
    assert counted["total"] == 1000


def test_transaction_and_single_conditional_creates_race_to_one_resource(base, store):
    nid = unique("race-nid")

    def single(_: int) -> int:
        body = {"resourceType": "Patient", "identifier": [{"system": ID_SYSTEM, "value": nid}]}
        return requests.post(f"{base}/Patient", json=body, timeout=60, headers={
            "Content-Type": FHIR_JSON, "If-None-Exist": f"identifier={ID_SYSTEM}|{nid}"}).status_code

    def bundled(_: int) -> int:
        return requests.post(base, data=json.dumps(tx(patient_entry(nid))), timeout=60,
                             headers={"Content-Type": FHIR_JSON}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda i: (single if i % 2 else bundled)(i), range(8)))
    assert all(s in (200, 201) for s in statuses)
    assert len(list(store["Patient"].find({"sp.identifier": {"$in": [f"{ID_SYSTEM}|{nid}"]}}))) == 1


def test_a_transaction_is_invisible_until_it_commits(http, base):
    """While a 1,000-entry transaction runs, a reader counting its entries sees none or all of them, never part."""
    tag = unique("tx-visibility")
    entry = {**observation(), "identifier": [{"system": "urn:test:tx", "value": tag}]}
    bundle = tx(*[{"resource": entry, "request": {"method": "POST", "url": "Observation"}} for _ in range(1000)])
    seen: list[int] = []

    def count() -> int:
        found = requests.get(f"{base}/Observation", params={"identifier": f"urn:test:tx|{tag}", "_total": "accurate",
                                                            "_count": "0"}, timeout=60)
        return int(found.json().get("total", -1))

    with ThreadPoolExecutor(max_workers=1) as pool:
        writing = pool.submit(send, requests, base, bundle)
        while not writing.done():
            seen.append(count())
        assert writing.result().status_code == 200
    seen.append(count())
    assert len(seen) > 1 and set(seen) <= {0, 1000}, sorted(set(seen))
    assert seen[-1] == 1000


def test_entries_carry_the_write_rules_warnings_in_their_outcome(http, base):
    """The same write rules as single requests, with their advice in Bundle.entry.response.outcome: a Patient
    whose resident ID fails its check is stored and warned, in a transaction (POST, then PATCH) and in a batch."""
    bad_id = [{"system": ID_SYSTEM, "value": "110105194912310021"}]  # wrong check character
    for kind in ("transaction", "batch"):
        answer = send(http, base, tx({"resource": {"resourceType": "Patient", "identifier": bad_id},
                                      "request": {"method": "POST", "url": "Patient"}}, kind=kind))
        assert answer.status_code == 200, answer.text
        entry = answer.json()["entry"][0]["response"]
        assert entry["status"].startswith("201")
        assert any("not valid" in i["diagnostics"] for i in entry["outcome"]["issue"]), (kind, entry)
    pid = answer.json()["entry"][0]["response"]["location"].split("/")[1]
    ops = base64.b64encode(json.dumps([{"op": "replace", "path": "/identifier", "value": bad_id}]).encode()).decode()
    patched = send(http, base, tx({"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                                                "data": ops}, "request": {"method": "PATCH", "url": f"Patient/{pid}"}}))
    assert patched.status_code == 200, patched.text
    assert any("not valid" in i["diagnostics"] for i in patched.json()["entry"][0]["response"]["outcome"]["issue"])
