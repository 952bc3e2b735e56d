"""read and vread (http://hl7.org/fhir/R4/http.html#read, #vread), with HTTP conditional read (304)."""

from __future__ import annotations

from ...store.records import StoredVersion
from ...store.timestamps import parse_instant
from ..errors import FhirError, bad_request, gone, not_found
from ..json_format import loads
from ..validation import is_valid_id
from ..versioning import etag, parse_etag, parse_http_date
from .context import FhirContext, RequestInfo, Result
from .writing import check_type


def read(ctx: FhirContext, resource_type: str, resource_id: str, request: RequestInfo) -> Result:
    check_type(resource_type)
    ctx.access.permit("r", resource_type)
    stored = ctx.store.versions.read_current(resource_type, resource_id) if is_valid_id(resource_id) else None
    shown = ctx.access.disclose([stored]) if stored is not None else []
    if not shown:
        raise not_found(f"{resource_type}/{resource_id[:64]} does not exist.")
    current = shown[0]
    if current.deleted:
        raise gone(f"{resource_type}/{resource_id} was deleted (version {current.vid}).",
                   headers={"ETag": etag(current.vid)})
    if request.if_none_match and _etag_matches(request.if_none_match, current.vid):
        return Result(status=304, version=current)
    if request.if_modified_since:
        since = parse_http_date(request.if_modified_since)
        # HTTP dates have whole seconds: unchanged means "not modified after that second".
        if since is not None and parse_instant(current.last_updated).replace(microsecond=0) <= since:
            return Result(status=304, version=current)
    return _subsetted(ctx, current, request) or Result(status=200, version=current)


def _subsetted(ctx: FhirContext, current: StoredVersion, request: RequestInfo) -> Result | None:
    """`_summary` and `_elements` on a read (http://hl7.org/fhir/R4/search.html#summary applies to reads too)."""
    summary = next((v for k, v in request.query if k == "_summary"), None)
    elements = tuple(e.strip() for k, v in request.query if k == "_elements" for e in v.split(",") if e.strip())
    if summary is None and not elements:
        return None
    if summary is not None and summary not in ("true", "false", "text", "data"):
        raise bad_request("_summary on a read is true, false, text or data.", "_summary")
    if not all(e.isidentifier() for e in elements):
        raise bad_request("_elements lists top-level element names, e.g. _elements=status,code.", "_elements")
    if summary == "false" and not elements:
        return None
    body = ctx.elements.apply(loads(current.text or "{}"), summary if summary != "false" else None, elements)
    return Result(status=200, version=current, body=body)


def _etag_matches(header: str, vid: int) -> bool:
    if header.strip() == "*":
        return True
    for candidate in header.split(","):
        try:
            if parse_etag(candidate, "If-None-Match") == vid:
                return True
        except FhirError:  # an unparsable entity tag simply does not match
            continue
    return False


def vread(ctx: FhirContext, resource_type: str, resource_id: str, version_id: str) -> Result:
    check_type(resource_type)
    ctx.access.permit("r", resource_type)
    if not (is_valid_id(resource_id) and version_id.isdigit() and len(version_id) <= 12):
        raise not_found(f"{resource_type}/{resource_id[:64]}/_history/{version_id[:20]} does not exist.")
    stored = ctx.store.versions.read_version(resource_type, resource_id, int(version_id))
    shown = ctx.access.disclose([stored]) if stored is not None else []
    if not shown:
        raise not_found(f"{resource_type}/{resource_id}/_history/{version_id} does not exist.")
    version = shown[0]
    if version.deleted:
        raise gone(f"Version {version_id} of {resource_type}/{resource_id} is a deletion.",
                   headers={"ETag": etag(version.vid)})
    return Result(status=200, version=version)
