"""history, instance and type level (http://hl7.org/fhir/R4/http.html#history).

Newest first; `_since` and `_count`; paging with a cursor on (lastUpdated, key), so pages stay
correct while new versions arrive (they land before the first page, never shift later ones).
"""

from __future__ import annotations

from ...store.records import HistoryCursor
from ..bundles import decode_cursor, encode_cursor, new_bundle, page_url, version_entry
from ..errors import FhirError, Issue, not_found
from ..validation import is_valid_id
from ..versioning import parse_search_instant
from .context import FhirContext, RequestInfo, Result
from .paging import page_size
from .writing import check_type


def _is_text(value: object) -> bool:
    return isinstance(value, str)


ALLOWED = frozenset({"_since", "_count", "_page", "_format", "_pretty"})


def history(ctx: FhirContext, resource_type: str, resource_id: str | None, request: RequestInfo) -> Result:
    check_type(resource_type)
    params = dict(request.query)
    unknown = [k for k, _ in request.query if k not in ALLOWED]
    if unknown:
        raise FhirError(400, [Issue("not-supported", f"History does not support the parameter '{k}'; supported: "
                                    f"_since, _count.", expression=(k,)) for k in unknown])
    ctx.access.permit("r" if resource_id is not None else "s", resource_type)
    if resource_id is not None and (
            not is_valid_id(resource_id) or not ctx.access.disclose(
                [v for v in [ctx.store.versions.read_current(resource_type, resource_id)] if v is not None])):
        raise not_found(f"{resource_type}/{resource_id[:64]} does not exist.")
    since = parse_search_instant(params["_since"], "_since") if "_since" in params else None
    count = page_size(params.get("_count"), ctx.settings)
    after = None
    if params.get("_page"):
        cursor = decode_cursor(params["_page"], {"ts": _is_text, "key": _is_text})
        after = HistoryCursor(ts=cursor["ts"], key=cursor["key"])
    versions = ctx.store.versions.history(resource_type, resource_id, since, after, count + 1) if count else []

    path = f"{resource_type}/{resource_id}/_history" if resource_id else f"{resource_type}/_history"
    keep = [(k, v) for k, v in request.query if k in ("_since", "_count", "_format", "_pretty")]
    bundle = new_bundle("history", page_url(request.base_url, path, list(request.query)))
    entries = [version_entry(request.base_url, v) for v in ctx.access.disclose(versions[:count])]
    if len(versions) > count:
        last = versions[count - 1]
        token = encode_cursor({"ts": last.last_updated, "key": f"{last.id}/{last.vid}"})
        bundle["link"].append({"relation": "next", "url": page_url(request.base_url, path, [*keep, ("_page", token)])})
    if resource_id is not None and after is None and since is None and len(versions) <= count:
        bundle["total"] = len(versions)  # one resource's versions, all on this page: the total costs nothing
    elif resource_id is not None:
        bundle["total"] = ctx.store.versions.count_history(resource_type, resource_id, since)
    if entries:
        bundle["entry"] = entries
    return Result(status=200, body=bundle)
