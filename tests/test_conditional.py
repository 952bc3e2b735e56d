"""Conditional create (If-None-Exist), conditional update and conditional delete."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from conftest import FHIR_JSON, observation, post, unique

SYSTEM = "urn:oid:2.16.156.10011.1.99"


def test_conditional_create_creates_then_returns_the_existing_one(http, base):
    ident = unique()
    first = post(http, base, observation(ident), **{"If-None-Exist": f"identifier={SYSTEM}|{ident}"})
    assert first.status_code == 201
    second = post(http, base, observation(ident), **{"If-None-Exist": f"identifier={SYSTEM}|{ident}"})
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["ETag"] == 'W/"1"'


def test_conditional_create_accepts_the_type_prefixed_form(http, base):
    ident = unique()
    post(http, base, observation(ident))
    again = post(http, base, observation(ident), **{"If-None-Exist": f"Observation?identifier={ident}"})
    assert again.status_code == 200


def test_conditional_create_with_several_matches_is_412_and_stores_nothing(http, base, store):
    ident = unique()
    post(http, base, observation(ident))
    post(http, base, observation(ident))
    before = len(list(store["Observation"].find({})))
    response = post(http, base, observation(ident), **{"If-None-Exist": f"identifier={ident}"})
    assert response.status_code == 412
    assert response.json()["issue"][0]["code"] == "multiple-matches"
    assert len(list(store["Observation"].find({}))) == before


def test_conditional_create_with_unknown_parameter_is_400_naming_it(http, base):
    response = post(http, base, observation(unique()), **{"If-None-Exist": "nonsense=1"})
    assert response.status_code == 400
    assert "nonsense" in response.json()["issue"][0]["diagnostics"]
    assert response.json()["issue"][0]["expression"] == ["nonsense"]


def test_parallel_identical_conditional_creates_make_exactly_one_resource(base, store):
    ident = unique("race")
    body = observation(ident)

    def attempt(_: int) -> int:
        return requests.post(f"{base}/Observation", json=body, timeout=60, headers={
            "Content-Type": FHIR_JSON, "If-None-Exist": f"identifier={SYSTEM}|{ident}"}).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(attempt, range(12)))
    assert sorted(statuses) == [200] * 11 + [201]
    stored = list(store["Observation"].find({"sp.identifier": {"$in": [f"{SYSTEM}|{ident}"]}}))
    assert len(stored) == 1


def test_conditional_update_creates_when_nothing_matches_then_updates_the_match(http, base):
    ident = unique()
    url = f"{base}/Observation?identifier={SYSTEM}|{ident}"
    created = http.put(url, json=observation(ident), headers={"Content-Type": FHIR_JSON})
    assert created.status_code == 201
    updated = http.put(url, json=observation(ident, status="amended"), headers={"Content-Type": FHIR_JSON})
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert updated.json()["meta"]["versionId"] == "2"


def test_conditional_update_with_several_matches_is_412(http, base):
    ident = unique()
    post(http, base, observation(ident))
    post(http, base, observation(ident))
    response = http.put(f"{base}/Observation?identifier={ident}", json=observation(ident),
                        headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 412


def test_conditional_update_with_conflicting_body_id_is_400(http, base):
    ident = unique()
    post(http, base, observation(ident))
    response = http.put(f"{base}/Observation?identifier={ident}", json=observation(ident, id="other-id"),
                        headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 400


def test_conditional_update_without_criteria_is_400(http, base):
    response = http.put(f"{base}/Observation", json=observation(unique()), headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 400


def test_conditional_delete_deletes_the_single_match(http, base):
    ident = unique()
    rid = post(http, base, observation(ident)).json()["id"]
    assert http.delete(f"{base}/Observation?identifier={ident}").status_code == 204
    assert http.get(f"{base}/Observation/{rid}").status_code == 410
    assert http.delete(f"{base}/Observation?identifier={ident}").status_code == 204  # no match now: no-op


def test_conditional_delete_with_several_matches_is_412_and_deletes_nothing(http, base):
    ident = unique()
    ids = [post(http, base, observation(ident)).json()["id"] for _ in range(2)]
    assert http.delete(f"{base}/Observation?identifier={ident}").status_code == 412
    assert all(http.get(f"{base}/Observation/{rid}").status_code == 200 for rid in ids)
