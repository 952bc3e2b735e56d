"""Search criteria: parse a FHIR query string and plan it into a MongoDB filter (a pure function).

The planner emits a fixed set of shapes, each proven correct on MongoDB and on the embedded engine
by tests/test_store_contract.py: `{"_id": {"$in": [...]}}`, `{"sp.<code>": {"$in": [...]}}`, and
`$and` of those. Plain equality on an indexed array field is never emitted: the embedded engine
answers it wrongly. Values are always literal strings inside `$in`, never operators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from ...store.indexes import index_field
from ..errors import FhirError, Issue
from ..validation import is_valid_id
from .parameters import SearchParameterRegistry

MAX_VALUE_LENGTH = 512
MAX_VALUES = 100
RESULT_PARAMETERS = frozenset({"_count", "_format", "_pretty", "_summary", "_elements", "_total", "_sort"})


@dataclass(frozen=True)
class Criterion:
    """One parameter occurrence: its values are OR-ed; several criteria are AND-ed."""

    code: str
    values: tuple[str, ...]


def _split_values(raw: str) -> list[str]:
    """Split on unescaped commas (FHIR escapes `,`, `|`, `$` and `\\` with a backslash)."""
    values, current, escaped = [], [], False
    for ch in raw:
        if escaped:
            current.append(ch if ch in ",$\\" else "\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(ch)
    values.append("".join(current))
    return values


def parse_criteria(resource_type: str, query: str | list[tuple[str, str]],
                   registry: SearchParameterRegistry) -> list[Criterion]:
    """Parse and check every parameter; an unknown or malformed one is a 400 naming it."""
    pairs = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else query
    criteria: list[Criterion] = []
    issues: list[Issue] = []
    supported = sorted(["_id", *(c for c in registry.for_type(resource_type) if c != "_id")])
    for name, raw in pairs:
        if name in RESULT_PARAMETERS:
            continue
        code, _, modifier = name.partition(":")
        if code != "_id" and registry.get(resource_type, code) is None:
            issues.append(Issue("not-supported", f"Search parameter '{name}' is not supported for "
                                f"{resource_type}. Supported here: {', '.join(supported)}.", expression=(name,)))
            continue
        if modifier:
            issues.append(Issue("not-supported", f"Modifier ':{modifier}' on '{code}' is not supported yet.",
                                expression=(name,)))
            continue
        values = [v for v in _split_values(raw) if v != ""]
        if not values:
            issues.append(Issue("invalid", f"Search parameter '{name}' has no value.", expression=(name,)))
            continue
        if len(values) > MAX_VALUES or any(len(v) > MAX_VALUE_LENGTH for v in values):
            issues.append(Issue("too-long", f"Search parameter '{name}' has too many or too long values "
                                f"(at most {MAX_VALUES} values of {MAX_VALUE_LENGTH} characters).",
                                expression=(name,)))
            continue
        if code == "_id" and not all(is_valid_id(v) for v in values):
            issues.append(Issue("invalid", "'_id' values must be FHIR ids ([A-Za-z0-9-.], at most 64).",
                                expression=(name,)))
            continue
        criteria.append(Criterion(code=code, values=tuple(values)))
    if issues:
        raise FhirError(status=400, issues=issues)
    return criteria


def plan_filter(criteria: list[Criterion]) -> dict[str, Any]:
    """Turn parsed criteria into the MongoDB filter for live (not deleted) current versions."""
    clauses: list[dict[str, Any]] = [{"deleted": False}]
    for criterion in criteria:
        field = "_id" if criterion.code == "_id" else index_field(criterion.code)
        clauses.append({field: {"$in": [str(v) for v in criterion.values]}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def normalized_key(resource_type: str, criteria: list[Criterion]) -> str:
    """A canonical spelling of the criteria, used to serialise conditional writes on the same query."""
    parts = sorted(f"{c.code}={','.join(sorted(c.values))}" for c in criteria)
    return f"{resource_type}?{'&'.join(parts)}"
