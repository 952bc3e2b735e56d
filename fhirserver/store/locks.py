"""Named locks across processes, and change counters (what the registry cache is keyed by).

Locks are unique documents in `_locks`, like HAPI's search-URL table: two conditional creates with the same
criteria never both create (snapshot isolation alone would let both see "no match"), and two transactions
take turns on a resource instead of one aborting. Counters are one document per name in `_generations`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .errors import only_duplicate_keys
from .indexes import GENERATIONS, LOCKS
from .outages import outages_translated, translating_outages
from .records import LockTimeout

REGISTRY = "registry"
PERSONS = "persons"
SUBSCRIPTIONS = "subscriptions"
GROUP_FIELDS = {REGISTRY: "n"}  # the registry's counter kept its first field name


@translating_outages
class Locks:
    def __init__(self, db: Database) -> None:
        self._db = db

    @contextmanager
    def exclusive(self, *keys: str, wait_s: float = 10.0, lease_s: float = 30.0) -> Iterator[None]:
        """Hold every named lock, or wait (LockTimeout after `wait_s`). All keys are taken together or none (one
        insert; on a conflict the ones taken are given back before waiting), so holders of several keys cannot
        deadlock. A holder that died leaves a lease that expires."""
        wanted = sorted(set(keys))
        owner = uuid.uuid4().hex
        locks = self._db[LOCKS]
        deadline = time.monotonic() + wait_s
        delay = 0.005
        while wanted:
            now = time.time()
            try:
                with outages_translated():
                    locks.insert_many([{"_id": key, "owner": owner, "expires": now + lease_s} for key in wanted],
                                      ordered=False)
                break
            except (BulkWriteError, DuplicateKeyError) as exc:
                if not only_duplicate_keys(exc):
                    raise
                with outages_translated():
                    locks.delete_many({"_id": {"$in": wanted}, "owner": owner})  # give back what was taken
                    locks.delete_many({"_id": {"$in": wanted}, "expires": {"$lt": now}})  # dead holders' leases
                if time.monotonic() > deadline:
                    raise LockTimeout(", ".join(wanted)[:200]) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        try:
            yield
        finally:
            if wanted:
                with outages_translated():
                    locks.delete_many({"_id": {"$in": wanted}, "owner": owner})


@translating_outages
class ChangeCounter:
    """Counts writes to groups of resource types, so values derived from them can be cached per process and checked
    with one primary-key read: the registry (Organization, OrganizationAffiliation, ...) and the persons (Patient,
    for the person index). All groups are fields of one document, read together."""

    def __init__(self, db: Database, groups: dict[str, frozenset[str]], max_time_ms: int = 10_000) -> None:
        self._db = db
        self.groups = groups
        self.counted_types = frozenset(t for types in groups.values() for t in types)
        self._max_time_ms = max_time_ms
        self._snapshot = threading.local()

    def generation(self, group: str = REGISTRY) -> int:
        """How many writes the group's types have seen (any process); moves after each change is visible.
        Inside `snapshot()` the counters are read once, at first need, and kept until this thread writes."""
        doc = getattr(self._snapshot, "doc", None)
        if doc is None:
            doc = self._db[GENERATIONS].find_one({"_id": REGISTRY}, max_time_ms=self._max_time_ms) or {}
            if getattr(self._snapshot, "active", False):
                self._snapshot.doc = doc
        return int(doc.get(GROUP_FIELDS.get(group, group), 0))

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One reading of the counters for a whole request (one read instead of one per cached value)."""
        self._snapshot.active, self._snapshot.doc = True, None
        try:
            yield
        finally:
            self._snapshot.active, self._snapshot.doc = False, None

    def changed(self, resource_types: set[str]) -> None:
        moved = {GROUP_FIELDS.get(group, group): 1 for group, types in self.groups.items() if resource_types & types}
        if moved:
            self._db[GENERATIONS].update_one({"_id": REGISTRY}, {"$inc": moved}, upsert=True)
            self._snapshot.doc = None  # this request sees its own change
