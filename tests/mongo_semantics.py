"""MongoDB query semantics in Python, for exactly the operators the planner emits: the oracle of
tests/test_store_contract.py, which checks that the engine (and the store's OR plans) answer every planner
shape the way MongoDB's documented semantics say."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _get(doc: Any, path: str) -> Any:
    for part in path.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


def _compare(value: Any, op: str, arg: Any) -> bool:
    if value is None or isinstance(value, dict | list) or isinstance(value, bool) != isinstance(arg, bool):
        return False
    if isinstance(value, str) != isinstance(arg, str):
        return False
    return {"$lt": value < arg, "$lte": value <= arg, "$gt": value > arg, "$gte": value >= arg}[op]


def _element_matches(element: Any, condition: Any) -> bool:
    if isinstance(condition, dict) and any(k.startswith("$") for k in condition):
        return all(_operator(element, op, arg) for op, arg in condition.items())
    if isinstance(condition, dict):
        return isinstance(element, dict) and matches(element, condition)
    return element == condition


def _operator(value: Any, op: str, arg: Any) -> bool:
    if op == "$regex":
        return isinstance(value, str) and _regex(arg).search(value) is not None
    return _compare(value, op, arg)


def _field_matches(value: Any, condition: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if not isinstance(condition, dict) or not any(k.startswith("$") for k in condition):
        return condition in values
    for op, arg in condition.items():
        if op == "$in" and not any(v in arg for v in values):
            return False
        if op == "$nin" and any(v in arg for v in values):
            return False
        if op == "$exists" and (value is not None) != arg:
            return False
        if op == "$elemMatch" and not (isinstance(value, list) and any(_element_matches(e, arg) for e in value)):
            return False
        if op == "$all" and not all(_field_matches(value, a) if isinstance(a, dict) and "$elemMatch" in a
                                    else a in values for a in arg):
            return False
        if op in ("$lt", "$lte", "$gt", "$gte") and not any(_compare(v, op, arg) for v in values):
            return False
        if op == "$regex" and not any(isinstance(v, str) and _regex(arg).search(v) for v in values):
            return False
    return True


def matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    for key, cond in query.items():
        if key == "$and":
            ok = all(matches(doc, q) for q in cond)
        elif key == "$or":
            ok = any(matches(doc, q) for q in cond)
        elif key == "$nor":
            ok = not any(matches(doc, q) for q in cond)
        else:
            ok = _field_matches(_get(doc, key), cond)
        if not ok:
            return False
    return True
