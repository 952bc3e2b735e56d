"""delete and conditional delete (http://hl7.org/fhir/R4/http.html#delete).

Deletion is logical: a new version marked deleted. Read then answers 410, history shows it, and a
later update revives the resource as the next version. Deleting what is absent or already deleted
succeeds without writing anything, as the spec asks (delete is idempotent).
"""

from __future__ import annotations

from ..validation import is_valid_id
from ..versioning import parse_etag
from .conditional import matching, too_many
from .context import FhirContext, RequestInfo, Result
from .pipeline import Intent, commit
from .writing import check_type


def delete(ctx: FhirContext, resource_type: str, resource_id: str, request: RequestInfo) -> Result:
    check_type(resource_type)
    if not is_valid_id(resource_id):
        return Result(status=204, message=f"{resource_type}/{resource_id[:64]} does not exist; nothing deleted.")
    expected = parse_etag(request.if_match) if request.if_match else None
    planned = commit(ctx, Intent("DELETE", resource_type, resource_id, if_match=expected))
    if planned.version is None:
        state = "was already deleted" if planned.current is not None else "does not exist"
        return Result(status=204, version=planned.current, message=f"{resource_type}/{resource_id} {state}; "
                                                                   f"nothing deleted.")
    return Result(status=204, version=planned.version, message=f"Deleted {resource_type}/{resource_id} "
                                                               f"(version {planned.version.vid}).")


def conditional_delete(ctx: FhirContext, resource_type: str, request: RequestInfo) -> Result:
    """DELETE [type]?criteria, single-match mode: several matches are a 412."""
    check_type(resource_type)
    with matching(ctx, resource_type, list(request.query)) as matches:
        if len(matches) > 1:
            raise too_many(resource_type)
        if not matches:
            return Result(status=204, message=f"No {resource_type} matches the criteria; nothing deleted.")
        return delete(ctx, resource_type, matches[0].id, request)
