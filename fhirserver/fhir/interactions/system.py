"""System-level search and history (R4 http.html#search, http.html#history): `GET [base]?_type=…` and
`GET [base]/_history`, over every type the caller may search.

- **Search** runs the type searches one after the other, in `_type` order (else every type served), filling one
  page from as many types as it takes. The paging token names the type and that type's own keyset token, so pages
  stay correct while resources are added, as they do for a type search. Parameters are strict: a parameter one of
  the types does not know would otherwise be ignored there and widen the answer.
- **History** merges the types' histories newest first, ordered by (lastUpdated descending, type, version key
  descending); the paging token is that triple, so a page never repeats or skips a version.
Types the caller's scopes do not allow to search are left out; what it may not see is filtered as everywhere.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from ...store.records import HistoryCursor, StoredVersion
from ...store.timestamps import instant_to_ms
from ..bundles import decode_cursor, encode_cursor, new_bundle, page_url, version_entry
from ..errors import FhirError, Issue, bad_request
from ..resource_types import SUPPORTED_TYPES, is_supported
from ..versioning import parse_search_instant
from .context import FhirContext, RequestInfo, Result
from .history import ALLOWED as HISTORY_PARAMETERS
from .paging import page_size
from .search import search

HIGHEST = "\U0010ffff"


def _searchable(ctx: FhirContext, types: list[str]) -> list[str]:
    allowed = []
    for rtype in types:
        try:
            ctx.access.permit("s", rtype)
        except FhirError:
            continue  # not the caller's to search: left out, as the CapabilityStatement of its token would be
        allowed.append(rtype)
    return allowed


def _types(ctx: FhirContext, request: RequestInfo) -> list[str]:
    asked = [t.strip() for k, v in request.query if k == "_type" for t in v.split(",") if t.strip()]
    unknown = [t for t in asked if not is_supported(t)]
    if unknown:
        raise bad_request(f"_type names {', '.join(unknown)[:120]}, which this server does not serve (see "
                          f"/fhir/metadata).", "_type")
    return _searchable(ctx, list(dict.fromkeys(asked)) if asked else sorted(SUPPORTED_TYPES))


def search_system(ctx: FhirContext, request: RequestInfo) -> Result:
    types = _types(ctx, request)
    params = [(k, v) for k, v in request.query if k not in ("_type", "_page", "_count")]
    count = page_size(dict(request.query).get("_count"), ctx.settings)
    start, inner = 0, ""
    token = dict(request.query).get("_page")
    if token:
        cursor = decode_cursor(token, {"t": lambda v: isinstance(v, int) and 0 <= v < len(types),
                                       "p": lambda v: isinstance(v, str)})
        start, inner = cursor["t"], cursor["p"]
    bundle = new_bundle("searchset", _url(request.base_url, list(request.query)))
    if any(k == "_total" and v in ("accurate", "estimate") for k, v in params) or count == 0:
        bundle["total"] = sum(int(_search(ctx, rtype, request, [*params, ("_count", "0")]).get("total", 0))
                              for rtype in types)
    matches: list[dict[str, Any]] = []
    included: list[dict[str, Any]] = []
    outcomes: dict[str, dict[str, Any]] = {}
    following: tuple[int, str] | None = None
    for index in range(start, len(types) if count else start):
        remaining = count - len(matches)
        if remaining <= 0:
            following = (index, "")  # the page is full: the next one starts with this type
            break
        page = [("_page", inner)] if index == start and inner else []
        part = _search(ctx, types[index], request, [*params, ("_count", str(remaining)), *page])
        for entry in part.get("entry", []):
            mode = entry.get("search", {}).get("mode")
            if mode == "outcome":
                outcomes.setdefault(json.dumps(entry["resource"].get("issue"), sort_keys=True), entry)
            else:
                (matches if mode == "match" else included).append(entry)
        after = next((link["url"] for link in part.get("link", []) if link["relation"] == "next"), None)
        if after is not None:
            following = (index, parse_qs(urlsplit(after).query).get("_page", [""])[0])
            break
    if following is not None:
        kept = [(k, v) for k, v in request.query if k != "_page"]
        bundle["link"].append({"relation": "next", "url": _url(request.base_url, [
            *kept, ("_page", encode_cursor({"t": following[0], "p": following[1]}))])})
    entries = [*matches, *included, *outcomes.values()]
    if entries:
        bundle["entry"] = entries
    return Result(status=200, body=bundle)


def _search(ctx: FhirContext, rtype: str, request: RequestInfo, query: list[tuple[str, str]]) -> dict[str, Any]:
    """One type's search, strict (an unknown parameter is an error, never ignored for one type)."""
    answer = search(ctx, rtype, RequestInfo(base_url=request.base_url, query=tuple(query), lenient=False))
    return answer.body or {}


def _url(base: str, params: list[tuple[str, str]]) -> str:
    return base + (f"?{urlencode(params)}" if params else "")


def history_system(ctx: FhirContext, request: RequestInfo) -> Result:
    unknown = [k for k, _ in request.query if k not in HISTORY_PARAMETERS]
    if unknown:
        raise FhirError(400, [Issue("not-supported", f"History does not support the parameter '{k}'; supported: "
                                    f"_since, _count.", expression=(k,)) for k in unknown])
    params = dict(request.query)
    since = parse_search_instant(params["_since"], "_since") if "_since" in params else None
    count = page_size(params.get("_count"), ctx.settings)
    cursor = None
    if params.get("_page"):
        text = lambda v: isinstance(v, str)  # noqa: E731
        cursor = decode_cursor(params["_page"], {"ts": text, "t": lambda v: text(v) and is_supported(v), "key": text})
    candidates: list[StoredVersion] = []
    for rtype in _searchable(ctx, sorted(SUPPORTED_TYPES)) if count else []:
        after = None
        if cursor is not None:  # same instant: types after the cursor's come next, those before came already
            key = cursor["key"] if rtype == cursor["t"] else (HIGHEST if rtype > cursor["t"] else "")
            after = HistoryCursor(ts=cursor["ts"], key=key)
        candidates += ctx.store.versions.history(rtype, None, since, after, count + 1)
    candidates.sort(key=_key, reverse=True)
    candidates.sort(key=lambda v: v.resource_type)
    candidates.sort(key=lambda v: instant_to_ms(v.last_updated), reverse=True)
    bundle = new_bundle("history", page_url(request.base_url, "_history", list(request.query)))
    page = candidates[:count]
    entries = [version_entry(request.base_url, v) for v in ctx.access.disclose(page)]
    if len(candidates) > count:
        last = page[-1]
        keep = [(k, v) for k, v in request.query if k in ("_since", "_count", "_format", "_pretty")]
        token = encode_cursor({"ts": last.last_updated, "t": last.resource_type, "key": _key(last)})
        bundle["link"].append({"relation": "next", "url": page_url(request.base_url, "_history",
                                                                   [*keep, ("_page", token)])})
    if entries:
        bundle["entry"] = entries
    return Result(status=200, body=bundle)


def _key(version: StoredVersion) -> str:
    """The version's key in its history collection (the store orders same-instant versions by it)."""
    return f"{version.id}/{version.vid}"
