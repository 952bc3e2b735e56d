"""patch with JSON Patch (http://hl7.org/fhir/R4/http.html#patch, RFC 6902).

The patched resource goes through the same validation as an update. Patching may not change the
resource's type or id. FHIRPath Patch (a Parameters body) is not supported yet.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer

from ...store.records import StoredVersion
from ..errors import FhirError, bad_request, gone, not_found
from ..json_format import loads
from ..validation import is_valid_id
from ..versioning import parse_etag
from .conditional import matching, too_many
from .context import FhirContext, RequestInfo, Result
from .writing import PreparedResource, check_type, commit

_OPS = {"add", "remove", "replace", "move", "copy", "test"}


def check_patch_document(operations: Any) -> list[dict[str, Any]]:
    if not isinstance(operations, list) or not operations:
        raise bad_request("A JSON Patch body is a non-empty JSON array of operations (RFC 6902).")
    for index, op in enumerate(operations):
        where = f"[{index}]"
        if not isinstance(op, dict) or op.get("op") not in _OPS:
            raise bad_request(f"Patch operation {where} needs 'op' set to one of: {', '.join(sorted(_OPS))}.", where)
        if not isinstance(op.get("path"), str):
            raise bad_request(f"Patch operation {where} needs a 'path' (a JSON Pointer such as /status).", where)
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f"Patch operation {where} ('{op['op']}') needs a 'value'.", where)
        if op["op"] in ("move", "copy") and not isinstance(op.get("from"), str):
            raise bad_request(f"Patch operation {where} ('{op['op']}') needs a 'from' pointer.", where)
    return operations


def patch(ctx: FhirContext, resource_type: str, resource_id: str, body: Any, request: RequestInfo) -> Result:
    check_type(resource_type)
    operations = check_patch_document(body)
    expected = parse_etag(request.if_match) if request.if_match else None
    if not is_valid_id(resource_id):
        raise not_found(f"{resource_type}/{resource_id[:64]} does not exist.")

    prepared: list[PreparedResource] = []

    def make(current: StoredVersion | None, vid: int, ts: str) -> StoredVersion:
        if current is None:
            raise not_found(f"{resource_type}/{resource_id} does not exist.")
        if current.deleted:
            raise gone(f"{resource_type}/{resource_id} was deleted; a patch cannot apply to it.")
        prepared[:] = [apply_patch(ctx, current, operations)]
        return prepared[0].version(vid, ts, "PATCH")

    _, written = commit(ctx, resource_type, resource_id, make, expected)
    # the same answer as an update: the domain rules' warnings and advice come back with a patch too
    return Result(status=200, version=written, message=f"Patched {resource_type}/{resource_id}.",
                  warnings=prepared[0].warnings if prepared else [],
                  advisories=prepared[0].advisories if prepared else [])


def conditional_patch(ctx: FhirContext, resource_type: str, body: Any, request: RequestInfo) -> Result:
    """PATCH [type]?criteria (R4 http.html#patch): the one match is patched; none is 404, several 412."""
    check_type(resource_type)
    check_patch_document(body)
    if not request.query:
        raise bad_request("A conditional patch needs search criteria in the URL, e.g. "
                          f"PATCH /fhir/{resource_type}?identifier=system|value.")
    with matching(ctx, resource_type, list(request.query)) as matches:
        if len(matches) > 1:
            raise too_many(resource_type)
        if not matches:
            raise not_found(f"The criteria match no {resource_type}; a conditional patch needs exactly one match.")
        return patch(ctx, resource_type, matches[0].id, body, request)


def apply_patch(ctx: FhirContext, current: StoredVersion, operations: list[dict[str, Any]]) -> PreparedResource:
    """The current version with the operations applied, validated like an update (422 when not valid)."""
    assert current.text is not None
    try:
        patched = jsonpatch.JsonPatch(operations).apply(loads(current.text))
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise FhirError.of(422, "processing", f"The patch cannot be applied to version {current.vid}: "
                                              f"{_reason(exc)}.") from None
    if not isinstance(patched, dict) or patched.get("resourceType") != current.resource_type:
        raise FhirError.of(422, "processing", "A patch may not change the resourceType.")
    if patched.get("id") != current.id:
        raise FhirError.of(422, "processing", "A patch may not change or remove the id.")
    try:
        return PreparedResource(ctx, patched, current.id)
    except FhirError as invalid:
        invalid.status = 422
        raise


def _reason(exc: Exception) -> str:
    if isinstance(exc, jsonpatch.JsonPatchTestFailed):
        return "a 'test' operation did not match"
    if isinstance(exc, jsonpatch.JsonPatchConflict | jsonpointer.JsonPointerException):
        return "a path does not exist in the resource"
    return "the operations do not fit the resource"
