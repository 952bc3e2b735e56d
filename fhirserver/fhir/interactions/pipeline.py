"""The write pipeline: every write (create, update, patch, delete, their conditional forms, and each entry of a
batch or a transaction) becomes an Intent, and `plan` makes its next version in one place:

  permission (SMART scope) -> If-Match -> the new content (a body validated against the core definitions and the
  profiles, the domain rules' before_write hooks and advice; or a JSON Patch applied to the current version, then
  the same) -> the partition key -> the access policy's check of who may write it (and its record for the audit).

A rule added to any of those steps holds for every route. The routes differ only in how they store what `plan`
made: a single request claims the next version with compare-and-set, re-planning on a lost race (`commit`); a
transaction plans all its entries, then stores them in one MongoDB transaction. Choosing the target of a
conditional write (criteria, locks) stays with each route: it decides which resource, not what is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...store.records import StoredVersion, VersionConflict
from ..errors import FhirError, Issue, gone, not_found, precondition_failed
from ..json_format import loads
from ..versioning import next_timestamp
from .context import FhirContext
from .fhirpath_patch import to_json_patch
from .patching import apply_patch
from .writing import PreparedResource, deletion, partitioned

PERMISSION = {"POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}  # SMART permission letters
MAX_ATTEMPTS = 50


@dataclass
class Intent:
    """One write as asked, whatever route it came by, with its target already chosen."""

    method: str                                     # POST, PUT, PATCH or DELETE
    resource_type: str
    resource_id: str
    resource: dict[str, Any] | None = None          # POST, PUT: the body (a transaction's references rewritten)
    operations: list[dict[str, Any]] | None = None  # PATCH: checked JSON Patch operations
    fhirpath: dict[str, Any] | None = None          # PATCH: a FHIRPath Patch (Parameters), made into operations
    if_match: int | None = None                     # the version the client wrote on top of
    if_match_name: str = "If-Match"                 # as the client wrote it (a Bundle entry's is ifMatch)
    _prepared: PreparedResource | None = field(default=None, repr=False)  # a body is validated once


@dataclass
class Planned:
    version: StoredVersion | None  # None: nothing to write (deleting what is absent or already deleted)
    current: StoredVersion | None
    warnings: list[Issue] = field(default_factory=list)
    advisories: list[Issue] = field(default_factory=list)

    @property
    def created(self) -> bool:
        return self.version is not None and not self.version.deleted and (
            self.current is None or self.current.deleted)


def plan(ctx: FhirContext, intent: Intent, current: StoredVersion | None) -> Planned:
    """The next version of the intent's resource on top of `current`, through every rule a write passes."""
    ctx.access.permit(PERMISSION[intent.method], intent.resource_type)
    current_vid = current.vid if current else 0
    name = f"{intent.resource_type}/{intent.resource_id}"
    if intent.if_match is not None and intent.if_match != current_vid:
        raise precondition_failed(f"{intent.if_match_name} names version {intent.if_match} but the current version "
                                  f"of {name} is {current_vid if current else 'none (it does not exist)'}.")
    vid, ts = current_vid + 1, next_timestamp(current.last_updated if current else None)
    prepared: PreparedResource | None = None
    if intent.method == "POST" and current is not None:
        raise FhirError.of(409, "conflict", f"{name} already exists; a create takes a new id.")
    if intent.method == "DELETE":
        if current is None or current.deleted:
            return Planned(None, current)
        version = deletion(intent.resource_type, intent.resource_id, vid, ts)
    elif intent.method == "PATCH":
        if current is None:
            raise not_found(f"{name} does not exist.")
        if current.deleted or current.text is None:
            raise gone(f"{name} was deleted; a patch cannot apply to it.")
        operations = intent.operations or []
        if intent.fhirpath is not None:  # on top of this version: its paths select in what is current
            operations = to_json_patch(intent.fhirpath, loads(current.text), ctx.validator.element)
        prepared = apply_patch(ctx, current, operations)
        version = prepared.version(vid, ts, "PATCH")
    else:
        if intent._prepared is None:
            intent._prepared = PreparedResource(ctx, dict(intent.resource or {}), intent.resource_id)
        prepared = intent._prepared
        version = prepared.version(vid, ts, intent.method)
    version = partitioned(ctx, version, current)
    assert version is not None
    ctx.access.check_write(version, current)
    return Planned(version, current, prepared.warnings if prepared else [], prepared.advisories if prepared else [])


def commit(ctx: FhirContext, intent: Intent) -> Planned:
    """A single request's write: plan on top of the current version and claim the next version number; a lost
    race re-reads and plans again (so concurrent updates are serialised, not lost), unless the client named the
    version it wrote on top of (If-Match), which is then a 412."""
    versions = ctx.store.versions
    for _ in range(MAX_ATTEMPTS):
        planned = plan(ctx, intent, versions.read_current(intent.resource_type, intent.resource_id))
        if planned.version is None:
            return planned
        try:
            versions.write(planned.version)
            return planned
        except VersionConflict:
            versions.roll_forward(intent.resource_type, intent.resource_id)
            if intent.if_match is not None:
                raise precondition_failed(
                    f"{intent.resource_type}/{intent.resource_id} was changed by another request after version "
                    f"{intent.if_match}; read it again and retry.") from None
    raise FhirError.of(409, "conflict", f"{intent.resource_type}/{intent.resource_id} is being changed by many "
                                        f"requests at once; retry shortly.")
