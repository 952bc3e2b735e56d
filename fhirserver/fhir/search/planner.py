"""Planning parsed criteria into a MongoDB filter: a pure function over the index fields.

The filter is in MongoDB's implicit form (`all_of`): one document whose keys are AND-ed, with an explicit `$and`
only for clauses whose key repeats. MongoDB flattens `$and` itself, but the embedded engine (SecantusDB) plans an
index only for a filter whose top-level keys are all fields (docs/decisions/0008), so the form matters there.
Shapes emitted per criterion, each pinned by tests/test_store_contract.py and tests/test_criteria.py:
  {f: {"$in": [...]}}              {f: {"$nin": [...]}}        {f: {"$exists": bool}}
  {f: {"$elemMatch": {"$regex": "^escaped"}}}                  (string prefix / contains)
  {f: {"$elemMatch": {k: {range}, k2: scalar}}}                (date, number, quantity, composite)
  {f: {"$all": [{"$elemMatch": ...}, ...]}}                    (two range criteria on one field)
  $or / $nor of the above; and, for a bounded date window, {f__b: {"$in": [30-day buckets]}}: implied by the
  date criteria (a resource's buckets cover the hull of its dates), it lets an index narrow a date range.
User values only ever appear as literals inside $in/$nin, as range bounds, or regex-escaped.
Chained and reverse-chained criteria must be resolved to concrete values before planning.
"""

from __future__ import annotations

import re
import time
from datetime import timezone
from typing import Any

from ...store.filters import all_of
from ...store.indexes import BUCKET_SUFFIX, index_field
from ..errors import FhirError
from ..local_base import local_bases
from .indexer import BUCKETED_DATES
from .query import Criterion
from .values import (
    LONG_BUCKET,
    MAX_MS,
    MIN_MS,
    ValueFormatError,
    date_buckets,
    date_range,
    normalize_text,
    number_range,
    split_prefix,
)

NOTHING: dict[str, Any] = {"_id": {"$in": []}}
LIVE: dict[str, Any] = {"deleted": False}


class Planner:
    """Criteria -> filter. `base_url` lets absolute references to this server match local ones."""

    def __init__(self, zone: timezone, base_url: str | None = None, bucketed: frozenset[str] = BUCKETED_DATES) -> None:
        self.zone = zone
        self.base_url = base_url
        self.bucketed = bucketed

    def plan(self, criteria: list[Criterion]) -> dict[str, Any]:
        """Live (not deleted) current versions matching every criterion."""
        return all_of(LIVE, *[self.clause(c) for c in criteria], *self._bucket_clauses(criteria))

    def _bucket_clauses(self, criteria: list[Criterion]) -> list[dict[str, Any]]:
        clauses = []
        for code, (lo, hi) in self.date_windows(criteria).items():
            buckets = date_buckets(lo, hi)
            if buckets:
                clauses.append({index_field(code) + BUCKET_SUFFIX: {"$in": [*buckets, LONG_BUCKET]}})
        return clauses

    def date_windows(self, criteria: list[Criterion]) -> dict[str, tuple[float, float]]:
        """Per bucketed date parameter, an interval every match meets: the intersection of its criteria's
        intervals (each criterion's values are OR-ed: their hull). Sound because a resource's buckets cover the
        hull of its dates, and intervals that meet pairwise meet together (Helly, in one dimension); criteria
        without an interval (ap, ne, modifiers) are left to their clauses alone."""
        windows: dict[str, tuple[float, float]] = {}
        for c in criteria:
            if c.code not in self.bucketed or c.type != "date" or c.modifier or c.chain or c.has is not None:
                continue
            intervals = [self.date_interval(v) for v in c.values]
            if not intervals or any(i is None for i in intervals):
                continue
            lo = min(i[0] for i in intervals if i)
            hi = max(i[1] for i in intervals if i)
            current = windows.get(c.code, (lo, hi))
            windows[c.code] = (max(current[0], lo), min(current[1], hi))
        return {code: w for code, w in windows.items() if w[1] > w[0]}

    def clause(self, c: Criterion) -> dict[str, Any]:
        if c.chain or c.has:
            raise AssertionError("chained criteria must be resolved before planning")
        field = "_id" if c.code == "_id" else index_field(c.code)
        if c.modifier == "missing":
            return {field: {"$exists": c.values[0] == "false"}}
        try:
            return self._typed(c, field)
        except ValueFormatError as exc:
            raise FhirError.of(400, "invalid", f"Search parameter '{c.name}': {exc}.", c.name) from None

    def _typed(self, c: Criterion, field: str) -> dict[str, Any]:
        if c.code == "_id":
            return {field: {"$nin" if c.modifier == "not" else "$in": list(c.values)}}
        kind = c.type
        if kind == "token":
            return self._token(c, field)
        if kind == "reference":
            return self._reference(c, field)
        if kind == "string":
            if c.modifier == "exact":
                return {f"{field}__exact": {"$in": list(c.values)}}
            anchor = "" if c.modifier == "contains" else "^"
            return _any([{field: {"$elemMatch": {"$regex": anchor + re.escape(normalize_text(v))}}} for v in c.values])
        if kind == "uri":
            if c.modifier == "below":
                return _any([{field: {"$elemMatch": {"$regex": "^" + re.escape(v)}}} for v in c.values])
            return {field: {"$in": list(c.values)}}
        if kind == "date":
            return _any([self._date(field, "", v) for v in c.values])
        if kind == "number":
            return _any([self._number(field, "v", v) for v in c.values])
        if kind == "quantity":
            return _any([self._quantity(field, "", v) for v in c.values])
        if kind == "composite":
            return _any([self._composite(c, field, v) for v in c.values])
        raise FhirError.of(400, "not-supported", f"Parameter type {kind} is not supported.", c.name)

    # -- token and reference ------------------------------------------------------------------------
    def _token(self, c: Criterion, field: str) -> dict[str, Any]:
        if c.modifier in ("in", "not-in", "below", "above"):  # expanded by the terminology before planning
            raise FhirError.of(400, "not-supported", f"':{c.modifier}' is not available here ('{c.name}').", c.name)
        if c.modifier == "text":
            return _any([{f"{field}__text": {"$elemMatch": {"$regex": "^" + re.escape(normalize_text(v))}}}
                         for v in c.values])
        if c.modifier == "of-type":
            return {f"{field}__type": {"$in": list(c.values)}}
        exact = [v for v in c.values if not v.endswith("|") or v == "|"]
        systems = [v for v in c.values if v.endswith("|") and v != "|"]  # "system|": any code in that system
        clauses: list[dict[str, Any]] = []
        if exact:
            clauses.append({field: {"$in": exact}})
        clauses += [{field: {"$elemMatch": {"$regex": "^" + re.escape(s)}}} for s in systems]
        matched = _any(clauses)
        if c.modifier == "not":  # no value in the list, or no value at all: $nin says both, in one field clause
            return {field: {"$nin": exact}} if not systems else {"$nor": [matched]}
        return matched

    def _reference(self, c: Criterion, field: str) -> dict[str, Any]:
        if c.modifier == "identifier":
            return {f"{field}__identifier": {"$in": list(c.values)}}
        values = []
        for value in c.values:
            for base in local_bases(self.base_url):
                if value.startswith(base + "/"):
                    value = value[len(base) + 1:]
                    break
            if c.modifier and "/" not in value:
                value = f"{c.modifier}/{value}"
            values.append(value)
        return {field: {"$in": values}}

    # -- ranges ----------------------------------------------------------------------------------------
    def date_interval(self, raw: str) -> tuple[float, float] | None:
        """An interval every resource date matching `raw` meets (the forms of _date below); None when there is
        none to give (ap, ne, or an unreadable value)."""
        prefix, value = split_prefix(raw)
        try:
            r = date_range(value, self.zone)
        except ValueFormatError:
            return None
        a, b = r.lo, r.hi
        return {"eq": (a, b), "ge": (a, MAX_MS), "gt": (b, MAX_MS), "sa": (b, MAX_MS),
                "le": (MIN_MS, b), "lt": (MIN_MS, a), "eb": (MIN_MS, a)}.get(prefix)

    def _date(self, field: str, key: str, raw: str) -> dict[str, Any]:
        prefix, value = split_prefix(raw)
        r = date_range(value, self.zone)
        a, b = r.lo, r.hi
        lo, hi = f"{key}lo", f"{key}hi"
        if prefix == "ap":
            spread = abs(time.time() * 1000 - a) * 0.1
            return _elem(field, {lo: {"$lt": b + spread}, hi: {"$gt": a - spread}})
        within = {lo: {"$gte": a}, hi: {"$lte": b}}
        forms = {
            "eq": [within],
            "gt": [{hi: {"$gt": b}}],
            "lt": [{lo: {"$lt": a}}],
            "ge": [{hi: {"$gt": b}}, within],
            "le": [{lo: {"$lt": a}}, within],
            "sa": [{lo: {"$gte": b}}],
            "eb": [{hi: {"$lte": a}}],
        }
        if prefix == "ne":
            return {"$and": [{field: {"$exists": True}}, {"$nor": [_elem(field, within)]}]}
        return _any([_elem(field, f) for f in forms[prefix]])

    def _number_condition(self, raw: str) -> tuple[str, dict[str, Any]]:
        prefix, value = split_prefix(raw)
        number, r = number_range(value)
        conditions = {
            "eq": {"$gte": r.lo, "$lt": r.hi}, "ne": {"$gte": r.lo, "$lt": r.hi},
            "gt": {"$gt": number}, "lt": {"$lt": number}, "ge": {"$gte": number}, "le": {"$lte": number},
            "sa": {"$gt": number}, "eb": {"$lt": number},
            "ap": {"$gte": number - abs(number) * 0.1, "$lte": number + abs(number) * 0.1},
        }
        return prefix, conditions[prefix]

    def _number(self, field: str, key: str, raw: str) -> dict[str, Any]:
        prefix, condition = self._number_condition(raw)
        match = _elem(field, {key: condition})
        return {"$and": [{field: {"$exists": True}}, {"$nor": [match]}]} if prefix == "ne" else match

    def _quantity(self, field: str, key: str, raw: str) -> dict[str, Any]:
        parts = raw.split("|")
        if len(parts) not in (1, 3):
            raise ValueFormatError("a quantity is written [prefix]number, or [prefix]number|system|code")
        prefix, condition = self._number_condition(parts[0])
        system, code = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
        base = {f"{key}v": condition}
        if system:
            base[f"{key}s"] = system
        options = [base] if not code else (
            [{**base, f"{key}c": code}] if system else [{**base, f"{key}c": code}, {**base, f"{key}u": code}])
        match = _any([_elem(field, o) for o in options])
        return {"$and": [{field: {"$exists": True}}, {"$nor": [match]}]} if prefix == "ne" else match

    def _composite(self, c: Criterion, field: str, raw: str) -> dict[str, Any]:
        parts = re.split(r"(?<!\\)\$", raw)
        if len(parts) != 2:
            raise ValueFormatError("a composite value is written first$second")
        token, second = parts[0].replace("\\$", "$"), parts[1].replace("\\$", "$")
        kind = c.component_types[1] if len(c.component_types) == 2 else None
        if kind is None:
            raise ValueFormatError("this composite parameter has no two-part definition")
        first = {"k0": token}
        if kind == "quantity":
            quantity = self._quantity(field, "k1_", second)
            return _with(quantity, first)
        if kind == "date":
            return _with(self._date(field, "k1_", second), first)
        if kind == "string":
            return _elem(field, {**first, "k1": {"$regex": "^" + re.escape(normalize_text(second))}})
        return _elem(field, {**first, "k1": second})


def _elem(field: str, condition: dict[str, Any]) -> dict[str, Any]:
    return {field: {"$elemMatch": condition}}


def _any(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    if not clauses:
        return NOTHING
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def _with(match: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Add equality conditions inside every $elemMatch of a planned clause."""
    if "$or" in match:
        return {"$or": [_with(m, extra) for m in match["$or"]]}
    if "$and" in match:
        return {"$and": [_with(m, extra) if "$nor" not in m and "$exists" not in next(iter(m.values()), {})
                         else m for m in match["$and"]]}
    if "$nor" in match:
        return {"$nor": [_with(m, extra) for m in match["$nor"]]}
    (field, condition), = match.items()
    return {field: {"$elemMatch": {**extra, **condition["$elemMatch"]}}}
