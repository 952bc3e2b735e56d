"""MongoDB filter algebra, pure functions: the implicit form of a conjunction, and its OR branches.

Why the form matters (docs/decisions/0008): MongoDB plans any equivalent filter with its indexes, but the
embedded engine (SecantusDB) uses an index only when every top-level key of the filter is a field, and plans a
top-level `$or`/`$and`/`$nor` as a collection scan. Both functions keep the meaning of a filter exactly.
"""

from __future__ import annotations

from typing import Any

MAX_BRANCHES = 16


def all_of(*filters: dict[str, Any]) -> dict[str, Any]:
    """The conjunction of filters in implicit form: nested `$and`s flattened, one key per field, `_id` first.
    A key that repeats keeps its first clause in place; two `$elemMatch` conditions on one field become one
    `$all` (each still needs its own element), and anything else that repeats goes into a residual `$and`."""
    merged: dict[str, Any] = {}
    residual: list[dict[str, Any]] = []

    def add(node: dict[str, Any]) -> None:
        for key, condition in node.items():
            if key == "$and":
                for inner in condition:
                    add(inner)
            elif key not in merged:
                merged[key] = condition
            elif merged[key] == condition:
                continue
            elif _element_conditions(merged[key]) and _element_conditions(condition):
                merged[key] = {"$all": _element_conditions(merged[key]) + _element_conditions(condition)}
            else:
                residual.append({key: condition})

    for node in filters:
        add(node)
    if residual:
        merged["$and"] = residual
    if "_id" in merged:
        merged = {"_id": merged.pop("_id"), **merged}
    return merged


def _element_conditions(condition: Any) -> list[dict[str, Any]]:
    """A field condition as a list of `$elemMatch` documents over element fields ([] when it is not one)."""
    if not isinstance(condition, dict) or len(condition) != 1:
        return []
    (op, arg), = condition.items()
    if op == "$elemMatch" and isinstance(arg, dict) and arg and not any(k.startswith("$") for k in arg):
        return [condition]
    if op == "$all" and isinstance(arg, list) and all(_element_conditions(a) == [a] for a in arg):
        return list(arg)
    return []


def or_branches(query: dict[str, Any], limit: int = MAX_BRANCHES) -> list[dict[str, Any]] | None:
    """The filter as a disjunction of conjunctions without a top-level `$or` (a top-level `$or`, also one inside
    the residual `$and`, distributed over the rest); None when it has no `$or` to split or would need more than
    `limit` branches. Every document matching the filter matches some branch, and only those do."""
    branches = [query]
    while True:
        changed = False
        next_round: list[dict[str, Any]] = []
        for branch in branches:
            split = _split_one(branch)
            if split is None:
                next_round.append(branch)
            else:
                next_round += split
                changed = True
            if len(next_round) > limit:
                return None
        if not changed:
            return branches if len(branches) > 1 else None
        branches = next_round


def _split_one(query: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Distribute the first `$or` found at the top level (or directly inside the top-level `$and`)."""
    if isinstance(query.get("$or"), list):
        rest = {k: v for k, v in query.items() if k != "$or"}
        return [all_of(rest, alternative) for alternative in query["$or"]]
    residual = query.get("$and")
    if isinstance(residual, list):
        for position, clause in enumerate(residual):
            if set(clause) == {"$or"} and isinstance(clause["$or"], list):
                rest = {k: v for k, v in query.items() if k != "$and"}
                others = [c for i, c in enumerate(residual) if i != position]
                return [all_of(rest, *others, alternative) for alternative in clause["$or"]]
    return None
