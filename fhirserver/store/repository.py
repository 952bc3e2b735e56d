"""The versioned resource repository: the only place that reads and writes resources in MongoDB.

Write protocol (no multi-document transaction needed, so it is safe on the embedded engine, whose
transactions are not isolated between concurrent sessions):
  1. claim the version: insert `<Type>_history` {_id: "<id>/<v>"}. The unique _id lets exactly one
     writer have version v; a loser gets VersionConflict and nothing of it is stored.
  2. move the current document forward, but only if it is older than v
     (`replace_one({_id, vid: {$lt: v}}, upsert)`), so it never goes backwards.
A crash between 1 and 2 leaves the current document one version behind; `roll_forward` repairs it
from history, and writers call it whenever they lose a claim. No version is ever overwritten.
See docs/decisions/0001-versioned-storage.md.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, ExecutionTimeout

from .errors import StoreUnavailable, only_duplicate_keys
from .indexes import GENERATIONS, JOURNAL, LOCKS, history_collection
from .lookup import LookupIndex
from .matcher import candidate_ids, matches
from .timestamps import instant_to_ms, ms_to_instant

_OUTAGES = (ConnectionFailure, ExecutionTimeout)
REGISTRY = "registry"


def _translating_outages(cls: type) -> type:
    """Wrap public methods so an unreachable or slow database surfaces as StoreUnavailable."""
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or not callable(method) or name in ("exclusive", "registry_snapshot"):
            continue

        def wrapper(*args: Any, __method: Any = method, **kwargs: Any) -> Any:
            try:
                return __method(*args, **kwargs)
            except _OUTAGES as exc:
                raise StoreUnavailable(type(exc).__name__) from exc

        wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
        setattr(cls, name, wrapper)
    return cls


class VersionConflict(Exception):
    """Another writer already claimed this version of the resource."""


class LockTimeout(Exception):
    """A conditional write on the same criteria held the lock for too long."""


@dataclass(frozen=True)
class StoredVersion:
    """One version of one resource as stored. `text` is the exact JSON of the resource (None if deleted)."""

    resource_type: str
    id: str
    vid: int
    last_updated: str
    deleted: bool
    method: str
    text: str | None
    sp: dict[str, list[Any]] = field(default_factory=dict)
    so: dict[str, Any] = field(default_factory=dict)
    tx: str | None = None  # the transaction Bundle that wrote this version, if any

    def history_doc(self) -> dict[str, Any]:
        doc = {"_id": f"{self.id}/{self.vid}", "rid": self.id, "vid": self.vid, "ts": instant_to_ms(self.last_updated),
               "deleted": self.deleted, "method": self.method, "text": self.text, "sp": self.sp, "so": self.so}
        if self.tx:
            doc["tx"] = self.tx
        return doc

    def current_doc(self) -> dict[str, Any]:
        return {"_id": self.id, "vid": self.vid, "ts": instant_to_ms(self.last_updated), "deleted": self.deleted,
                "method": self.method, "text": self.text, "sp": self.sp, "so": self.so}

    @classmethod
    def from_doc(cls, resource_type: str, doc: dict[str, Any]) -> StoredVersion:
        return cls(resource_type=resource_type, id=doc.get("rid", doc["_id"]), vid=int(doc["vid"]),
                   last_updated=ms_to_instant(doc["ts"]), deleted=bool(doc["deleted"]), method=doc.get("method", "PUT"),
                   text=doc.get("text"), sp=doc.get("sp") or {}, so=doc.get("so") or {})


@dataclass(frozen=True)
class HistoryCursor:
    """Position after the last entry of a history page: newest-first order is (ts, id/vid) descending."""

    ts: str
    key: str


def _sort_value(doc: dict[str, Any], key: str) -> Any:
    value: Any = doc
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value if value is not None else ""


@_translating_outages
class ResourceRepository:
    """Versioned storage of FHIR resources over one MongoDB database."""

    def __init__(self, db: Database, max_time_ms: int = 10_000, replica_set: bool = False,
                 lookup: LookupIndex | None = None, registry_types: frozenset[str] = frozenset()) -> None:
        self._db = db
        self._max_time_ms = max_time_ms
        self.replica_set = replica_set
        self.lookup = lookup  # the embedded engine's lookup index (store/lookup.py), or None
        self.registry_types = registry_types  # changes to these are counted (store/registry_cache.py)
        self._snapshot = threading.local()

    # -- the registry generation -------------------------------------------------------------
    def registry_generation(self) -> int:
        """How many writes the registry types have seen (any process); moves after each change is visible.
        Inside `registry_snapshot()` it is read once, at first need, and kept until this thread writes one."""
        kept = getattr(self._snapshot, "generation", None)
        if kept is not None:
            return int(kept)
        doc = self._db[GENERATIONS].find_one({"_id": REGISTRY}, max_time_ms=self._max_time_ms)
        generation = int(doc["n"]) if doc else 0
        if getattr(self._snapshot, "active", False):
            self._snapshot.generation = generation
        return generation

    @contextmanager
    def registry_snapshot(self) -> Iterator[None]:
        """One registry generation for a whole request (one read instead of one per cached value)."""
        self._snapshot.active, self._snapshot.generation = True, None
        try:
            yield
        finally:
            self._snapshot.active, self._snapshot.generation = False, None

    def _changed(self, resource_types: set[str]) -> None:
        if resource_types & self.registry_types:
            self._db[GENERATIONS].update_one({"_id": REGISTRY}, {"$inc": {"n": 1}}, upsert=True)
            self._snapshot.generation = None  # this request sees its own change

    def ping(self) -> None:
        """Raise StoreUnavailable when the database does not answer (readiness)."""
        self._db.client.admin.command("ping")

    @property
    def database(self) -> Database:
        """For sibling stores in store/ (e.g. DICOM objects) that share the connection."""
        return self._db

    # -- reads -------------------------------------------------------------------------------
    def read_current(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        """The newest version, deleted or not (http://hl7.org/fhir/R4/http.html#read)."""
        doc = self._db[resource_type].find_one({"_id": resource_id}, projection={"so": False},
                                               max_time_ms=self._max_time_ms)
        return StoredVersion.from_doc(resource_type, doc) if doc else None

    def read_version(self, resource_type: str, resource_id: str, vid: int) -> StoredVersion | None:
        """One past or present version (http://hl7.org/fhir/R4/http.html#vread)."""
        doc = self._db[history_collection(resource_type)].find_one(
            {"_id": f"{resource_id}/{vid}"}, projection={"so": False}, max_time_ms=self._max_time_ms)
        return StoredVersion.from_doc(resource_type, doc) if doc else None

    def history(self, resource_type: str, resource_id: str | None, since: str | None,
                after: HistoryCursor | None, count: int) -> list[StoredVersion]:
        """Versions newest first, instance or type level (http://hl7.org/fhir/R4/http.html#history)."""
        clauses: list[dict[str, Any]] = []
        if resource_id is not None:
            clauses.append({"rid": resource_id})
        if since is not None:
            clauses.append({"ts": {"$gte": instant_to_ms(since)}})
        if after is not None:
            after_ms = instant_to_ms(after.ts)
            clauses.append({"$or": [{"ts": {"$lt": after_ms}},
                                    {"$and": [{"ts": after_ms}, {"_id": {"$lt": after.key}}]}]})
        query = {"$and": clauses} if len(clauses) > 1 else (clauses[0] if clauses else {})
        cursor = (self._db[history_collection(resource_type)]
                  .find(query, projection={"so": False}, max_time_ms=self._max_time_ms)
                  .sort([("ts", DESCENDING), ("_id", DESCENDING)]).limit(count))
        return [StoredVersion.from_doc(resource_type, d) for d in cursor]

    def find_current(self, resource_type: str, query: dict[str, Any], limit: int) -> list[StoredVersion]:
        """Current versions matching a planner filter (see fhir/search/planner.py), in id order."""
        return [version for version, _ in self.search(resource_type, query, [("_id", ASCENDING)], limit)]

    def search(self, resource_type: str, query: dict[str, Any], sort: list[tuple[str, int]],
               limit: int) -> list[tuple[StoredVersion, dict[str, Any]]]:
        """Matches in `sort` order with their sort keys (`so`), for keyset paging."""
        narrowed = self._narrowed(resource_type, query)
        if narrowed is not None:
            for key, direction in reversed(sort):  # stable sorts, last key first
                narrowed.sort(key=lambda d, k=key: _sort_value(d, k), reverse=direction < 0)
            return [(StoredVersion.from_doc(resource_type, d), d.get("so") or {}) for d in narrowed[:limit]]
        cursor = (self._db[resource_type]
                  .find(query, max_time_ms=self._max_time_ms)
                  .sort(sort).limit(limit))
        return [(StoredVersion.from_doc(resource_type, d), d.get("so") or {}) for d in cursor]

    def _narrowed(self, resource_type: str, query: dict[str, Any]) -> list[dict[str, Any]] | None:
        """With the lookup index: fetch the candidate ids by primary key and apply the filter here
        (store/matcher.py), because the embedded engine scans for `_id $in` combined with anything else."""
        if self.lookup is None:
            return None
        ids = candidate_ids(query)
        if ids is None:
            return None
        if not ids:
            return []
        docs = self._db[resource_type].find({"_id": {"$in": ids}}, max_time_ms=self._max_time_ms)
        return [d for d in docs if matches(d, query)]

    def count(self, resource_type: str, query: dict[str, Any]) -> int:
        """Number of matches; an aggregate, as `count_documents` is very slow on the embedded engine."""
        narrowed = self._narrowed(resource_type, query)
        if narrowed is not None:
            return len(narrowed)
        result = list(self._db[resource_type].aggregate([{"$match": query}, {"$count": "n"}],
                                                        maxTimeMS=self._max_time_ms))
        return int(result[0]["n"]) if result else 0

    def save_note(self, collection: str, note: dict[str, Any]) -> None:
        """Small bookkeeping documents (e.g. CDS cards issued) in their own collection, by `_id`."""
        self._db[collection].replace_one({"_id": note["_id"]}, note, upsert=True)

    def load_note(self, collection: str, note_id: str) -> dict[str, Any] | None:
        return self._db[collection].find_one({"_id": note_id}, max_time_ms=self._max_time_ms)

    def aggregate(self, resource_type: str, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """An aggregation over current versions (statistics); planner-style $match stages only."""
        return list(self._db[resource_type].aggregate(pipeline, maxTimeMS=self._max_time_ms))

    def index_values(self, resource_type: str, query: dict[str, Any], field: str, limit: int) -> list[Any]:
        """The stored index values `sp.<field>` of the matches (for _has and _include)."""
        values: list[Any] = []
        narrowed = self._narrowed(resource_type, query)
        cursor = narrowed[:limit] if narrowed is not None else self._db[resource_type].find(
            query, projection={field: True}, max_time_ms=self._max_time_ms).limit(limit)
        for doc in cursor:
            # MongoDB answers a dotted projection with nested documents; the embedded engine with a
            # flat "sp.x" key. Accept both.
            node: Any = doc.get(field) if field in doc else doc
            if field not in doc:
                for part in field.split("."):
                    node = node.get(part) if isinstance(node, dict) else None
            values.extend(node or [])
        return values

    # -- writes ------------------------------------------------------------------------------
    def write(self, version: StoredVersion) -> None:
        """Store `version` as the next version; VersionConflict if that number is already taken."""
        try:
            self._db[history_collection(version.resource_type)].insert_one(version.history_doc())
        except DuplicateKeyError:
            raise VersionConflict(f"{version.resource_type}/{version.id} version {version.vid}") from None
        if self.lookup is not None:  # keys before the version becomes current: candidates never miss it
            self.lookup.add(LookupIndex.keys(version.resource_type, version.id, version.sp))
        self._advance_current(version.resource_type, version.current_doc())
        self._changed({version.resource_type})

    def write_new(self, versions: list[StoredVersion]) -> None:
        """Insert first versions of new, independent resources in bulk (server-made records such as audit
        events): three commands for the whole batch, no journal, since no entry depends on another."""
        if versions:
            self._write_each(versions, None)
            self._changed({v.resource_type for v in versions})

    def write_all(self, versions: list[StoredVersion], tx: str) -> None:
        """All versions or none: VersionConflict (or an outage) leaves nothing of them behind.

        On a replica set the writes run in one MongoDB transaction. Otherwise (the embedded engine,
        whose transactions are not isolated) a journal lists the claims first; a failure, or a crash
        found by `recover`, undoes every claim the journal names.
        """
        if self.replica_set:
            with self._db.client.start_session() as session:
                try:
                    session.with_transaction(lambda s: self._write_each(versions, s))
                except DuplicateKeyError:
                    raise VersionConflict("a transaction entry lost a concurrent write") from None
            self._changed({v.resource_type for v in versions})
            return
        journal = self._db[JOURNAL]
        journal.insert_one({"_id": tx, "started": time.time(),
                            "writes": [[v.resource_type, v.id, v.vid] for v in versions]})
        try:
            self._write_each(versions, None)
        except BaseException:
            self.undo(tx)  # counts the registry change itself
            raise
        self._changed({v.resource_type for v in versions})
        journal.delete_one({"_id": tx})

    def _write_each(self, versions: list[StoredVersion], session: Any) -> None:
        """Claims in one ordered insert per type, then the current documents in one bulk write per type."""
        by_type: dict[str, list[StoredVersion]] = {}
        for version in versions:
            by_type.setdefault(version.resource_type, []).append(version)
        for resource_type, group in by_type.items():
            try:
                self._db[history_collection(resource_type)].insert_many(
                    [v.history_doc() for v in group], ordered=True, session=session)
            except (BulkWriteError, DuplicateKeyError):
                if session is not None:
                    raise DuplicateKeyError("claim lost in a transaction") from None
                raise VersionConflict(f"a version of a {resource_type} was claimed concurrently") from None
        if self.lookup is not None:
            self.lookup.add([k for v in versions for k in LookupIndex.keys(v.resource_type, v.id, v.sp)], session)
        for resource_type, group in by_type.items():
            operations = [ReplaceOne({"_id": v.id, "vid": {"$lt": v.vid}}, v.current_doc(), upsert=True)
                          for v in group]
            try:
                self._db[resource_type].bulk_write(operations, ordered=False, session=session)
            except BulkWriteError as exc:
                # Duplicate keys mean the current document is already newer: nothing to do there.
                if not only_duplicate_keys(exc):
                    raise

    def read_current_many(self, resource_type: str, ids: list[str]) -> dict[str, StoredVersion]:
        """Current versions of several resources in one query (for transactions)."""
        if not ids:
            return {}
        cursor = self._db[resource_type].find({"_id": {"$in": ids}}, projection={"so": False},
                                              max_time_ms=self._max_time_ms)
        return {d["_id"]: StoredVersion.from_doc(resource_type, d) for d in cursor}

    def undo(self, tx: str) -> None:
        """Take back every version a journaled transaction claimed, newest first, then forget it.

        A claim is removed only if it carries this transaction's mark; the current document is moved
        back only if it still shows that claim (a later writer's version is left in place)."""
        entry = self._db[JOURNAL].find_one({"_id": tx})
        if entry is None:
            return
        for resource_type, resource_id, vid in reversed(entry["writes"]):
            history = self._db[history_collection(resource_type)]
            history.delete_one({"_id": f"{resource_id}/{vid}", "tx": tx})
            previous = history.find_one({"rid": resource_id, "vid": {"$lt": vid}}, sort=[("vid", DESCENDING)])
            if previous is None:
                self._db[resource_type].delete_one({"_id": resource_id, "vid": vid})
            else:
                doc = {k: v for k, v in previous.items() if k not in ("rid", "tx")}
                doc["_id"] = resource_id
                self._db[resource_type].replace_one({"_id": resource_id, "vid": vid}, doc)
        self._changed({resource_type for resource_type, _, _ in entry["writes"]})
        self._db[JOURNAL].delete_one({"_id": tx})

    def recover(self, older_than_s: float = 0.0) -> int:
        """Undo transactions that a crashed process left half-written (run at start-up)."""
        stale = list(self._db[JOURNAL].find({"started": {"$lt": time.time() - older_than_s}}, {"_id": 1}))
        for entry in stale:
            self.undo(entry["_id"])
        return len(stale)

    def _advance_current(self, resource_type: str, doc: dict[str, Any]) -> None:
        # DuplicateKeyError: the current document is already at this version or newer; nothing to do.
        with contextlib.suppress(DuplicateKeyError):
            self._db[resource_type].replace_one({"_id": doc["_id"], "vid": {"$lt": doc["vid"]}}, doc, upsert=True)

    def roll_forward(self, resource_type: str, resource_id: str) -> None:
        """Repair a current document left behind its history (a writer stopped between its two writes)."""
        latest = self._db[history_collection(resource_type)].find_one(
            {"rid": resource_id}, sort=[("vid", DESCENDING)], max_time_ms=self._max_time_ms)
        if latest is not None:
            doc = {k: v for k, v in latest.items() if k not in ("rid", "tx")}
            doc["_id"] = resource_id
            if self.lookup is not None:
                self.lookup.add(LookupIndex.keys(resource_type, resource_id, doc.get("sp") or {}))
            self._advance_current(resource_type, doc)
            self._changed({resource_type})

    # -- serialising conditional writes --------------------------------------------------------
    @contextmanager
    def exclusive(self, *keys: str, wait_s: float = 10.0, lease_s: float = 30.0) -> Iterator[None]:
        """Hold named locks across processes (unique documents in `_locks`), like HAPI's search-URL table:
        two conditional creates with the same criteria never both create, and two transactions never write
        the same resource at once. All keys are taken together or none (one insert; on a conflict the ones
        taken are given back before waiting), so holders of several keys cannot deadlock."""
        wanted = sorted(set(keys))
        owner = uuid.uuid4().hex
        locks = self._db[LOCKS]
        deadline = time.monotonic() + wait_s
        delay = 0.005
        while wanted:
            now = time.time()
            try:
                locks.insert_many([{"_id": key, "owner": owner, "expires": now + lease_s} for key in wanted],
                                  ordered=False)
                break
            except (BulkWriteError, DuplicateKeyError) as exc:
                if not only_duplicate_keys(exc):
                    raise
                locks.delete_many({"_id": {"$in": wanted}, "owner": owner})  # give back what was taken
                # A holder that died leaves expired leases: take them over.
                locks.delete_many({"_id": {"$in": wanted}, "expires": {"$lt": now}})
                if time.monotonic() > deadline:
                    raise LockTimeout(", ".join(wanted)[:200]) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        try:
            yield
        finally:
            if wanted:
                locks.delete_many({"_id": {"$in": wanted}, "owner": owner})
