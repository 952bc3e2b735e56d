"""JSON Patch (RFC 6902) on a stored version: the document's shape, and the patched resource validated like an
update (the write pipeline, pipeline.py, applies it on top of whatever is current)."""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer

from ...store.records import StoredVersion
from ..errors import FhirError, bad_request
from ..json_format import loads
from .context import FhirContext
from .fhirpath_patch import is_fhirpath_patch
from .writing import PreparedResource

_OPS = {"add", "remove", "replace", "move", "copy", "test"}


def read_patch_body(body: Any) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None]:
    """(JSON Patch operations, FHIRPath Patch Parameters): one of them, whichever the body is, checked; a JSON
    object that is neither is a partial resource (a merge patch, as some servers take), and is told so."""
    if is_fhirpath_patch(body):
        return None, body
    if isinstance(body, dict):
        raise bad_request("A PATCH body is a JSON Patch array (Content-Type application/json-patch+json) or a FHIRPath "
                          "Patch Parameters (application/fhir+json); a partial resource (JSON Merge Patch) is not a "
                          "FHIR R4 patch format.")
    return check_patch_document(body), None


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
