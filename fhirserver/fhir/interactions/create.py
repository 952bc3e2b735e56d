"""create and conditional create (http://hl7.org/fhir/R4/http.html#create)."""

from __future__ import annotations

import uuid
from typing import Any

from .conditional import criteria_pairs, matching, too_many
from .context import FhirContext, RequestInfo, Result
from .pipeline import Intent, commit
from .writing import after_write, check_body, check_type


def create(ctx: FhirContext, resource_type: str, body: Any, request: RequestInfo) -> Result:
    """POST [type]: the server assigns the id (a client id in the body is ignored, as the spec says)."""
    check_type(resource_type)
    resource = check_body(body, resource_type)
    if request.if_none_exist is not None:
        pairs = criteria_pairs(resource_type, request.if_none_exist, "If-None-Exist")
        with matching(ctx, resource_type, pairs) as matches:
            if len(matches) > 1:
                raise too_many(resource_type)
            if matches:
                return Result(status=200, version=matches[0],
                              message=f"{resource_type}/{matches[0].id} already matches If-None-Exist; "
                                      f"nothing was created.")
            return _create_new(ctx, resource_type, resource)
    return _create_new(ctx, resource_type, resource)


def _create_new(ctx: FhirContext, resource_type: str, resource: dict[str, Any]) -> Result:
    planned = commit(ctx, Intent("POST", resource_type, str(uuid.uuid4()), resource=resource))
    after_write(ctx, planned.version)
    assert planned.version is not None
    return Result(status=201, version=planned.version, location="history", warnings=planned.warnings,
                  advisories=planned.advisories, message=f"Created {resource_type}/{planned.version.id}.")
