"""patch with JSON Patch (http://hl7.org/fhir/R4/http.html#patch, RFC 6902) or FHIRPath Patch.

The patched resource goes through the same validation as an update. Patching may not change the
resource's type or id (patching.py). A FHIRPath Patch (a Parameters body, fhirpath_patch.py) is turned into
JSON Patch operations on the current version and then applied the same way.
"""

from __future__ import annotations

from typing import Any

from ..errors import bad_request, not_found
from ..validation import is_valid_id
from ..versioning import parse_etag
from .conditional import matching, too_many
from .context import FhirContext, RequestInfo, Result
from .patching import read_patch_body
from .pipeline import Intent, commit
from .writing import check_type


def patch(ctx: FhirContext, resource_type: str, resource_id: str, body: Any, request: RequestInfo) -> Result:
    check_type(resource_type)
    operations, fhirpath = read_patch_body(body)
    expected = parse_etag(request.if_match) if request.if_match else None
    if not is_valid_id(resource_id):
        raise not_found(f"{resource_type}/{resource_id[:64]} does not exist.")

    planned = commit(ctx, Intent("PATCH", resource_type, resource_id, operations=operations, fhirpath=fhirpath,
                                 if_match=expected))
    # the same answer as an update: the domain rules' warnings and advice come back with a patch too
    return Result(status=200, version=planned.version, message=f"Patched {resource_type}/{resource_id}.",
                  warnings=planned.warnings, advisories=planned.advisories)


def conditional_patch(ctx: FhirContext, resource_type: str, body: Any, request: RequestInfo) -> Result:
    """PATCH [type]?criteria (R4 http.html#patch): the one match is patched; none is 404, several 412."""
    check_type(resource_type)
    read_patch_body(body)  # a malformed body is told before the criteria are run
    if not request.query:
        raise bad_request("A conditional patch needs search criteria in the URL, e.g. "
                          f"PATCH /fhir/{resource_type}?identifier=system|value.")
    with matching(ctx, resource_type, list(request.query)) as matches:
        if len(matches) > 1:
            raise too_many(resource_type)
        if not matches:
            raise not_found(f"The criteria match no {resource_type}; a conditional patch needs exactly one match.")
        return patch(ctx, resource_type, matches[0].id, body, request)

