"""search at type level (http://hl7.org/fhir/R4/http.html#search), over the indexed parameters.

Results in id order, paged with a cursor on the id so a page never repeats or skips a resource
while others are added. Unknown parameters are a 400 naming them, never silently ignored.
"""

from __future__ import annotations

from ...store.repository import StoredVersion
from ..bundles import decode_cursor, encode_cursor, new_bundle, page_url, raw_resource
from ..errors import bad_request
from ..search.criteria import parse_criteria, plan_filter
from .context import FhirContext, RequestInfo, Result
from .paging import page_size
from .writing import check_type

_UNSUPPORTED_RESULT_PARAMS = ("_summary", "_elements", "_total", "_sort")


def search(ctx: FhirContext, resource_type: str, request: RequestInfo) -> Result:
    check_type(resource_type)
    params = dict(request.query)
    for name in _UNSUPPORTED_RESULT_PARAMS:
        if name in params:
            raise bad_request(f"The result parameter '{name}' is not supported yet.", name)
    criteria_pairs = [(k, v) for k, v in request.query if k != "_page"]
    query = plan_filter(parse_criteria(resource_type, criteria_pairs, ctx.registry))
    count = page_size(params.get("_count"), ctx.settings)
    if params.get("_page"):
        after = decode_cursor(params["_page"], ("after",))["after"]
        query = {"$and": [query, {"_id": {"$gt": after}}]}
    found = ctx.repository.find_current(resource_type, query, count + 1) if count else []

    bundle = new_bundle("searchset", page_url(request.base_url, resource_type, list(request.query)))
    bundle["entry"] = [_match(request.base_url, v) for v in found[:count]]
    if len(found) > count:
        token = encode_cursor({"after": found[count - 1].id})
        bundle["link"].append({"relation": "next", "url": page_url(request.base_url, resource_type,
                                                                    [*criteria_pairs, ("_page", token)])})
    if not bundle["entry"]:
        del bundle["entry"]
    return Result(status=200, body=bundle)


def _match(base: str, version: StoredVersion) -> dict[str, object]:
    return {"fullUrl": f"{base}/{version.resource_type}/{version.id}", "resource": raw_resource(version),
            "search": {"mode": "match"}}
