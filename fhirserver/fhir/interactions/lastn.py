"""Observation $lastn (R4 observation-operation-lastn): the most recent `max` Observations of each code for a
patient, newest first, as a searchset. The criteria are the ordinary Observation search parameters (patient or
subject required, category, code, date...), so access, consent and references work as in any search."""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import bad_request
from .context import FhirContext, RequestInfo
from .search import search

MAX_CANDIDATES = 1000  # the newest this many matches are grouped; older ones of a rare code are not looked at


def lastn(ctx: FhirContext, base_url: str, criteria: list[tuple[str, str]], most: int) -> dict[str, Any]:
    if not any(k.split(":")[0].split(".")[0] in ("patient", "subject") for k, _ in criteria):
        raise bad_request("$lastn needs the patient (patient= or subject=).", "patient")
    if most < 1:
        raise bad_request("max is a positive integer.", "max")
    query = [*criteria, ("_sort", "-date"), ("_count", str(MAX_CANDIDATES))]
    bundle = search(ctx, "Observation", RequestInfo(base_url=base_url, query=tuple(query))).body or {}
    kept: dict[str, int] = {}
    entries = []
    for entry in bundle.get("entry", []):
        if entry.get("search", {}).get("mode") != "match":
            entries.append(entry)  # includes and the outcome of ignored parameters stay
            continue
        resource = entry["resource"]
        if not isinstance(resource, dict):  # a stored resource passed through as its JSON text (orjson.Fragment)
            resource = orjson.loads(orjson.dumps(resource))
        key = _code_key(resource.get("code") or {})
        if kept.get(key, 0) < most:
            kept[key] = kept.get(key, 0) + 1
            entries.append(entry)
    bundle["link"] = [link for link in bundle.get("link", []) if link.get("relation") == "self"]
    bundle["total"] = sum(kept.values())  # what this answer holds: the newest of each code
    if entries:
        bundle["entry"] = entries
    else:
        bundle.pop("entry", None)
    return bundle


def _code_key(code: dict[str, Any]) -> str:
    """Observations are grouped by their first coding (system|code), else their text."""
    for coding in code.get("coding") or []:
        if isinstance(coding, dict) and coding.get("code"):
            return f"{coding.get('system', '')}|{coding['code']}"
    return f"text:{code.get('text', '')}"
