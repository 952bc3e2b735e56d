"""Search: current versions matching a filter from the query planner (fhir/search/planner.py).

The filter arrives in MongoDB's own query language and means exactly what it says. One thing is done about how
it runs (docs/decisions/0008): a filter with a top-level `$or` whose every branch has an indexed field to start
from is run as one query per branch, each on its index, and the results merged in sort order, the way MongoDB
itself plans an `$or`. The embedded engine would scan the whole collection for it.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database

from .filters import or_branches
from .outages import translating_outages
from .records import StoredVersion

INDEX_OPERATORS = frozenset({"$in", "$eq", "$gt", "$gte", "$lt", "$lte"})


@translating_outages
class SearchStore:
    def __init__(self, db: Database, max_time_ms: int = 10_000,
                 indexed: dict[str, frozenset[str]] | None = None) -> None:
        self._db = db
        self._max_time_ms = max_time_ms
        self._indexed = indexed or {}

    def search(self, resource_type: str, query: dict[str, Any], sort: list[tuple[str, int]],
               limit: int) -> list[tuple[StoredVersion, dict[str, Any]]]:
        """Matches in `sort` order with their sort keys (`so`), for keyset paging."""
        docs = self._find(resource_type, query, sort, limit)
        return [(StoredVersion.from_doc(resource_type, d), d.get("so") or {}) for d in docs]

    def find_current(self, resource_type: str, query: dict[str, Any], limit: int) -> list[StoredVersion]:
        """Current versions matching a filter, in id order."""
        return [version for version, _ in self.search(resource_type, query, [("_id", ASCENDING)], limit)]

    def count(self, resource_type: str, query: dict[str, Any]) -> int:
        """Number of matches (http://hl7.org/fhir/R4/search.html#total)."""
        branches = self._branches(resource_type, query)
        if branches is None:
            return int(self._db[resource_type].count_documents(query, maxTimeMS=self._max_time_ms))
        ids: set[Any] = set()
        for branch in branches:
            ids.update(d["_id"] for d in self._db[resource_type].find(branch, {"_id": 1},
                                                                      max_time_ms=self._max_time_ms))
        return len(ids)

    def index_values(self, resource_type: str, query: dict[str, Any], field: str, limit: int) -> list[Any]:
        """The stored index values `sp.<field>` of the matches (for _has and _include)."""
        values: list[Any] = []
        for doc in self._find(resource_type, query, [("_id", ASCENDING)], limit, {field: True}):
            node: Any = doc
            for part in field.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            values.extend(node or [])
        return values

    def index_rows(self, resource_type: str, query: dict[str, Any], field: str,
                   limit: int) -> list[tuple[str, list[Any]]]:
        """(id, stored index values `sp.<field>`) of each match, in id order."""
        rows = []
        for doc in self._find(resource_type, query, [("_id", ASCENDING)], limit, {field: True}):
            node: Any = doc
            for part in field.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            rows.append((str(doc["_id"]), list(node or [])))
        return rows

    def aggregate(self, resource_type: str, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """An aggregation over current versions (statistics); planner-style $match stages only."""
        return list(self._db[resource_type].aggregate(pipeline, maxTimeMS=self._max_time_ms))

    # -- the OR plan ----------------------------------------------------------------------------------------
    def _find(self, resource_type: str, query: dict[str, Any], sort: list[tuple[str, int]], limit: int,
              projection: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        collection = self._db[resource_type]
        if projection is not None:
            projection = {**projection, **{key: True for key, _ in sort}}
        branches = self._branches(resource_type, query)
        if branches is None:
            return list(collection.find(query, projection, max_time_ms=self._max_time_ms).sort(sort).limit(limit))
        merged: dict[Any, dict[str, Any]] = {}
        for branch in branches:
            for doc in collection.find(branch, projection, max_time_ms=self._max_time_ms).sort(sort).limit(limit):
                merged[doc["_id"]] = doc
        rows = list(merged.values())
        for key, direction in reversed(sort):  # stable sorts, last key first
            rows.sort(key=lambda d, k=key: _sort_value(d, k), reverse=direction < 0)
        return rows[:limit]

    def _branches(self, resource_type: str, query: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The OR branches of the filter when each can start from an index; None to run it as one query."""
        branches = or_branches(query)
        indexed = self._indexed.get(resource_type, frozenset())
        if branches is None or not all(_starts_on_index(b, indexed) for b in branches):
            return None
        return branches


def _starts_on_index(query: dict[str, Any], indexed: frozenset[str]) -> bool:
    return any((field == "_id" or field in indexed)
               and (not isinstance(condition, dict) or (bool(condition) and set(condition) <= INDEX_OPERATORS))
               for field, condition in query.items())


def _sort_value(doc: dict[str, Any], key: str) -> tuple[int, Any]:
    """MongoDB's order for the scalar sort keys we store: missing first, then numbers, then strings."""
    value: Any = doc
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return (0, 0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (1, value)
    return (2, str(value))
