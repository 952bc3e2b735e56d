"""What every write is made of: the request's shape checks, the resource validated and indexed once
(PreparedResource: core definitions, profiles, the domain rules' hooks), the partition key, the after-write hooks,
and the server's own trusted records. The order they run in is the write pipeline's (pipeline.py)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from ...store.indexes import field_name
from ...store.records import StoredVersion, partition_key
from ..errors import FhirError, bad_request
from ..json_format import dumps, loads
from ..resource_types import is_supported
from ..validation import is_valid_id
from ..versioning import next_timestamp
from .context import FhirContext

PLACEHOLDER_INSTANT = "1970-01-01T00:00:00.000Z"


def check_type(resource_type: str) -> None:
    if not is_supported(resource_type):
        raise FhirError.of(404, "not-supported", f"Resource type '{resource_type}' is not supported by this "
                                                 f"server; see /fhir/metadata for the supported types.")


def check_id(resource_id: str) -> None:
    if not is_valid_id(resource_id):
        raise bad_request(f"'{resource_id[:70]}' is not a valid FHIR id: use 1-64 characters from "
                          f"A-Z, a-z, 0-9, '-' and '.'.")


def check_body(body: Any, resource_type: str) -> dict[str, Any]:
    """The body must be a JSON object of the type named in the URL."""
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object holding one FHIR resource.")
    declared = body.get("resourceType")
    if not isinstance(declared, str):
        raise bad_request("The resource has no 'resourceType'.", "resourceType")
    if declared != resource_type:
        raise bad_request(f"The body holds a {declared[:40]} but the URL is for {resource_type}.", "resourceType")
    if "id" in body and not isinstance(body["id"], str):
        raise bad_request("The resource's 'id' must be a string.", f"{resource_type}.id")
    if "meta" in body and not isinstance(body["meta"], dict):
        raise bad_request("The resource's 'meta' must be a JSON object.", f"{resource_type}.meta")
    return body


def check_profiles(ctx: FhirContext, resource: dict[str, Any]) -> None:
    """422 when the resource fails a profile it claims in meta.profile (ours), or one the server enforces
    for its type (FHIRSERVER_ENFORCE_PROFILES). Profiles we do not know are not checked."""
    claimed = [p for p in (resource.get("meta") or {}).get("profile", []) if isinstance(p, str)]
    enforced = [ctx.profiles.resolve(p) for p in ctx.settings.enforce_profiles]
    urls = {u for u in (ctx.profiles.resolve(p) for p in claimed) if u}
    urls |= {u for u in enforced if u and u in ctx.profiles.profiles_for(resource["resourceType"])}
    issues = [issue for url in sorted(urls) for issue in ctx.profiles.validate(resource, url)]
    if issues:
        raise FhirError(status=422, issues=issues)


def stamp(resource: dict[str, Any], resource_id: str, vid: int, last_updated: str) -> dict[str, Any]:
    """Server-assigned identity: id, meta.versionId, meta.lastUpdated (client values are replaced)."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(vid)
    meta["lastUpdated"] = last_updated
    rest = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
    return {"resourceType": resource["resourceType"], "id": resource_id, "meta": meta, **rest}


class PreparedResource:
    """A validated, indexed resource waiting for its version number."""

    def __init__(self, ctx: FhirContext, resource: dict[str, Any], resource_id: str) -> None:
        candidate = stamp(ctx.item_coder(resource), resource_id, 1, PLACEHOLDER_INSTANT)
        ctx.validator.validate(candidate)
        check_profiles(ctx, candidate)
        self.warnings: list[Any] = []
        for hook in ctx.before_write:
            candidate, warnings = hook(ctx, candidate)
            self.warnings += warnings
        self.advisories: list[Any] = [issue for advise in ctx.advise_write for issue in advise(ctx, candidate)]
        self.resource = candidate
        self.id = resource_id
        self.index = ctx.indexer.index(candidate)
        self._indexer = ctx.indexer

    def version(self, vid: int, last_updated: str, method: str) -> StoredVersion:
        final = stamp(self.resource, self.id, vid, last_updated)
        stamped = self._indexer.index(final, only_server_assigned=True)  # _lastUpdated of this version
        return StoredVersion(resource_type=final["resourceType"], id=self.id, vid=vid, last_updated=last_updated,
                             deleted=False, method=method, text=dumps(final).decode("utf-8"),
                             sp={**self.index["sp"], **stamped["sp"]}, so={**self.index["so"], **stamped["so"]})


def partitioned(ctx: FhirContext, version: StoredVersion | None, current: StoredVersion | None) -> StoredVersion | None:
    """The version with its partition key `pk` (the shard key): kept from the resource's earlier versions, else
    the patient it belongs to (a Patient itself, or the first Patient its compartment parameters reference).
    Set once and never changed, so all versions of a resource stay on one shard. None for non-patient data."""
    if version is None:
        return None
    if current is not None and current.pk is not None:
        return replace(version, pk=current.pk)
    if version.resource_type == "Patient":
        return replace(version, pk=partition_key(f"Patient/{version.id}"))
    for code in ctx.compartments.parameters("Patient", version.resource_type):
        patients = sorted(v for v in version.sp.get(field_name(code), []) if isinstance(v, str)
                          and v.startswith("Patient/") and v.count("/") == 1)
        if patients:
            return replace(version, pk=partition_key(patients[0]))
    return version


def after_write(ctx: FhirContext, version: StoredVersion | None) -> None:
    """Run the after-write hooks for a stored version (not for deletions)."""
    if version is None or version.deleted or version.text is None or not ctx.after_write:
        return
    resource = loads(version.text)
    for hook in ctx.after_write:
        hook(ctx, version, resource)


def deletion(resource_type: str, resource_id: str, vid: int, last_updated: str) -> StoredVersion:
    return StoredVersion(resource_type=resource_type, id=resource_id, vid=vid, last_updated=last_updated,
                         deleted=True, method="DELETE", text=None, sp={})


def store_trusted(ctx: FhirContext, resources: list[dict[str, Any]]) -> list[StoredVersion]:
    """Store resources this server built itself (audit events), in one batch: indexed like any other, not
    re-validated, no hooks, no access check. Never call it with client input."""
    versions = trusted_versions(ctx, resources)
    ctx.store.versions.write_new(versions)
    return versions


def trusted_versions(ctx: FhirContext, resources: list[dict[str, Any]]) -> list[StoredVersion]:
    """First versions of resources this server built itself, indexed, ready to store (see store_trusted)."""
    versions = []
    for resource in resources:
        resource_id = resource.get("id") or str(uuid.uuid4())
        final = stamp(resource, resource_id, 1, next_timestamp(None))
        index = ctx.indexer.index(final)
        version = StoredVersion(resource_type=final["resourceType"], id=resource_id, vid=1,
                                last_updated=final["meta"]["lastUpdated"], deleted=False, method="POST",
                                text=dumps(final).decode("utf-8"), sp=index["sp"], so=index["so"])
        versions.append(partitioned(ctx, version, None) or version)
    return versions
