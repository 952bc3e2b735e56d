"""Store contract: every query shape the planner and repository emit, run on the real engine (embedded,
or MongoDB when FHIRSERVER_MONGODB_URI is set) and compared with a Python evaluation of MongoDB's
semantics on the same documents. The embedded engine answers some valid shapes wrongly (see
docs/decisions/0002); this file catches an engine or planner change that would silently drop results."""

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
from fhirserver.fhir.search.indexer import INDEXABLE_TYPES, ResourceIndexer, database_indexed_parameters
from fhirserver.fhir.search.parameters import SearchParameterRegistry
from fhirserver.fhir.search.planner import Planner
from fhirserver.fhir.search.query import QueryParser
from fhirserver.fhir.search.values import parse_zone
from fhirserver.store.client import ensure_schema
from fhirserver.store.repository import HistoryCursor, ResourceRepository, StoredVersion, VersionConflict
from fhirserver.store.timestamps import instant_to_ms

PROFILES = Path(__file__).resolve().parents[1] / "profiles"
ZONE = parse_zone("+08:00")
TYPE = "ContractTest"


# The evaluator the repository uses after the lookup index narrows a query (store/matcher.py); every test
# below compares it with the engine, which is what makes that shortcut safe.
from fhirserver.store.matcher import _get, matches  # noqa: E402


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
        ensure_schema(store, (collection,), {collection: database_indexed_parameters(registry)[rtype]})
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
        query = base if last is None else {"$and": [base, _keyset(spec, [_get(last, f) for f, _ in sort], True)]}
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
    repo = ResourceRepository(store)
    values = repo.index_values(f"{TYPE}Observation", {"_id": {"$in": ["contract-o1"]}}, "sp.subject", 10)
    expected = next(d for d in seeded["Observation"] if d["_id"] == "contract-o1")["sp"]["subject"]
    assert values == expected and values


def test_empty_in_matches_nothing(store, seeded):
    assert list(store[f"{TYPE}Observation"].find({"_id": {"$in": []}})) == []


# -- history and write shapes ---------------------------------------------------------------------------
def _history_doc(rid: str, vid: int, ts: str) -> dict[str, Any]:
    return StoredVersion(TYPE, rid, vid, ts, False, "PUT", "{}", {}).history_doc()


def test_history_query_shapes_agree_with_python_evaluation(store):
    ensure_schema(store, (TYPE,), {TYPE: []})
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


def test_write_claims_each_version_once_and_current_never_goes_back(store):
    ensure_schema(store, (TYPE,), {TYPE: []})
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


def test_exclusive_lock_serialises_holders_across_threads(store):
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


def test_expired_lock_of_a_dead_holder_is_taken_over(store):
    store["_locks"].insert_one({"_id": "contract-dead", "owner": "ghost", "expires": time.time() - 1})
    repo = ResourceRepository(store)
    with repo.exclusive("contract-dead", wait_s=2):
        pass
    assert store["_locks"].find_one({"_id": "contract-dead"}) is None
