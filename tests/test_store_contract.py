"""Store contract: every query shape the repository and planner emit, run on the real engine (embedded,
or MongoDB when FHIRSERVER_MONGODB_URI is set) and compared with a Python evaluation of the same data.

The embedded engine answers some valid queries wrongly (equality on an indexed array field); this file
is what catches an engine or a planner change that would silently drop results."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import pytest

from fhirserver.fhir.search.criteria import Criterion, plan_filter
from fhirserver.store.client import ensure_schema
from fhirserver.store.repository import HistoryCursor, ResourceRepository, StoredVersion, VersionConflict
from fhirserver.store.timestamps import instant_to_ms

TYPE = "ContractTest"


def matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    """Reference semantics of the shapes we emit (MongoDB's, for the operators used)."""
    for key, cond in query.items():
        if key == "$and":
            if not all(matches(doc, q) for q in cond):
                return False
            continue
        if key == "$or":
            if not any(matches(doc, q) for q in cond):
                return False
            continue
        value: Any = doc
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values = value if isinstance(value, list) else [value]
        if isinstance(cond, dict):
            for op, arg in cond.items():
                if op == "$in" and not any(v in arg for v in values):
                    return False
                if op in ("$lt", "$gt", "$gte") and not any(
                        v is not None and {"$lt": v < arg, "$gt": v > arg, "$gte": v >= arg}[op] for v in values):
                    return False
        elif cond not in values:
            return False
    return True


@pytest.fixture(scope="module")
def seeded(store):
    ensure_schema(store, (TYPE,), {TYPE: ["identifier", "code"]})
    rng = random.Random(7)
    docs = []
    for i in range(300):
        sp: dict[str, list[str]] = {}
        for name, pool in (("identifier", [f"urn:a|{n}" for n in range(30)]), ("code", ["c1", "c2", "c3", "c4"]),
                           ("status", ["final", "amended"])):
            picked = rng.sample(pool, rng.randint(0, 3 if name != "status" else 1))
            if picked:
                sp[name] = picked + [p.split("|")[-1] for p in picked]
        docs.append({"_id": f"r{i:04d}", "vid": 1, "ts": 1_767_225_600_000 + i,
                     "deleted": rng.random() < 0.2, "method": "POST", "text": "{}", "sp": sp})
    store[TYPE].delete_many({})
    store[TYPE].insert_many(docs)
    return docs


CRITERIA = [
    [Criterion("_id", ("r0001", "r0002", "r0150", "nope"))],
    [Criterion("identifier", ("urn:a|3",))],
    [Criterion("identifier", ("urn:a|3", "7", "urn:a|29"))],
    [Criterion("identifier", ("urn:a|3", "4")), Criterion("code", ("c1",))],
    [Criterion("code", ("c2",)), Criterion("status", ("final",))],  # status has no MongoDB index
    [Criterion("code", ("c1", "c3")), Criterion("code", ("c3", "c4"))],  # AND by repetition
    [Criterion("_id", ("r0010", "r0011")), Criterion("code", ("c1", "c2", "c3", "c4"))],
    [Criterion("identifier", ("no-such-value",))],
    [],
]


@pytest.mark.parametrize("criteria", CRITERIA, ids=[str(i) for i in range(len(CRITERIA))])
def test_planner_filters_agree_with_python_evaluation(store, seeded, criteria):
    query = plan_filter(criteria)
    expected = sorted(d["_id"] for d in seeded if matches(d, query))
    got = sorted(d["_id"] for d in store[TYPE].find(query, {"_id": 1}))
    assert got == expected
    assert expected or criteria == CRITERIA[-2] or criteria[0].code == "_id"  # the data exercises the query


def test_search_paging_shape_agrees_with_python_evaluation(store, seeded):
    base_query = plan_filter([Criterion("code", ("c1", "c2"))])
    repo = ResourceRepository(store)
    expected = sorted(d["_id"] for d in seeded if matches(d, base_query))
    got, after = [], None
    while True:
        query = base_query if after is None else {"$and": [base_query, {"_id": {"$gt": after}}]}
        page = repo.find_current(TYPE, query, 17)
        got += [v.id for v in page]
        if len(page) < 17:
            break
        after = page[-1].id
    assert got == expected


def _history_doc(rid: str, vid: int, ts: str) -> dict[str, Any]:
    return StoredVersion(TYPE, rid, vid, ts, False, "PUT", "{}", {}).history_doc()


def test_history_query_shapes_agree_with_python_evaluation(store, seeded):
    history = store[f"{TYPE}_history"]
    history.delete_many({})
    # Several versions inside one second, milliseconds apart, and exact ties: the engine once compared
    # ISO strings at second precision, which this data exposes.
    docs = [_history_doc(f"h{n % 9}", n // 9 + 1, f"2026-02-01T00:00:0{n % 3}.{(n * 37) % 5:03d}Z") for n in range(120)]
    history.insert_many(docs)
    repo = ResourceRepository(store)

    def reference(rid, since, after):
        since_ms = None if since is None else instant_to_ms(since)
        after_key = None if after is None else (instant_to_ms(after.ts), after.key)
        rows = [d for d in docs if (rid is None or d["rid"] == rid) and (since_ms is None or d["ts"] >= since_ms)
                and (after_key is None or (d["ts"], d["_id"]) < after_key)]
        return [d["_id"] for d in sorted(rows, key=lambda d: (d["ts"], d["_id"]), reverse=True)]

    cursor = HistoryCursor(ts="2026-02-01T00:00:01.002Z", key="h4/5")
    for rid in (None, "h3"):
        for since in (None, "2026-02-01T00:00:00.003Z", "2026-02-01T00:00:01.000Z"):
            for after in (None, cursor):
                got = [f"{v.id}/{v.vid}" for v in repo.history(TYPE, rid, since, after, 500)]
                assert got == reference(rid, since, after), (rid, since, after)


def test_write_claims_each_version_once_and_current_never_goes_back(store, seeded):
    repo = ResourceRepository(store)
    rid = f"cas-{uuid.uuid4().hex[:8]}"

    def version(vid: int) -> StoredVersion:
        return StoredVersion(TYPE, rid, vid, f"2026-03-01T00:00:0{vid}.000Z", False, "PUT", f'{{"v":{vid}}}', {})

    repo.write(version(1))
    repo.write(version(2))
    with pytest.raises(VersionConflict):
        repo.write(version(2))
    repo._advance_current(TYPE, version(1).current_doc())  # an old writer arriving late changes nothing
    assert repo.read_current(TYPE, rid).vid == 2
    store[f"{TYPE}_history"].insert_one(version(3).history_doc())  # claimed, current not moved: a crash
    repo.roll_forward(TYPE, rid)
    assert repo.read_current(TYPE, rid).vid == 3


def test_exclusive_lock_serialises_holders_across_threads(store, seeded):
    repo = ResourceRepository(store)
    inside, overlaps = [], []

    def hold(_: int) -> None:
        with repo.exclusive("contract-lock"):
            if inside:
                overlaps.append(1)
            inside.append(1)
            time.sleep(0.02)
            inside.pop()

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []


def test_expired_lock_of_a_dead_holder_is_taken_over(store, seeded):
    store["_locks"].insert_one({"_id": "contract-dead", "owner": "ghost", "expires": time.time() - 1})
    repo = ResourceRepository(store)
    with repo.exclusive("contract-dead", wait_s=2):
        pass
    assert store["_locks"].find_one({"_id": "contract-dead"}) is None
