"""References are identities: a reference to this server given relatively, absolutely (with the base the client
calls it by, or FHIRSERVER_BASE_URL) or as urn:uuid resolved in a transaction is one value in every search form."""

from __future__ import annotations

from conftest import FHIR_JSON, observation, post, unique
from network import ITEM, day, report
from test_recognition import draft_order


def ids(http, base, path: str, **params: str) -> set[str]:
    response = http.get(f"{base}/{path}", params=params)
    assert response.status_code == 200, response.text
    return {e["resource"]["id"] for e in response.json().get("entry", []) if e["search"]["mode"] == "match"}


def test_absolute_relative_and_urn_uuid_references_are_one_identity(http, base):
    tag = unique("ref")
    meta = {"tag": [{"system": "urn:test", "code": tag}]}
    patient = post(http, base, {"resourceType": "Patient", "meta": meta}).json()
    relative = post(http, base, observation(None, meta=meta, subject={"reference": f"Patient/{patient['id']}"})).json()
    absolute = post(http, base, observation(None, meta=meta,
                                            subject={"reference": f"{base}/Patient/{patient['id']}"})).json()
    urn = "urn:uuid:0c3a8a52-64a4-4b8e-9a36-2f0e0a3c9d01"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": urn, "resource": {"resourceType": "Patient", "meta": meta},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": observation(None, meta=meta, subject={"reference": urn}),
         "request": {"method": "POST", "url": "Observation"}}]}
    answer = http.post(base, json=bundle, headers={"Content-Type": FHIR_JSON})
    assert answer.status_code == 200
    tx_patient, tx_obs = (e["response"]["location"].split("/")[1] for e in answer.json()["entry"])
    both = {relative["id"], absolute["id"]}
    for subject in (f"Patient/{patient['id']}", patient["id"], f"{base}/Patient/{patient['id']}"):
        assert ids(http, base, "Observation", subject=subject, _tag=f"urn:test|{tag}") == both, subject
    assert ids(http, base, f"Patient/{patient['id']}/Observation") >= both  # the compartment
    assert ids(http, base, "Patient", _id=patient["id"], **{"_has:Observation:subject:_tag": f"urn:test|{tag}"}) \
        == {patient["id"]}
    included = http.get(f"{base}/Observation", params={"_id": absolute["id"], "_include": "Observation:subject"})
    assert {e["resource"]["id"] for e in included.json()["entry"]} == {absolute["id"], patient["id"]}
    assert ids(http, base, "Observation", subject=f"{base}/Patient/{tx_patient}") == {tx_obs}
    # the text of the reference is kept exactly as sent
    assert http.get(f"{base}/Observation/{absolute['id']}").json()["subject"]["reference"] == \
        f"{base}/Patient/{patient['id']}"
    # another server's absolute reference stays another server's
    foreign = post(http, base, observation(None, meta=meta, subject={
        "reference": f"https://other.example.cn/fhir/Patient/{patient['id']}"})).json()
    assert foreign["id"] not in ids(http, base, "Observation", subject=f"Patient/{patient['id']}",
                                    _tag=f"urn:test|{tag}")


def test_duplicate_check_finds_a_result_that_names_its_patient_absolutely(http, base, net):
    t = unique("abs")
    http.put(f"{base}/Patient/{t}", json={"resourceType": "Patient", "id": t}, headers={"Content-Type": FHIR_JSON})
    dr = report(f"{t}-dr", t, net["ids"]["yubei"], "DX-CHEST", day(3))
    dr["subject"] = {"reference": f"{base}/Patient/{t}"}
    assert http.put(f"{base}/DiagnosticReport/{dr['id']}", json=dr,
                    headers={"Content-Type": FHIR_JSON}).status_code == 201
    order = draft_order(net, {"system": ITEM, "code": "DX-CHEST"}, patient=t)
    check = {"resourceType": "Parameters", "parameter": [{"name": "request", "resource": order}]}
    bundle = http.post(f"{base}/ServiceRequest/$duplicate-check", headers={"Content-Type": FHIR_JSON},
                       json=check).json()
    assert [e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"] \
        == [dr["id"]]
