"""`Patient/[id]/$everything` (http://hl7.org/fhir/R4/patient-operation-everything.html) for the person: every
record of the person (persons/index.py) and everything in those records' Patient compartments that the caller
may see, within `start`/`end` (the `date` of types that have one), `_since` (last updated) and `_type`.

Paged by key over at most EVERYTHING_LIMIT resources, in a fixed order (the records, then type and id): each
`next` link carries the key of the page's last entry, so writes between page requests (the audit events these
very requests cause, among them) never repeat or skip an entry.
"""

from __future__ import annotations

from typing import Any

from ..fhir.bundles import decode_cursor, encode_cursor, new_bundle, page_url, raw_resource
from ..fhir.errors import bad_request
from ..fhir.interactions.context import FhirContext
from ..fhir.interactions.search import restricted_filter
from ..fhir.resource_types import SUPPORTED_TYPES
from ..store.records import StoredVersion
from .index import PersonIndex

EVERYTHING_LIMIT = 1000


def everything(ctx: FhirContext, persons: PersonIndex, patient_id: str, inputs: dict[str, Any],
               base_url: str) -> dict[str, Any]:
    records = persons.records(ctx, f"Patient/{patient_id}")
    wanted = _types(ctx, inputs.get("_type"))
    count = inputs.get("_count")
    count = min(ctx.settings.max_count, ctx.settings.default_count if count is None else count)
    if count < 0:
        raise bad_request("_count must not be negative.", "_count")
    after = None if inputs.get("_page") is None else tuple(decode_cursor(inputs["_page"], {
        "k": lambda k: isinstance(k, list) and len(k) == 3 and isinstance(k[0], int) and not isinstance(k[0], bool)
        and all(isinstance(x, str) for x in k[1:])})["k"])
    found: list[StoredVersion] = []
    if "Patient" in wanted:
        ids = ",".join(r.split("/", 1)[1] for r in records)
        found += _visible(ctx, "Patient", [("_id", ids), *_dates(ctx, "Patient", inputs)])
    for rtype in sorted(wanted - {"Patient"}):
        seen: set[str] = set()
        for param in ctx.compartments.parameters("Patient", rtype):
            for version in _visible(ctx, rtype, [(param, ",".join(records)), *_dates(ctx, rtype, inputs)]):
                if version.id not in seen:
                    seen.add(version.id)
                    found.append(version)
        if len(found) >= EVERYTHING_LIMIT:
            break
    found = sorted(ctx.access.disclose(found[:EVERYTHING_LIMIT]), key=_key)
    remaining = [v for v in found if after is None or _key(v) > after]
    page = remaining[:count]
    args = [(k, str(v)) for k, v in inputs.items() if k != "_page" and v is not None]
    path = f"Patient/{patient_id}/$everything"
    bundle = new_bundle("searchset", page_url(base_url, path, args + ([("_page", inputs["_page"])]
                                                                       if inputs.get("_page") else [])))
    bundle["total"] = len(found)
    if page and len(remaining) > len(page):
        bundle["link"].append({"relation": "next", "url": page_url(base_url, path, [*args, (
            "_page", encode_cursor({"k": list(_key(page[-1]))}))])})
    if page:
        bundle["entry"] = [{"fullUrl": f"{base_url}/{v.resource_type}/{v.id}", "resource": raw_resource(v),
                            "search": {"mode": "match"}} for v in page]
    return bundle


def _key(version: StoredVersion) -> tuple[int, str, str]:
    """The paging order: the person's Patient records first, then by type and id."""
    return (0 if version.resource_type == "Patient" else 1, version.resource_type, version.id)


def _types(ctx: FhirContext, requested: str | None) -> set[str]:
    members = {t for t in SUPPORTED_TYPES if t == "Patient" or ctx.compartments.parameters("Patient", t)}
    if not requested:
        return members
    asked = {t.strip() for t in requested.split(",") if t.strip()}
    unknown = sorted(asked - members)
    if unknown:
        raise bad_request(f"_type {', '.join(unknown)[:100]} is not a type of the Patient compartment here.", "_type")
    return asked


def _dates(ctx: FhirContext, rtype: str, inputs: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = [("_lastUpdated", f"ge{inputs['_since']}")] if inputs.get("_since") else []
    if ctx.registry.get(rtype, "date") is not None and rtype != "Patient":
        pairs += [("date", f"ge{inputs['start']}")] if inputs.get("start") else []
        pairs += [("date", f"le{inputs['end']}")] if inputs.get("end") else []
    return pairs


def _visible(ctx: FhirContext, rtype: str, pairs: list[tuple[str, str]]) -> list[StoredVersion]:
    query = ctx.parser.parse(rtype, pairs, criteria_only=True)
    restricted = restricted_filter(ctx, rtype, query.criteria)
    return ctx.store.search.find_current(rtype, restricted, EVERYTHING_LIMIT)
