"""Store contract: every query shape the planner and the store parts emit, run on the real engine (embedded,
or MongoDB when FHIRSERVER_MONGODB_URI is set) and compared with a Python evaluation of MongoDB's documented
semantics on the same documents (tests/mongo_semantics.py). This file catches an engine, planner or store change
that would silently drop results; and the write contracts (version claims, transactions, locks)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import synthetic

from fhirserver.fhir.interactions.search import _keyset
from fhirserver.fhir.search.indexer import (
    BUCKETED_DATES,
    INDEXABLE_TYPES,
    ResourceIndexer,
    database_indexed_parameters,
)
from fhirserver.fhir.search.parameters import SearchParameterRegistry
from fhirserver.fhir.search.planner import Planner
from fhirserver.fhir.search.query import QueryParser
from fhirserver.fhir.search.values import parse_zone
from fhirserver.store.client import ensure_schema
from fhirserver.store.filters import all_of, or_branches
from fhirserver.store.indexes import collection_indexes, indexed_fields
from fhirserver.store.records import HistoryCursor, StoredVersion, VersionConflict
from fhirserver.store.store import Store, open_store
from fhirserver.store.timestamps import instant_to_ms

PROFILES = Path(__file__).resolve().parents[1] / "profiles"
ZONE = parse_zone("+08:00")
TYPE = "ContractTest"


from mongo_semantics import _get, matches  # noqa: E402


def _schema(store, collections: tuple[str, ...], parameters: dict[str, list[str]]) -> Store:
    specs = collection_indexes(collections, parameters, BUCKETED_DATES)
    ensure_schema(store, specs)
    return open_store(store, indexed=indexed_fields(specs))


def test_reference_evaluator_knows_the_operators():
    doc = {"sp": {"t": ["a", "b"], "d": [{"lo": 1, "hi": 5}]}, "so": {"n": 3}}
    assert matches(doc, {"sp.t": {"$in": ["b"]}}) and not matches(doc, {"sp.t": {"$nin": ["b"]}})
    assert matches(doc, {"sp.d": {"$elemMatch": {"lo": {"$gte": 1}, "hi": {"$lte": 5}}}})
    assert not matches(doc, {"sp.d": {"$elemMatch": {"lo": {"$gt": 1}}}})
    assert matches(doc, {"sp.t": {"$elemMatch": {"$regex": "^a"}}}) and matches(doc, {"sp.x": {"$exists": False}})
    assert matches(doc, {"$nor": [{"sp.t": {"$in": ["z"]}}]}) and matches(doc, {"so.n": {"$gt": 2}})


# -- seeded documents built by the real indexer -------------------------------------------------------
@pytest.fixture(scope="module")
def registry() -> SearchParameterRegistry:
    return SearchParameterRegistry(PROFILES, INDEXABLE_TYPES)


@pytest.fixture(scope="module")
def seeded(store, registry):
    rng = random.Random(11)
    pats = synthetic.patients(rng, 60, "contract")
    obs = synthetic.observations(rng, 240, pats, "contract")
    indexer = ResourceIndexer(registry, ZONE)
    docs = {}
    for rtype, resources in (("Observation", obs), ("Patient", pats)):
        collection = f"{TYPE}{rtype}"
        _schema(store, (collection,), {collection: database_indexed_parameters(registry)[rtype]})
        store[collection].delete_many({})
        rows = [{"_id": r["id"], "vid": 1, "ts": 1_767_225_600_000 + i, "deleted": rng.random() < 0.1,
                 "method": "PUT", "text": "{}", **indexer.index(r)} for i, r in enumerate(resources)]
        store[collection].insert_many(rows)
        docs[rtype] = rows
    return docs


OBSERVATION_QUERIES = [
    "_id=contract-o1,contract-o2,contract-o150,nope", "_id:not=contract-o1", "identifier=LIS-3,LIS-4,LIS-5",
    "identifier=urn:oid:2.16.156.10011.1.99|LIS-7,LIS-9", "identifier=urn:oid:2.16.156.10011.1.99|",
    "code=718-7", "code=http://loinc.org|777-3&status=final", "code=718-7&code=777-3", "status:not=final",
    "code:text=血", "code:text=糖化", "subject=Patient/contract-p3", "subject:Patient=contract-p4,contract-p5",
    "subject:missing=true", "value-quantity:missing=true", "component-code=8480-6",
    "date=2024", "date=2024-03", "date=gt2024-06-01", "date=lt2024-06-01", "date=ge2024", "date=le2023-12-31",
    "date=sa2024-06-01", "date=eb2024-06-01", "date=ne2024", "date=ap2024-06-01", "date:missing=true",
    "value-quantity=135", "value-quantity=gt150", "value-quantity=le3.5", "value-quantity=ne135",
    "value-quantity=ge5|http://unitsofmeasure.org|mmol/L", "value-quantity=lt6||%", "value-quantity=ap140",
    "code-value-quantity=http://loinc.org|718-7$gt150", "code-value-quantity=718-7$lt120",
    "combo-code-value-quantity=8480-6$ge140", "_tag=urn:test|contract", "_lastUpdated=gt2020",
    "identifier=no-such-value",
    # bounded date windows: the planner adds the implied 30-day bucket clause
    "date=ge2024-03-01&date=lt2024-04-01", "date=ge2024-03-01&date=le2024-04-15", "date=2024-01,2024-06",
    "date=gt2024-02-10&date=eb2024-05-01",
    "date=ge2024-01-01&date=lt2024-07-01&subject=Patient/contract-p3,Patient/contract-p4,Patient/contract-p5",
    # several $or at once (OR plans distribute them), with an indexed field to start from and without
    "date=ge2024-03-01&date=lt2024-06-01&code=718-7,http://loinc.org|", "code=http://loinc.org|,718-7",
    "subject=Patient/contract-p3,Patient/contract-p4,Patient/contract-p5"
    "&value-quantity=ge5|http://unitsofmeasure.org|mmol/L,gt100&date=ge2023",
]
PATIENT_QUERIES = [
    "name=张", "name=zhang", "name=müller", "name=muller", "name:contains=ll", "name:exact=张三", "name=秀",
    "address-city=成都", "address=重庆", "birthdate=1974", "birthdate=ge2000-01-01", "birthdate=lt1960",
    "birthdate:missing=true", "gender=female", "gender:not=male", "identifier=urn:oid:2.16.156.10011.1.3|",
]


@pytest.mark.parametrize("query", OBSERVATION_QUERIES)
def test_observation_filters_agree_with_python_evaluation(store, seeded, registry, query):
    _check(store, seeded, registry, "Observation", query)


@pytest.mark.parametrize("query", PATIENT_QUERIES)
def test_patient_filters_agree_with_python_evaluation(store, seeded, registry, query):
    _check(store, seeded, registry, "Patient", query)


def _check(store, seeded, registry, rtype: str, query: str) -> None:
    parsed = QueryParser(registry).parse(rtype, parse_qsl(query))
    planned = Planner(ZONE).plan(parsed.criteria)
    expected = sorted(d["_id"] for d in seeded[rtype] if matches(d, planned))
    got = sorted(d["_id"] for d in store[f"{TYPE}{rtype}"].find(planned, {"_id": 1}))
    assert got == expected, planned
    parts = _schema(store, (f"{TYPE}{rtype}",), {f"{TYPE}{rtype}": database_indexed_parameters(registry)[rtype]})
    through_store = parts.search.find_current(f"{TYPE}{rtype}", planned, 10_000)
    assert [v.id for v in through_store] == expected, planned  # the OR plan, when it applies, in id order
    assert parts.search.count(f"{TYPE}{rtype}", planned) == len(expected)
    branches = or_branches(planned)
    if branches:  # each branch is a conjunction without a top-level $or, and together they are the filter
        assert all("$or" not in b for b in branches)
        assert sorted({d["_id"] for d in seeded[rtype] for b in branches if matches(d, b)}) == expected


def test_plans_are_in_implicit_form_where_fields_do_not_repeat(registry):
    """The embedded engine uses an index only when the filter's top-level keys are all fields (decision 0008)."""
    def plan(rtype: str, query: str) -> dict[str, Any]:
        return Planner(ZONE).plan(QueryParser(registry).parse(rtype, parse_qsl(query)).criteria)

    assert plan("Observation", "subject=Patient/p1&code=http://loinc.org|718-7") == {
        "deleted": False, "sp.subject": {"$in": ["Patient/p1"]}, "sp.code": {"$in": ["http://loinc.org|718-7"]}}
    assert plan("Observation", "status:not=final&_id=a") == {
        "_id": {"$in": ["a"]}, "deleted": False, "sp.status": {"$nin": ["final"]}}
    month = plan("DiagnosticReport", "date=ge2025-03-01&date=lt2025-04-01")
    assert month["sp.date__b"]["$in"][-1] == "long" and len(month["sp.date__b"]["$in"]) == 3
    assert set(month) == {"deleted", "sp.date", "sp.date__b", "$or"}  # lt in place, ge's two forms as the $or
    both = plan("Observation", "date=lt2024-04-01&date=gt2024-03-01")
    assert list(both["sp.date"]) == ["$all"] and len(both["sp.date"]["$all"]) == 2
    assert all_of({"$and": [{"a": 1}, {"$and": [{"b": 2}]}]}, {"a": 1}) == {"a": 1, "b": 2}
    assert all_of({"a": {"$in": [1]}}, {"a": {"$in": [2]}}) == {"a": {"$in": [1]}, "$and": [{"a": {"$in": [2]}}]}


def test_the_queries_exercise_the_data(store, seeded, registry):
    """Most queries must find something, or agreement above would prove little."""
    empty = set()
    for query in OBSERVATION_QUERIES + PATIENT_QUERIES:
        rtype = "Patient" if query in PATIENT_QUERIES else "Observation"
        planned = Planner(ZONE).plan(QueryParser(registry).parse(rtype, parse_qsl(query)).criteria)
        if not any(matches(d, planned) for d in seeded[rtype]):
            empty.add(query)
    assert empty == {"code=718-7&code=777-3", "subject:missing=true", "identifier=no-such-value"}


@pytest.mark.parametrize("sort", [[("_id", 1)], [("so.date", 1), ("_id", 1)], [("so.value_quantity", -1), ("_id", 1)],
                                  [("so.status", 1), ("so.date", -1), ("_id", 1)]])
def test_keyset_paging_visits_every_match_once_in_order(store, seeded, sort):
    collection = store[f"{TYPE}Observation"]
    base = {"deleted": False}
    spec = [(f, d, "date" if "date" in f or "value" in f else "token") for f, d in sort]
    expected = [d["_id"] for d in collection.find(base).sort(sort)]
    got: list[str] = []
    last: dict[str, Any] | None = None
    while True:
        query = base if last is None else all_of(base, _keyset(spec, [_get(last, f) for f, _ in sort], True))
        page = list(collection.find(query).sort(sort).limit(23))
        got += [d["_id"] for d in page]
        if len(page) < 23:
            break
        last = page[-1]
    assert got == expected
    reference = sorted(seeded["Observation"], key=lambda d: tuple(
        (_get(d, f) if d2 == 1 else _neg(_get(d, f))) for f, d2 in sort))
    assert got == [d["_id"] for d in reference if not d["deleted"]]


def _neg(value: Any) -> Any:
    if isinstance(value, int | float):
        return -value
    return (*(-ord(ch) for ch in value), 1)  # descending order of strings


def test_index_values_reads_dotted_projections_on_every_engine(store, seeded):
    parts = open_store(store)
    values = parts.search.index_values(f"{TYPE}Observation", {"_id": {"$in": ["contract-o1"]}}, "sp.subject", 10)
    expected = next(d for d in seeded["Observation"] if d["_id"] == "contract-o1")["sp"]["subject"]
    assert values == expected and values


def test_empty_in_matches_nothing(store, seeded):
    assert list(store[f"{TYPE}Observation"].find({"_id": {"$in": []}})) == []


# -- history and write shapes ---------------------------------------------------------------------------
def _history_doc(rid: str, vid: int, ts: str) -> dict[str, Any]:
    return StoredVersion(TYPE, rid, vid, ts, False, "PUT", "{}", {}).history_doc()


def test_history_query_shapes_agree_with_python_evaluation(store):
    _schema(store, (TYPE,), {TYPE: []})
    history = store[f"{TYPE}_history"]
    history.delete_many({})
    # Several versions inside one second, milliseconds apart, and exact ties: the engine once compared
    # ISO strings at second precision, which this data exposes.
    docs = [_history_doc(f"h{n % 9}", n // 9 + 1, f"2026-02-01T00:00:0{n % 3}.{(n * 37) % 5:03d}Z") for n in range(120)]
    history.insert_many(docs)
    versions = open_store(store).versions

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
                got = [f"{v.id}/{v.vid}" for v in versions.history(TYPE, rid, since, after, 500)]
                assert got == reference(rid, since, after), (rid, since, after)


def test_write_claims_each_version_once_and_current_never_goes_back(store):
    repo = _schema(store, (TYPE,), {TYPE: []}).versions
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


def test_exclusive_lock_serialises_holders_across_threads(store):
    repo = open_store(store).locks
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


def test_expired_lock_of_a_dead_holder_is_taken_over(store):
    store["_locks"].insert_one({"_id": "contract-dead", "owner": "ghost", "expires": time.time() - 1})
    repo = open_store(store).locks
    with repo.exclusive("contract-dead", wait_s=2):
        pass
    assert store["_locks"].find_one({"_id": "contract-dead"}) is None


def test_transactions_are_isolated_and_all_or_nothing(store):
    """8 threads x 10 read-increment transactions on one resource: every commit is its own version, no version
    twice, none lost, and a transaction that loses leaves nothing (the embedded engine once let 23 commits end at
    version 44). What transaction Bundles rely on."""
    parts = _schema(store, (TYPE, f"{TYPE}Other"), {TYPE: [], f"{TYPE}Other": []})
    rid = f"tx-{uuid.uuid4().hex[:8]}"
    parts.versions.write(StoredVersion(TYPE, rid, 1, "2026-03-01T00:00:00.000Z", False, "PUT", "{}", {}))
    committed: list[int] = []
    lost: list[str] = []

    def bump(thread: int) -> None:
        for n in range(10):
            current = parts.versions.read_current(TYPE, rid)
            assert current is not None
            other = f"{rid}-{thread}-{n}"
            try:
                parts.versions.write_all([
                    StoredVersion(f"{TYPE}Other", other, 1, "2026-03-01T00:00:01.000Z", False, "POST", "{}", {}),
                    StoredVersion(TYPE, rid, current.vid + 1, "2026-03-01T00:00:01.000Z", False, "PUT", "{}", {})])
                committed.append(current.vid + 1)
            except VersionConflict:
                lost.append(other)

    threads = [threading.Thread(target=bump, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = parts.versions.read_current(TYPE, rid)
    assert final is not None and final.vid == 1 + len(committed)
    assert sorted(committed) == list(range(2, 2 + len(committed)))
    assert len(list(store[f"{TYPE}_history"].find({"rid": rid}))) == 1 + len(committed)
    assert list(store[f"{TYPE}Other"].find({"_id": {"$in": lost}})) == []  # losers left nothing behind
    assert committed and len(committed) + len(lost) == 80


def test_or_plan_merges_branches_in_sort_order_with_limit(store, seeded):
    """A filter with a top-level $or is run branch by branch; the merged page is the engine's own page."""
    parts = open_store(store, indexed={f"{TYPE}Observation": frozenset({"sp.subject"})})
    query = {"deleted": False, "$or": [{"sp.subject": {"$in": ["Patient/contract-p3"]}},
                                       {"sp.subject": {"$in": ["Patient/contract-p4", "Patient/contract-p5"]}}]}
    for sort in ([("_id", 1)], [("so.date", -1), ("_id", 1)], [("so.status", 1), ("_id", -1)]):
        expected = [d["_id"] for d in store[f"{TYPE}Observation"].find(query).sort(sort).limit(7)]
        assert [v.id for v, _ in parts.search.search(f"{TYPE}Observation", query, sort, 7)] == expected
