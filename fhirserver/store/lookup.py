"""A lookup index for the embedded engine, which answers every array `$in` by a table scan.

One document per (resource type, search field, value, resource): `k` = "Type|field|value" (indexed, scalar),
queried with one equality per value: the engine uses its index for that (about 1 ms at 50,000 keys, where
the same search on the resources took 440 ms). The candidates then narrow the full planner filter with
`_id $in` (primary key). Keys are inserted before a version becomes current and never deleted, so the
candidates are always a superset of the matches: stale keys only cost a few extra ids that the full filter
removes, and a crash or an undone transaction cannot hide a match. MongoDB does not need this (its
multikey indexes work), so it is on for the embedded engine only (FHIRSERVER_LOOKUP_INDEX=auto).
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from .errors import only_duplicate_keys

LOOKUP = "_lookup"
META = "_lookup_meta"
LOOKUP_FIELDS = ("identifier", "patient", "subject", "code", "item")
DATE_FIELDS = ("date",)          # date parameters keyed by 30-day bucket (the hull of the resource's dates)
BUCKET_MS = 30 * 24 * 3600 * 1000
MAX_SPAN_BUCKETS = 24            # longer dates (open periods) get the key "long": a candidate for every range
MAX_CANDIDATES = 2000
# A date window's alternative is a scan of the whole collection, so far more candidates are still worth it
# (100,000 results: one month is ~2,500 DiagnosticReports; fetched by id 0.3 s, where the scan took 5 s).
MAX_DATE_CANDIDATES = 20_000
FORMAT_VERSION = 2


class LookupIndex:
    def __init__(self, db: Database, max_time_ms: int = 10_000) -> None:
        self._db = db
        self._max_time_ms = max_time_ms

    @staticmethod
    def keys(resource_type: str, resource_id: str, sp: dict[str, list[Any]]) -> list[dict[str, str]]:
        out = []
        for field in LOOKUP_FIELDS:
            for value in sp.get(field, []):
                if isinstance(value, str):
                    key = f"{resource_type}|{field}|{value}"
                    out.append({"_id": f"{key}|{resource_id}", "k": key})
        for field in DATE_FIELDS:
            ranges = [v for v in sp.get(field, []) if isinstance(v, dict) and "lo" in v and "hi" in v]
            if ranges:
                lo, hi = min(r["lo"] for r in ranges), max(r["hi"] for r in ranges)
                for bucket in date_buckets(lo, hi) or ["long"]:
                    key = f"{resource_type}|{field}|{bucket}"
                    out.append({"_id": f"{key}|{resource_id}", "k": key})
        return out

    def date_candidates(self, resource_type: str, field: str, lo: float, hi: float) -> set[str] | None:
        """Ids of resources whose dates (their hull) may meet [lo, hi); None when too many or too wide."""
        buckets = date_buckets(lo, hi)
        return self.candidates(resource_type, field, [*buckets, "long"], MAX_DATE_CANDIDATES) if buckets else None

    def add(self, documents: list[dict[str, str]], session: Any = None) -> None:
        """Insert keys, ignoring those present (idempotent: a key is its _id, and a duplicate is skipped)."""
        if not documents:
            return
        try:
            if session is None:
                self._db[LOOKUP].insert_many(documents, ordered=False)
            else:  # inside a MongoDB transaction a duplicate key would abort it: upsert instead
                self._db[LOOKUP].bulk_write([UpdateOne({"_id": d["_id"]}, {"$setOnInsert": {"k": d["k"]}}, upsert=True)
                                             for d in documents], ordered=False, session=session)
        except BulkWriteError as exc:  # keys of an earlier version, or of a concurrent writer: already there, fine
            if not only_duplicate_keys(exc):
                raise

    def candidates(self, resource_type: str, field: str, values: list[str],
                   limit: int = MAX_CANDIDATES) -> set[str] | None:
        """Ids of resources that may match any of the values; None when more than `limit` (not useful)."""
        found: set[str] = set()
        prefix = f"{resource_type}|{field}|"
        for value in values:
            cursor = self._db[LOOKUP].find({"k": prefix + value}, {"_id": 1}, max_time_ms=self._max_time_ms)
            for doc in cursor.limit(limit + 1):
                found.add(doc["_id"].rsplit("|", 1)[1])
                if len(found) > limit:
                    return None
        return found

    def ensure(self, resource_types: tuple[str, ...]) -> int:
        """Create the index; build the keys from the current resources when this format is not built yet."""
        self._db[LOOKUP].create_index([("k", ASCENDING)])
        if self._db[META].find_one({"_id": "format", "v": FORMAT_VERSION}):
            return 0
        built = 0
        for rtype in resource_types:
            batch: list[dict[str, str]] = []
            for doc in self._db[rtype].find({}, {"sp": 1}):
                batch += self.keys(rtype, doc["_id"], doc.get("sp") or {})
                if len(batch) >= 5000:
                    self.add(batch)
                    built += len(batch)
                    batch = []
            self.add(batch)
            built += len(batch)
        self._db[META].replace_one({"_id": "format"}, {"_id": "format", "v": FORMAT_VERSION}, upsert=True)
        return built


def date_buckets(lo: float, hi: float) -> list[str]:
    """The 30-day buckets [lo, hi) touches; [] when it spans more than MAX_SPAN_BUCKETS (or is empty)."""
    if not hi > lo:
        return []
    first, last = int(lo // BUCKET_MS), int((hi - 1) // BUCKET_MS)
    if last - first + 1 > MAX_SPAN_BUCKETS:
        return []
    return [f"b{n}" for n in range(first, last + 1)]
