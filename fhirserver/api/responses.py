"""Turning interaction results and errors into HTTP responses: the only place that builds them."""

from __future__ import annotations

import logging
import uuid

from flask import Request, Response

from ..fhir.errors import FhirError, Issue, operation_outcome
from ..fhir.interactions.context import Result
from ..fhir.json_format import dumps, loads
from ..fhir.never_shown import shown
from ..fhir.versioning import etag, http_date
from .negotiation import FHIR_JSON, response_media_type, wants_pretty

log = logging.getLogger(__name__)

PREFER_VALUES = ("minimal", "representation", "OperationOutcome")


def _media(request: Request) -> str:
    try:
        return response_media_type(request)
    except FhirError:
        return FHIR_JSON


def _json_response(payload: bytes, status: int, request: Request, headers: dict[str, str] | None = None) -> Response:
    if wants_pretty(request):
        payload = dumps(loads(payload), pretty=True)
    response = Response(payload, status=status, headers=headers or {})
    response.headers["Content-Type"] = f"{_media(request)}; charset=utf-8"
    return response


def _prefer(request: Request, name: str) -> str | None:
    for part in request.headers.get("Prefer", "").split(","):
        for token in part.split(";"):
            key, _, value = token.strip().partition("=")
            if key.strip().lower() == name:
                return value.strip().strip('"')
    return None


def prefer_handling(request: Request) -> str:
    """Prefer: handling=strict|lenient (http://hl7.org/fhir/R4/search.html#errors); lenient by default: a search
    ignores parameters it does not know and says so (R4: servers SHOULD ignore them)."""
    return "strict" if (_prefer(request, "handling") or "").lower() == "strict" else "lenient"


def prefer_return(request: Request) -> str:
    """Prefer: return=minimal|representation|OperationOutcome (http://hl7.org/fhir/R4/http.html#ops)."""
    value = (_prefer(request, "return") or "").lower()
    for allowed in PREFER_VALUES:
        if value == allowed.lower():
            return allowed
    return "representation"


def render(result: Result, request: Request, base_url: str, honour_prefer: bool = False) -> Response:
    headers: dict[str, str] = dict(result.headers)
    version = result.version
    if version is not None:
        headers["ETag"] = etag(version.vid)
        headers["Last-Modified"] = http_date(version.last_updated)
        if result.location:
            headers["Location"] = f"{base_url}/{version.resource_type}/{version.id}/_history/{version.vid}"
    if result.status == 304:
        return Response(status=304, headers=headers)
    prefer = prefer_return(request) if honour_prefer else "representation"
    if result.warnings and 200 <= result.status < 300:  # e.g. the re-order rule in warn mode
        done = Issue("informational", result.message or "Done.", severity="information")
        return _json_response(dumps(operation_outcome([*result.warnings, done])), result.status, request, headers)
    if prefer == "OperationOutcome":
        done = Issue("informational", result.message or "Done.", severity="information")
        return _json_response(dumps(operation_outcome([*result.advisories, done])), 200 if result.status == 204
                              else result.status, request, headers)
    if result.status == 204 or prefer == "minimal":
        return Response(status=result.status, headers=headers)
    if result.body is not None:
        return _json_response(dumps(result.body), result.status, request, headers)
    if version is not None and version.text is not None:
        text = shown(version).text or ""  # Endpoint.header is never echoed, not even to its writer
        return _json_response(text.encode("utf-8"), result.status, request, headers)
    return Response(status=result.status, headers=headers)


def render_error(error: FhirError, request: Request) -> Response:
    return _json_response(dumps(operation_outcome(error.issues)), error.status, request, error.headers)


def render_unexpected(request: Request) -> Response:
    """A bug or an outage: log it with an incident id, tell the client only the id."""
    incident = uuid.uuid4().hex[:12]
    log.exception("unhandled error, incident %s, %s %s", incident, request.method, request.path)
    issue = Issue("exception", f"The server failed to process the request (incident {incident}). "
                               "Please report the incident id to the platform operator.")
    return _json_response(dumps(operation_outcome([issue])), 500, request)
