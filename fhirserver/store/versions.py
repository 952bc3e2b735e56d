"""Versions: claim, advance, read and page the history of resources (docs/decisions/0001, 0008).

Write protocol of a single resource (two commands, no transaction needed):
  1. claim the version: insert `<Type>_history` {_id: "<id>/<v>"}. The unique _id lets exactly one writer have
     version v; a loser gets VersionConflict and nothing of it is stored.
  2. move the current document forward, but only if it is older than v
     (`replace_one({_id, vid: {$lt: v}}, upsert)`), so it never goes backwards.
A crash between 1 and 2 leaves the current document one version behind; `roll_forward` repairs it from history,
and writers call it whenever they lose a claim. No version is ever overwritten.
Several resources at once (a transaction Bundle) are written in one MongoDB multi-document transaction: all of
them or none, isolated from concurrent readers and writers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from pymongo import DESCENDING, InsertOne, ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure
from pymongo.read_concern import ReadConcern

from .client import DURABLE
from .errors import only_duplicate_keys
from .indexes import history_collection
from .locks import ChangeCounter
from .outages import translating_outages
from .records import HistoryCursor, StoredVersion, VersionConflict
from .timestamps import instant_to_ms

WITHOUT_SORT_KEYS = {"so": False}


@translating_outages
class VersionStore:
    """Current version + full history of each resource, over one MongoDB database."""

    def __init__(self, db: Database, changes: ChangeCounter, max_time_ms: int = 10_000) -> None:
        self._db = db
        self._changes = changes
        self._max_time_ms = max_time_ms

    # -- reads ----------------------------------------------------------------------------------------------
    def read_current(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        """The newest version, deleted or not (http://hl7.org/fhir/R4/http.html#read)."""
        doc = self._db[resource_type].find_one({"_id": resource_id}, projection=WITHOUT_SORT_KEYS,
                                               max_time_ms=self._max_time_ms)
        return StoredVersion.from_doc(resource_type, doc) if doc else None

    def read_current_many(self, resource_type: str, ids: list[str]) -> dict[str, StoredVersion]:
        """Current versions of several resources in one query (for transactions)."""
        if not ids:
            return {}
        cursor = self._db[resource_type].find({"_id": {"$in": ids}}, projection=WITHOUT_SORT_KEYS,
                                              max_time_ms=self._max_time_ms)
        return {d["_id"]: StoredVersion.from_doc(resource_type, d) for d in cursor}

    def read_version(self, resource_type: str, resource_id: str, vid: int) -> StoredVersion | None:
        """One past or present version (http://hl7.org/fhir/R4/http.html#vread)."""
        doc = self._db[history_collection(resource_type)].find_one(
            {"_id": f"{resource_id}/{vid}"}, projection=WITHOUT_SORT_KEYS, max_time_ms=self._max_time_ms)
        return StoredVersion.from_doc(resource_type, doc) if doc else None

    def history(self, resource_type: str, resource_id: str | None, since: str | None,
                after: HistoryCursor | None, count: int) -> list[StoredVersion]:
        """Versions newest first, instance or type level (http://hl7.org/fhir/R4/http.html#history)."""
        query = _history_query(resource_id, since)
        if after is not None:
            after_ms = instant_to_ms(after.ts)
            query["$or"] = [{"ts": {"$lt": after_ms}}, {"ts": after_ms, "_id": {"$lt": after.key}}]
        cursor = (self._db[history_collection(resource_type)]
                  .find(query, projection=WITHOUT_SORT_KEYS, max_time_ms=self._max_time_ms)
                  .sort([("ts", DESCENDING), ("_id", DESCENDING)]).limit(count))
        return [StoredVersion.from_doc(resource_type, d) for d in cursor]

    def count_history(self, resource_type: str, resource_id: str, since: str | None) -> int:
        """How many versions one resource has (since an instant): a history Bundle's total, counted by the store."""
        return self._db[history_collection(resource_type)].count_documents(
            _history_query(resource_id, since), maxTimeMS=self._max_time_ms)

    # -- writes ---------------------------------------------------------------------------------------------
    def write(self, version: StoredVersion) -> None:
        """Store `version` as the next version; VersionConflict if that number is already taken."""
        try:
            self._db[history_collection(version.resource_type)].insert_one(version.history_doc())
        except DuplicateKeyError:
            raise VersionConflict(f"{version.resource_type}/{version.id} version {version.vid}") from None
        self._advance_current(version.resource_type, version.current_doc())
        self._changes.changed({version.resource_type})

    def write_new(self, versions: list[StoredVersion]) -> None:
        """Insert first versions of new, independent resources in bulk (server-made records such as audit
        events): one command per collection for the whole batch, since no entry depends on another."""
        if not versions:
            return
        by_type = _by_type(versions)
        for resource_type, group in by_type.items():
            try:
                self._db[history_collection(resource_type)].insert_many([v.history_doc() for v in group],
                                                                       ordered=True)
            except (BulkWriteError, DuplicateKeyError) as exc:
                if not only_duplicate_keys(exc):
                    raise
                raise VersionConflict(f"a version of a {resource_type} was claimed concurrently") from None
        self._advance_all(by_type, None)
        self._changes.changed(set(by_type))

    def write_all(self, versions: list[StoredVersion], also: Callable[[Any], bool] | None = None,
                  checkpoint: Callable[[str], None] | None = None) -> bool:
        """All versions or none, in one MongoDB transaction (snapshot reads, majority commit). A claim lost to a
        concurrent writer aborts it: VersionConflict, and nothing of it is stored. `also(session)` runs first in
        the same transaction (e.g. the audit head's compare-and-set); when it returns False nothing is stored and
        the answer is False. `checkpoint(step)` is called after each step (fault-injection tests)."""
        if not versions:
            return True
        by_type = _by_type(versions)

        def body(session: Any) -> None:
            if also is not None and not also(session):
                raise _Declined
            _step(checkpoint, "head")
            for resource_type, group in by_type.items():
                self._db[history_collection(resource_type)].insert_many(
                    [v.history_doc() for v in group], ordered=True, session=session)
            _step(checkpoint, "history")
            self._advance_all(by_type, session)
            _step(checkpoint, "current")

        with self._db.client.start_session() as session:
            try:
                session.with_transaction(body, read_concern=ReadConcern("snapshot"),
                                         write_concern=DURABLE)
            except _Declined:
                return False
            except (BulkWriteError, DuplicateKeyError):
                raise VersionConflict("a transaction entry lost a concurrent write") from None
            except OperationFailure as exc:
                if exc.has_error_label("TransientTransactionError"):
                    raise VersionConflict("the transaction kept conflicting with concurrent writes") from None
                raise
        self._changes.changed(set(by_type))
        return True

    def roll_forward(self, resource_type: str, resource_id: str) -> None:
        """Repair a current document left behind its history (a writer stopped between its two writes)."""
        latest = self._db[history_collection(resource_type)].find_one(
            {"rid": resource_id}, sort=[("vid", DESCENDING)], max_time_ms=self._max_time_ms)
        if latest is not None:
            doc = {k: v for k, v in latest.items() if k != "rid"}
            doc["_id"] = resource_id
            self._advance_current(resource_type, doc)
            self._changes.changed({resource_type})

    def _advance_current(self, resource_type: str, doc: dict[str, Any]) -> None:
        # DuplicateKeyError: the current document is already at this version or newer; nothing to do.
        with contextlib.suppress(DuplicateKeyError):
            self._db[resource_type].replace_one({"_id": doc["_id"], "vid": {"$lt": doc["vid"]}}, doc, upsert=True)

    def _advance_all(self, by_type: dict[str, list[StoredVersion]], session: Any) -> None:
        """Current documents of claimed versions, one or two commands per type. A first version is inserted (its
        claim was unique, so no current document can be newer); a later one replaces an older current document.
        Outside a transaction a duplicate key means the current document is already there or newer: nothing to do."""
        for resource_type, group in by_type.items():
            collection = self._db[resource_type]
            firsts = [InsertOne(v.current_doc()) for v in group if v.vid == 1]
            later = [ReplaceOne({"_id": v.id, "vid": {"$lt": v.vid}}, v.current_doc(), upsert=True)
                     for v in group if v.vid > 1]
            for operations in (firsts, later):
                if not operations:
                    continue
                try:
                    collection.bulk_write(operations, ordered=False, session=session)
                except BulkWriteError as exc:
                    if session is not None or not only_duplicate_keys(exc):
                        raise


def _by_type(versions: list[StoredVersion]) -> dict[str, list[StoredVersion]]:
    by_type: dict[str, list[StoredVersion]] = {}
    for version in versions:
        by_type.setdefault(version.resource_type, []).append(version)
    return by_type


class _Declined(Exception):
    """The transaction's first step said no (nothing was written)."""


def _step(checkpoint: Callable[[str], None] | None, name: str) -> None:
    if checkpoint is not None:
        checkpoint(name)


def _history_query(resource_id: str | None, since: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if resource_id is not None:
        query["rid"] = resource_id
    if since is not None:
        query["ts"] = {"$gte": instant_to_ms(since)}
    return query
