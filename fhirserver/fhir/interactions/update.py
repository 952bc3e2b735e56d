"""update, update-as-create and conditional update (http://hl7.org/fhir/R4/http.html#update)."""

from __future__ import annotations

import uuid
from typing import Any

from ..errors import bad_request
from ..versioning import parse_etag
from .conditional import matching, too_many
from .context import FhirContext, RequestInfo, Result
from .pipeline import Intent, commit
from .writing import after_write, check_body, check_id, check_type


def update(ctx: FhirContext, resource_type: str, resource_id: str, body: Any, request: RequestInfo) -> Result:
    """PUT [type]/[id]: the body's id must equal the URL's; a new id creates the resource (201)."""
    check_type(resource_type)
    check_id(resource_id)
    resource = check_body(body, resource_type)
    body_id = resource.get("id")
    if body_id is None:
        raise bad_request(f"The resource must carry its id ('{resource_id}') for an update.", "id")
    if body_id != resource_id:
        raise bad_request(f"The id in the body ('{str(body_id)[:64]}') differs from the id in the URL "
                          f"('{resource_id}').", "id")
    return _write(ctx, resource_type, resource_id, resource, request)


def conditional_update(ctx: FhirContext, resource_type: str, body: Any, request: RequestInfo) -> Result:
    """PUT [type]?criteria: update the one match, create when none, 412 when several."""
    check_type(resource_type)
    resource = check_body(body, resource_type)
    body_id = resource.get("id")
    if body_id is not None:
        check_id(str(body_id))
    if not request.query:
        raise bad_request("A conditional update needs search criteria in the URL, e.g. "
                          f"PUT /fhir/{resource_type}?identifier=system|value.")
    with matching(ctx, resource_type, list(request.query)) as matches:
        if len(matches) > 1:
            raise too_many(resource_type)
        if matches:
            target = matches[0].id
            if body_id is not None and body_id != target:
                raise bad_request(f"The criteria match {resource_type}/{target} but the body has id "
                                  f"'{body_id}'.", "id")
        else:
            target = str(body_id) if body_id is not None else str(uuid.uuid4())
        return _write(ctx, resource_type, target, resource, request)


def _write(ctx: FhirContext, resource_type: str, resource_id: str, resource: dict[str, Any],
           request: RequestInfo) -> Result:
    expected = parse_etag(request.if_match) if request.if_match else None
    planned = commit(ctx, Intent("PUT", resource_type, resource_id, resource=resource, if_match=expected))
    after_write(ctx, planned.version)
    return Result(status=201 if planned.created else 200, version=planned.version,
                  location="history" if planned.created else None, warnings=planned.warnings,
                  advisories=planned.advisories,
                  message=f"{'Created' if planned.created else 'Updated'} {resource_type}/{resource_id}.")
