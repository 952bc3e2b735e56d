"""Concurrent writers: If-Match is atomic, plain updates are serialised, nothing is lost; crash repair."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from conftest import FHIR_JSON, observation, post, unique


def test_parallel_updates_with_same_if_match_exactly_one_wins(http, base, store):
    created = post(http, base, observation(unique())).json()
    rid = created["id"]

    def attempt(i: int) -> int:
        body = {**created, "valueQuantity": {"value": 100 + i, "unit": "g/L"}}
        return requests.put(f"{base}/Observation/{rid}", json=body, timeout=60,
                            headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"1"'}).status_code

    k = 10
    with ThreadPoolExecutor(max_workers=k) as pool:
        statuses = list(pool.map(attempt, range(k)))
    assert sorted(statuses) == [200] + [412] * (k - 1)
    current = http.get(f"{base}/Observation/{rid}").json()
    assert current["meta"]["versionId"] == "2"
    history = list(store["Observation_history"].find({"rid": rid}))
    assert sorted(h["vid"] for h in history) == [1, 2]
    # The winner's value is the one stored as version 2 and as current: no half-applied loser.
    v2 = http.get(f"{base}/Observation/{rid}/_history/2").json()
    assert v2["valueQuantity"] == current["valueQuantity"]


def test_parallel_updates_without_if_match_are_all_kept_as_versions(http, base, store):
    created = post(http, base, observation(unique())).json()
    rid = created["id"]

    def attempt(i: int) -> tuple[int, str]:
        body = {**created, "valueQuantity": {"value": 200 + i, "unit": "g/L"}}
        r = requests.put(f"{base}/Observation/{rid}", json=body, timeout=60, headers={"Content-Type": FHIR_JSON})
        return r.status_code, r.json()["meta"]["versionId"]

    k = 8
    with ThreadPoolExecutor(max_workers=k) as pool:
        results = list(pool.map(attempt, range(k)))
    assert all(status == 200 for status, _ in results)
    assert sorted(int(v) for _, v in results) == list(range(2, k + 2))
    values = sorted(http.get(f"{base}/Observation/{rid}/_history/{v}").json()["valueQuantity"]["value"]
                    for v in range(2, k + 2))
    assert values == [200 + i for i in range(k)]  # every writer's content survives as its own version
    assert len(list(store["Observation_history"].find({"rid": rid}))) == k + 1



def test_concurrent_transactions_on_shared_and_own_resources_all_commit(http, base, store):
    """Transactions run side by side; those writing the same resource take turns (no 409, no lost version)."""
    shared = [post(http, base, observation(unique())).json() for _ in range(2)]
    k = 8

    def transaction(i: int) -> int:
        own = observation(unique())
        entries = [{"resource": {**r, "valueQuantity": {"value": 300 + i, "unit": "g/L"}},
                    "request": {"method": "PUT", "url": f"Observation/{r['id']}"}} for r in shared]
        entries.append({"resource": own, "request": {"method": "POST", "url": "Observation"}})
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        return requests.post(base, json=bundle, timeout=120, headers={"Content-Type": FHIR_JSON}).status_code

    with ThreadPoolExecutor(max_workers=k) as pool:
        statuses = list(pool.map(transaction, range(k)))
    assert statuses == [200] * k
    for resource in shared:
        versions = sorted(h["vid"] for h in store["Observation_history"].find({"rid": resource["id"]}))
        assert versions == list(range(1, k + 2))
        values = {http.get(f"{base}/Observation/{resource['id']}/_history/{v}").json()["valueQuantity"]["value"]
                  for v in range(2, k + 2)}
        assert values == {300 + i for i in range(k)}  # each transaction's write is its own version
    assert list(store["_locks"].find({})) == []  # every lock given back

def test_writer_stopped_between_its_two_writes_is_repaired_by_the_next_writer(http, base, store):
    """Simulate a crash after the history insert (version claimed) but before the current document moved."""
    created = post(http, base, observation(unique())).json()
    rid = created["id"]
    claimed = dict(store["Observation_history"].find_one({"_id": f"{rid}/1"}))
    claimed.update({"_id": f"{rid}/2", "vid": 2, "ts": claimed["ts"] + 5,
                    "text": claimed["text"].replace('"versionId":"1"', '"versionId":"2"')})
    store["Observation_history"].insert_one(claimed)
    assert http.get(f"{base}/Observation/{rid}").json()["meta"]["versionId"] == "1"  # stale until repaired

    stale = http.put(f"{base}/Observation/{rid}", json=created,
                     headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert http.get(f"{base}/Observation/{rid}").json()["meta"]["versionId"] == "2"  # rolled forward
    after = http.put(f"{base}/Observation/{rid}", json=created, headers={"Content-Type": FHIR_JSON})
    assert after.status_code == 200 and after.json()["meta"]["versionId"] == "3"
