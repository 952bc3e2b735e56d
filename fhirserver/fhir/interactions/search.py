"""search: type level, POST _search and Patient compartment (http://hl7.org/fhir/R4/search.html).

Parse (search/query.py) -> resolve chains and _has into concrete values -> plan (search/planner.py)
-> keyset page in the requested order -> includes -> Bundle. Paging links carry the sort keys of the
page's edge rows, so a page never repeats or skips a resource while others are added or removed.
"""

from __future__ import annotations

from typing import Any

from ...store.filters import all_of
from ...store.indexes import field_name, index_field
from ...store.records import StoredVersion
from ..bundles import decode_cursor, encode_cursor, new_bundle, page_url, raw_resource
from ..errors import FhirError, bad_request, operation_outcome
from ..json_format import loads
from ..resource_types import SUPPORTED_TYPES
from ..search.indexer import sort_default
from ..search.parameters import SearchParameter
from ..search.planner import LIVE
from ..search.query import Criterion, Include, SearchQuery
from ..validation import is_valid_id
from .code_sets import TERMINOLOGY_MODIFIERS, expanded
from .context import FhirContext, RequestInfo, Result
from .writing import check_type

CHAIN_LIMIT = 1000      # ids a chained or _has sub-query may produce before we ask for a narrower query
INCLUDE_LIMIT = 1000    # resources _include/_revinclude may add to one page
ITERATE_ROUNDS = 3


def search(ctx: FhirContext, resource_type: str, request: RequestInfo,
           compartment: tuple[str, str] | None = None) -> Result:
    check_type(resource_type)
    ctx.access.permit("s", resource_type)
    query = ctx.parser.parse(resource_type, list(request.query), lenient=request.lenient)
    query_filter = restricted_filter(ctx, resource_type, query.criteria)
    path = resource_type
    if compartment is not None:
        query_filter, path = _in_compartment(ctx, resource_type, compartment, query_filter)
    count = min(query.count if query.count is not None else ctx.settings.default_count, ctx.settings.max_count)

    bundle = new_bundle("searchset", page_url(request.base_url, path, list(request.query)))
    if query.summary == "count" or query.count == 0:  # _count=0 asks how many, as _summary=count does
        bundle["total"] = ctx.store.search.count(resource_type, query_filter)
        if query.warnings:
            bundle["entry"] = [{"resource": operation_outcome(query.warnings), "search": {"mode": "outcome"}}]
        return Result(status=200, body=bundle)
    if query.total in ("accurate", "estimate"):
        bundle["total"] = ctx.store.search.count(resource_type, query_filter)

    sort = [(("_id" if code == "_id" else f"so.{field_name(code)}"), direction, kind)
            for code, kind, direction in query.sort]
    if not any(f == "_id" for f, _, _ in sort):
        sort.append(("_id", 1, "token"))
    rows, before, after = _page(ctx, resource_type, query_filter, sort, count, query.page)

    criteria_pairs = [(k, v) for k, v in request.query if k != "_page"]
    for relation, token in (("next", after), ("previous", before)):
        if token:
            bundle["link"].append({"relation": relation, "url": page_url(request.base_url, path,
                                                                          [*criteria_pairs, ("_page", token)])})
    matches = ctx.access.disclose([version for version, _ in rows])
    entries = [_entry(ctx, request.base_url, v, "match", query) for v in matches]
    entries += [_entry(ctx, request.base_url, v, "include", query)
                for v in ctx.access.disclose(_includes(ctx, matches, query))]
    if query.warnings:
        entries.append({"resource": operation_outcome(query.warnings), "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return Result(status=200, body=bundle)


def matching_filter(ctx: FhirContext, resource_type: str, criteria: list[Criterion]) -> dict[str, Any]:
    """The MongoDB filter for criteria, after resolving chains and _has (also used by conditional writes)."""
    return ctx.planner.plan(_resolve(ctx, resource_type, criteria))


def restricted_filter(ctx: FhirContext, resource_type: str, criteria: list[Criterion]) -> dict[str, Any]:
    """The filter of criteria, restricted to what the caller may see (searches, conditional writes, $everything)."""
    resolved = _resolve(ctx, resource_type, criteria)
    return visible_filter(ctx, resource_type, ctx.planner.plan(resolved), resolved)


def visible_filter(ctx: FhirContext, resource_type: str, query_filter: dict[str, Any],
                   criteria: list[Criterion] | None = None) -> dict[str, Any]:
    """The filter restricted to what the caller may see (security/access.py), so totals, chains and _has
    never reveal resources the caller cannot read. The resolved criteria let the policy widen what a query about
    named patients may see (another hospital's Consent about a person the caller also treats)."""
    restriction = ctx.access.search_filter(resource_type, criteria or [])
    return query_filter if restriction is None else all_of(query_filter, restriction)


def _resolve(ctx: FhirContext, resource_type: str, criteria: list[Criterion]) -> list[Criterion]:
    resolved = []
    for c in criteria:
        if c.has is not None:
            source, ref_code = c.has
            inner = visible_filter(ctx, source, matching_filter(ctx, source, list(c.chain)))
            values = ctx.store.search.index_values(source, inner, index_field(ref_code), CHAIN_LIMIT * 4)
            ids = {v.split("/", 1)[1] for v in values if isinstance(v, str) and v.startswith(f"{resource_type}/")}
            resolved.append(Criterion("_id", "token", None, tuple(sorted(ids)), c.name))
        elif c.chain:
            refs: list[str] = []
            for inner_criterion, target in zip(c.chain, c.target_types, strict=True):
                inner = visible_filter(ctx, target, matching_filter(ctx, target, [inner_criterion]))
                found = ctx.store.search.find_current(target, inner, CHAIN_LIMIT + 1)
                if len(found) > CHAIN_LIMIT:
                    raise FhirError.of(400, "too-costly", f"'{c.name}' matches more than {CHAIN_LIMIT} {target} "
                                                          f"resources; narrow the chained criteria.", c.name)
                refs += [f"{target}/{v.id}" for v in found]
            resolved.append(Criterion(c.code, "reference", None, tuple(refs), c.name))
        elif c.type == "token" and c.modifier in TERMINOLOGY_MODIFIERS:
            resolved.append(expanded(ctx, c))
        elif c.type == "token" and (parameter := ctx.registry.get(resource_type, c.code)) is not None \
                and parameter.resolved_by:
            resolved.append(_resolved(ctx, resource_type, parameter, c))
        else:
            resolved.append(c)
    return resolved


def _resolved(ctx: FhirContext, resource_type: str, parameter: SearchParameter, c: Criterion) -> Criterion:
    """A parameter a service resolves (hr-resolved-by) becomes the references it stands for: a reference criterion
    on `parameter.becomes`, or `_id` of the resources themselves."""
    resolver = ctx.resolvers.get(parameter.resolved_by or "")
    if resolver is None:
        raise FhirError.of(400, "not-supported", f"'{c.code}' is not available on this server.", c.name)
    refs = resolver(ctx, c.name, list(c.values))
    if not parameter.becomes:
        ids = sorted({r.split("/", 1)[1] for r in refs if r.startswith(f"{resource_type}/")})
        return Criterion("_id", "token", None, tuple(ids), c.name)
    return Criterion(parameter.becomes, "reference", None, tuple(sorted(set(refs))), c.name)


def _in_compartment(ctx: FhirContext, resource_type: str, compartment: tuple[str, str],
                    query_filter: dict[str, Any]) -> tuple[dict[str, Any], str]:
    kind, owner = compartment
    check_type(kind)
    params = ctx.compartments.parameters(kind, resource_type)
    if not params:
        raise FhirError.of(400, "not-supported", f"{resource_type} is not in the {kind} compartment.")
    if not is_valid_id(owner):
        raise bad_request(f"'{owner[:64]}' is not a valid FHIR id.")
    reference = f"{kind}/{owner}"
    member = {"$or": [{index_field(p): {"$in": [reference]}} for p in params]} if len(params) > 1 \
        else {index_field(params[0]): {"$in": [reference]}}
    return all_of(query_filter, member), f"{kind}/{owner}/{resource_type}"


# -- paging ----------------------------------------------------------------------------------------
def _read_token(token: str, width: int) -> tuple[list[Any], str]:
    """The sort keys and direction carried by a paging token (bundles.encode_cursor)."""
    def keys(values: Any) -> bool:
        return isinstance(values, list) and len(values) == width and all(
            isinstance(x, str | int | float) and not isinstance(x, bool) for x in values)

    data = decode_cursor(token, {"v": keys, "d": lambda d: d in ("n", "p")})
    return data["v"], data["d"]


def _keyset(sort: list[tuple[str, int, str]], values: list[Any], forward: bool) -> dict[str, Any]:
    """Rows strictly after (forward) or before the row whose sort keys are `values`."""
    alternatives = []
    for i, (field, direction, _) in enumerate(sort):
        op = "$gt" if (direction == 1) == forward else "$lt"
        alternatives.append(all_of(*[{sort[j][0]: values[j]} for j in range(i)], {field: {op: values[i]}}))
    return alternatives[0] if len(alternatives) == 1 else {"$or": alternatives}


def _row_key(sort: list[tuple[str, int, str]], version: StoredVersion, so: dict[str, Any]) -> list[Any]:
    return [version.id if field == "_id" else so.get(field[3:], sort_default(kind)) for field, _, kind in sort]


def _page(ctx: FhirContext, resource_type: str, query_filter: dict[str, Any], sort: list[tuple[str, int, str]],
          count: int, page: str | None) -> tuple[list[tuple[StoredVersion, dict[str, Any]]], str | None, str | None]:
    """One page of rows, with the tokens of the previous and next pages (None when there is none)."""
    if count == 0:
        return [], None, None
    mongo_sort = [(field, direction) for field, direction, _ in sort]
    if page is None:
        rows = ctx.store.search.search(resource_type, query_filter, mongo_sort, count + 1)
        more_after, more_before = len(rows) > count, False
        rows = rows[:count]
    else:
        values, direction = _read_token(page, len(sort))
        forward = direction == "n"
        bounded = all_of(query_filter, _keyset(sort, values, forward))
        order = mongo_sort if forward else [(f, -d) for f, d in mongo_sort]
        rows = ctx.store.search.search(resource_type, bounded, order, count + 1)
        if forward:
            more_after, more_before = len(rows) > count, True
            rows = rows[:count]
        else:
            more_after, more_before = True, len(rows) > count
            rows = rows[:count][::-1]
    if not rows:
        return [], None, None
    before = encode_cursor({"v": _row_key(sort, *rows[0]), "d": "p"}) if more_before else None
    after = encode_cursor({"v": _row_key(sort, *rows[-1]), "d": "n"}) if more_after else None
    return rows, before, after


# -- entries and includes ----------------------------------------------------------------------------
def _entry(ctx: FhirContext, base: str, version: StoredVersion, mode: str, query: SearchQuery) -> dict[str, Any]:
    resource: Any = raw_resource(version)
    if query.summary in ("true", "text", "data") or query.elements:
        assert version.text is not None
        resource = ctx.elements.apply(loads(version.text), query.summary, query.elements)
    return {"fullUrl": f"{base}/{version.resource_type}/{version.id}", "resource": resource,
            "search": {"mode": mode}}


def _includes(ctx: FhirContext, matches: list[StoredVersion], query: SearchQuery) -> list[StoredVersion]:
    if not query.includes or not matches:
        return []
    seen = {(v.resource_type, v.id) for v in matches}
    added: list[StoredVersion] = []
    frontier = matches
    for round_number in range(ITERATE_ROUNDS):
        found: list[StoredVersion] = []
        for include in query.includes:
            if round_number > 0 and not include.iterate:
                continue
            candidates = _revinclude(ctx, frontier, include) if include.reverse else _include(ctx, frontier, include)
            for version in candidates:
                if (version.resource_type, version.id) not in seen and len(added) + len(found) < INCLUDE_LIMIT:
                    seen.add((version.resource_type, version.id))
                    found.append(version)
        added += found
        if not found or not any(i.iterate for i in query.includes):
            break
        frontier = found
    return added


def _include(ctx: FhirContext, frontier: list[StoredVersion], include: Include) -> list[StoredVersion]:
    ids = [v.id for v in frontier if v.resource_type == include.source]
    if not ids:
        return []
    values = ctx.store.search.index_values(include.source, {"_id": {"$in": ids}}, index_field(include.parameter),
                                         INCLUDE_LIMIT * 4)
    by_type: dict[str, set[str]] = {}
    for value in values:
        if isinstance(value, str) and value.count("/") == 1:
            rtype, rid = value.split("/")
            if rtype in SUPPORTED_TYPES and (include.target is None or rtype == include.target):
                by_type.setdefault(rtype, set()).add(rid)
    found: list[StoredVersion] = []
    for rtype, rids in by_type.items():
        found += ctx.store.search.find_current(rtype, all_of({"_id": {"$in": sorted(rids)}}, LIVE), INCLUDE_LIMIT)
    return found


def _revinclude(ctx: FhirContext, frontier: list[StoredVersion], include: Include) -> list[StoredVersion]:
    refs = [f"{v.resource_type}/{v.id}" for v in frontier
            if include.target is None or v.resource_type == include.target]
    if not refs:
        return []
    return ctx.store.search.find_current(
        include.source, all_of(LIVE, {index_field(include.parameter): {"$in": refs}}), INCLUDE_LIMIT)


def find(ctx: FhirContext, resource_type: str, pairs: list[tuple[str, str]], limit: int) -> list[StoredVersion]:
    """Current resources matching search criteria, for domain services (same parser and planner as HTTP)."""
    query = ctx.parser.parse(resource_type, pairs, criteria_only=True)
    return ctx.store.search.find_current(resource_type, matching_filter(ctx, resource_type, query.criteria), limit)



def with_references(ctx: FhirContext, resource_type: str, parameter: str, limit: int) -> list[tuple[str, list[str]]]:
    """(id, references as stored) of the current resources whose reference parameter has any value (a range over
    its index: stored references are strings), for domain services that keep such edges in memory."""
    return ctx.store.search.index_rows(resource_type, all_of(LIVE, {index_field(parameter): {"$gt": ""}}),
                                       index_field(parameter), limit)
