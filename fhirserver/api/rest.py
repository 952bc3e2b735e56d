"""The FHIR RESTful API blueprint: HTTP in, one interaction call, HTTP out (no storage, no rules here).

ROUTES is the single list of what the server answers; the CapabilityStatement is built from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, Response, request
from werkzeug.routing import BaseConverter

from ..fhir.capability import capability_statement
from ..fhir.errors import FhirError
from ..fhir.interactions import bundle, create, delete, history, patch, read, search, system, update
from ..fhir.interactions.context import FhirContext, RequestInfo, Result
from ..fhir.json_format import loads
from .negotiation import JSON_TYPES, check_body_type, response_media_type
from .operations import capability_operations
from .origin import fhir_base
from .responses import prefer_handling, prefer_return, render, render_error

_MUTATING = {"create", "update", "patch", "conditional-update", "conditional-patch"}
# SMART permission each write interaction needs (reads and searches check theirs in fhir/interactions).
WRITE_PERMISSION = {"create": "c", "update": "u", "patch": "u", "conditional-update": "u", "conditional-patch": "u",
                    "delete": "d", "conditional-delete": "d"}


@dataclass(frozen=True)
class Route:
    rule: str
    method: str
    interaction: str  # FHIR TypeRestfulInteraction / SystemRestfulInteraction code


class ResourceTypeConverter(BaseConverter):
    """A path segment that can be a FHIR resource type name (capitalised), so `/metadata` or
    `/_history` never reach a type-level interaction."""

    regex = r"[A-Z][A-Za-z]{0,63}"


ROUTES: tuple[Route, ...] = (
    Route("/metadata", "GET", "capabilities"),
    Route("/", "POST", "transaction"),
    Route("/", "GET", "search-system"),
    Route("/_history", "GET", "history-system"),
    Route("/<rtype:rtype>", "POST", "create"),
    Route("/<rtype:rtype>", "GET", "search-type"),
    Route("/<rtype:rtype>/_search", "POST", "search-type"),
    Route("/<rtype:rtype>", "PUT", "conditional-update"),
    Route("/<rtype:rtype>", "DELETE", "conditional-delete"),
    Route("/<rtype:rtype>", "PATCH", "conditional-patch"),
    Route("/<rtype:rtype>/_history", "GET", "history-type"),
    Route("/<rtype:rtype>/<rid>", "GET", "read"),
    Route("/<rtype:rtype>/<rid>", "PUT", "update"),
    Route("/<rtype:rtype>/<rid>", "PATCH", "patch"),
    Route("/<rtype:rtype>/<rid>", "DELETE", "delete"),
    Route("/<rtype:rtype>/<rid>/_history", "GET", "history-instance"),
    Route("/<rtype:rtype>/<rid>/_history/<vid>", "GET", "vread"),
    Route("/<rtype:rtype>/<rid>/<rtype:ctype>", "GET", "search-compartment"),
)


def _interactions() -> set[str]:
    return {route.interaction for route in ROUTES}


def _base_url(ctx: FhirContext) -> str:
    return fhir_base(ctx.settings)


def _info(ctx: FhirContext, query: list[tuple[str, str]] | None = None) -> RequestInfo:
    headers = request.headers
    return RequestInfo(
        base_url=_base_url(ctx),
        if_match=headers.get("If-Match"),
        if_none_exist=headers.get("If-None-Exist"),
        if_none_match=headers.get("If-None-Match"),
        if_modified_since=headers.get("If-Modified-Since"),
        query=tuple(query if query is not None else request.args.items(multi=True)),
        lenient=prefer_handling(request) == "lenient",
    )


def _create_info(ctx: FhirContext) -> RequestInfo:
    """`POST [type]?criteria` (how some clients, e.g. fhirpy, write a conditional create) is If-None-Exist with
    those criteria: never ignored. With an If-None-Exist header as well, both must say the same."""
    info = _info(ctx)
    criteria = [(k, v) for k, v in request.args.items(multi=True) if k not in ("_format", "_pretty")]
    if not criteria:
        return info
    if info.if_none_exist is not None and sorted(parse_qsl(info.if_none_exist.split("?", 1)[-1],
                                                           keep_blank_values=True)) != sorted(criteria):
        raise FhirError.of(400, "invalid", "The POST's query and its If-None-Exist header name different criteria; "
                                           "send the criteria once (If-None-Exist, or the query).", "If-None-Exist")
    return replace(info, if_none_exist=urlencode(criteria))


def _body(patch_body: bool = False) -> Any:
    check_body_type(request, patch=patch_body)
    body = loads(request.get_data(cache=False), "a JSON Patch array or a FHIRPath Patch Parameters" if patch_body
                 else "a FHIR JSON resource")
    if patch_body and isinstance(body, list) and request.mimetype in JSON_TYPES:
        raise FhirError.of(415, "not-supported", "A JSON Patch (RFC 6902) is sent with Content-Type: "
                                                 "application/json-patch+json; with application/fhir+json the body "
                                                 "is a FHIRPath Patch (a Parameters resource).")
    return body


def blueprint(ctx: FhirContext, federation: Any = None) -> Blueprint:
    bp = Blueprint("fhir", __name__)
    handlers: dict[str, Callable[..., Any]] = {
        "capabilities": lambda: Result(status=200, body=capability_statement(
            ctx, _interactions(), _base_url(ctx),
            lambda rtype: capability_operations(rtype, ctx.settings.canonical_base))),
        "transaction": lambda: bundle.process(ctx, _body(), _info(ctx), prefer_return(request)),
        "search-system": lambda: system.search_system(ctx, _info(ctx)),
        "history-system": lambda: system.history_system(ctx, _info(ctx)),
        "create": lambda rtype: create.create(ctx, rtype, _body(), _create_info(ctx)),
        "search-type": lambda rtype: _search(ctx, federation, rtype),
        "conditional-update": lambda rtype: update.conditional_update(ctx, rtype, _body(), _info(ctx)),
        "conditional-delete": lambda rtype: delete.conditional_delete(ctx, rtype, _info(ctx)),
        "conditional-patch": lambda rtype: patch.conditional_patch(ctx, rtype, _body(patch_body=True), _info(ctx)),
        "history-type": lambda rtype: history.history(ctx, rtype, None, _info(ctx)),
        "read": lambda rtype, rid: read.read(ctx, rtype, rid, _info(ctx)),
        "update": lambda rtype, rid: update.update(ctx, rtype, rid, _body(), _info(ctx)),
        "patch": lambda rtype, rid: patch.patch(ctx, rtype, rid, _body(patch_body=True), _info(ctx)),
        "delete": lambda rtype, rid: delete.delete(ctx, rtype, rid, _info(ctx)),
        "history-instance": lambda rtype, rid: history.history(ctx, rtype, rid, _info(ctx)),
        "vread": lambda rtype, rid, vid: read.vread(ctx, rtype, rid, vid),
        "search-compartment": lambda rtype, rid, ctype: search.search(ctx, ctype, _info(ctx), compartment=(rtype, rid)),
    }

    def endpoint(interaction: str) -> Callable[..., Response]:
        handler = handlers[interaction]

        def view(**kwargs: str) -> Response:
            try:
                response_media_type(request)  # refuse XML-only clients before doing any work
                if interaction in WRITE_PERMISSION:
                    ctx.access.permit(WRITE_PERMISSION[interaction], kwargs["rtype"])
                result = handler(**kwargs)
            except FhirError as error:
                return render_error(error, request)
            return render(result, request, _base_url(ctx), honour_prefer=interaction in _MUTATING)

        view.__name__ = f"{interaction.replace('-', '_')}_{len(bp.deferred_functions)}"
        return view

    for route in ROUTES:
        bp.add_url_rule(route.rule, view_func=endpoint(route.interaction), methods=[route.method])
    return bp


def _search(ctx: FhirContext, federation: Any, resource_type: str) -> Result:
    """A type search; with `_federated=true`, also on every active peer (federation/service.py)."""
    params = _search_params()
    if any(k == "_federated" and v.lower() == "true" for k, v in params) and federation is not None:
        ctx.access.permit("s", resource_type)
        return Result(status=200, body=federation.search(ctx, resource_type, params, _base_url(ctx)))
    return search.search(ctx, resource_type, _info(ctx, [(k, v) for k, v in params if k != "_federated"]))


def _search_params() -> list[tuple[str, str]]:
    """GET query parameters, plus the form body of POST [type]/_search."""
    params = list(request.args.items(multi=True))
    if request.method == "POST":
        if request.mimetype != "application/x-www-form-urlencoded":
            raise FhirError.of(415, "not-supported", "POST _search needs Content-Type: "
                                                     "application/x-www-form-urlencoded.")
        params.extend(request.form.items(multi=True))
    return params
