"""batch and transaction Bundles at POST [base] (http://hl7.org/fhir/R4/http.html#transaction).

A transaction is all-or-nothing. Everything that can fail is done before the first write: ids are
resolved (conditional create/update/delete, urn:uuid fullUrls, conditional references such as
Patient?identifier=...), every resource is validated and every If-Match checked. Transactions that write
the same resource (or the same conditional criteria) take turns under named locks; the writes then go into
one MongoDB multi-document transaction (store/versions.py `write_all`). Entries are processed in the FHIR
order DELETE, POST, PUT/PATCH, then GET against the new state.
A batch runs each entry on its own and reports each outcome.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ...store.records import LockTimeout, StoredVersion, VersionConflict
from ..bundles import raw_resource
from ..errors import FhirError, Issue, bad_request, not_found, operation_outcome
from ..json_format import loads
from ..never_shown import shown
from ..resource_types import is_supported
from ..search.query import criteria_key
from ..validation import is_valid_id
from ..versioning import etag, parse_etag
from . import create, delete, in_flight, patch, read, search, update
from .context import FhirContext, RequestInfo, Result
from .patching import read_patch_body
from .pipeline import PERMISSION, Intent, plan
from .search import restricted_filter
from .writing import after_write

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
def _status(code: int) -> str:
    """Bundle.entry.response.status: the code and its reason phrase, for successes and failures alike."""
    from http import HTTPStatus

    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


@dataclass
class Entry:
    """One Bundle entry, parsed, with what the transaction decided for it."""

    index: int
    method: str
    url: str
    resource_type: str
    resource_id: str | None
    query: list[tuple[str, str]]
    full_url: str | None
    resource: dict[str, Any] | None
    if_match: str | None
    if_none_exist: str | None
    target_id: str | None = None
    noop: StoredVersion | None = None      # conditional create that matched, delete of nothing
    missing: bool = False                  # delete of a resource that does not exist
    written: StoredVersion | None = None
    created: bool = False
    result: Result | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[Issue] = field(default_factory=list)  # the write rules' warnings and advice for this entry


def process(ctx: FhirContext, body: Any, request: RequestInfo, prefer_return: str) -> Result:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise bad_request("POST to the base URL takes a Bundle of type batch or transaction.", "resourceType")
    kind = body.get("type")
    if kind not in ("batch", "transaction"):
        raise bad_request(f"Bundle.type must be batch or transaction, got {str(kind)[:30]!r}.", "Bundle.type")
    raw_entries = body.get("entry", [])
    if not isinstance(raw_entries, list):
        raise bad_request("Bundle.entry must be an array.", "Bundle.entry")
    if len(raw_entries) > ctx.settings.max_bundle_entries:
        raise FhirError.of(413, "too-long", f"The Bundle has {len(raw_entries)} entries; this server accepts at "
                                            f"most {ctx.settings.max_bundle_entries} (FHIRSERVER_MAX_BUNDLE_ENTRIES).")
    _unique_full_urls(raw_entries)
    if kind == "batch":
        return _batch(ctx, raw_entries, request, prefer_return)
    entries = [_parse_entry(raw, i) for i, raw in enumerate(raw_entries)]
    return _transaction(ctx, entries, request, prefer_return)


# -- parsing entries -----------------------------------------------------------------------------------
def _unique_full_urls(raw_entries: list[Any]) -> None:
    """bdl-7: a fullUrl appears once in a Bundle (unless the entries carry different meta.versionId)."""
    seen: dict[tuple[str, Any], int] = {}
    for index, raw in enumerate(raw_entries):
        full_url = raw.get("fullUrl") if isinstance(raw, dict) else None
        if not isinstance(full_url, str):
            continue
        resource = raw.get("resource")
        version = ((resource.get("meta") or {}) if isinstance(resource, dict) else {}).get("versionId")
        first = seen.setdefault((full_url, version if isinstance(version, str) else None), index)
        if first != index:
            raise bad_request(f"Bundle.entry[{index}].fullUrl {full_url[:80]} is also the fullUrl of entry[{first}]; "
                              f"a fullUrl names one entry of a Bundle (bdl-7).", f"Bundle.entry[{index}].fullUrl")


def _parse_entry(raw: Any, index: int) -> Entry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise _entry_error(index, bad_request(f"{where} needs a request with method and url.", f"{where}.request"))
    req = raw["request"]
    method, url = req.get("method"), req.get("url")
    if method not in ORDER or not isinstance(url, str) or not url:
        raise _entry_error(index, bad_request(f"{where}.request needs a method (GET, POST, PUT, PATCH, DELETE) "
                                              f"and a url.", f"{where}.request"))
    parts = urlsplit(url)
    path = parts.path.strip("/")
    if path.startswith(("http:", "https:")) or "//" in url:
        raise _entry_error(index, bad_request(f"{where}.request.url must be relative (e.g. Patient/123).",
                                              f"{where}.request.url"))
    if method == "POST" and (parts.query or "/" in path):
        raise _entry_error(index, bad_request(f"{where}.request.url of a POST is the resource type alone (e.g. "
                                              f"Observation); use ifNoneExist for conditions.", f"{where}.request.url"))
    segments = path.split("/") if path else []
    resource_type = segments[0] if segments else ""
    if method != "GET" and not is_supported(resource_type):
        raise _entry_error(index, FhirError.of(404, "not-supported", f"{where}: resource type "
                                                                    f"'{resource_type[:40]}' is not supported."))
    resource = raw.get("resource")
    if method == "PATCH" and isinstance(resource, dict) and resource.get("resourceType") == "Binary":
        resource = _patch_from_binary(resource, index)
    elif method in ("POST", "PUT") and not (isinstance(resource, dict)
                                            and resource.get("resourceType") == resource_type):
        raise _entry_error(index, bad_request(f"{where}.resource must be a {resource_type or 'resource'} for "
                                              f"{method} {url[:60]}.", f"{where}.resource"))
    return Entry(index=index, method=method, url=url, resource_type=resource_type,
                 resource_id=segments[1] if len(segments) > 1 else None,
                 query=parse_qsl(parts.query, keep_blank_values=True), full_url=raw.get("fullUrl"),
                 resource=resource, if_match=req.get("ifMatch"), if_none_exist=req.get("ifNoneExist"))


def _patch_from_binary(binary: dict[str, Any], index: int) -> Any:
    if binary.get("contentType") != "application/json-patch+json" or not isinstance(binary.get("data"), str):
        raise _entry_error(index, FhirError.of(415, "not-supported", "A PATCH entry takes a Binary with contentType "
                                                                     "application/json-patch+json and base64 data."))
    try:
        return loads(base64.b64decode(binary["data"], validate=True))
    except (ValueError, FhirError):
        raise _entry_error(index, bad_request("The PATCH entry's Binary data is not base64 JSON Patch.")) from None


def _entry_error(index: int, error: FhirError) -> FhirError:
    prefix = f"Bundle.entry[{index}]"
    issues = [Issue(i.code, i.diagnostics if i.diagnostics.startswith(prefix) else f"{prefix}: {i.diagnostics}",
                    i.severity, i.expression or (prefix,)) for i in error.issues]
    return FhirError(status=error.status, issues=issues, headers=error.headers)


# -- batch ------------------------------------------------------------------------------------------------
def _batch(ctx: FhirContext, raw_entries: list[Any], request: RequestInfo, prefer_return: str) -> Result:
    responses: list[dict[str, Any] | None] = [None] * len(raw_entries)
    parsed: list[Entry] = []
    for i, raw in enumerate(raw_entries):
        try:
            parsed.append(_parse_entry(raw, i))
        except FhirError as error:
            responses[i] = _error_response(error)
    for entry in sorted(parsed, key=lambda e: (ORDER[e.method], e.index)):
        try:
            result = _single(ctx, entry, request)
            responses[entry.index] = _response(entry, result, request.base_url, prefer_return)
        except FhirError as error:
            responses[entry.index] = _error_response(_entry_error(entry.index, error))
    return _response_bundle("batch-response", [r for r in responses if r is not None])


def _single(ctx: FhirContext, entry: Entry, request: RequestInfo) -> Result:
    """One batch entry through the same interaction code as a plain HTTP request."""
    info = RequestInfo(base_url=request.base_url, if_match=entry.if_match, if_none_exist=entry.if_none_exist,
                       query=tuple(entry.query), lenient=request.lenient)
    rtype, rid = entry.resource_type, entry.resource_id
    if entry.method == "GET":
        return _get(ctx, entry, info)
    ctx.access.permit(PERMISSION[entry.method], rtype)  # early, as the REST layer does for a single request
    if entry.method == "POST":
        return create.create(ctx, rtype, entry.resource, info)
    if entry.method == "PUT":
        return update.update(ctx, rtype, rid, entry.resource, info) if rid else \
            update.conditional_update(ctx, rtype, entry.resource, info)
    if entry.method == "PATCH":
        return patch.patch(ctx, rtype, rid, entry.resource, info) if rid else \
            patch.conditional_patch(ctx, rtype, entry.resource, info)
    return delete.delete(ctx, rtype, rid, info) if rid else delete.conditional_delete(ctx, rtype, info)


def _get(ctx: FhirContext, entry: Entry, info: RequestInfo) -> Result:
    segments = urlsplit(entry.url).path.strip("/").split("/")
    if len(segments) == 1:
        return search.search(ctx, segments[0], info)
    if len(segments) == 2:
        return read.read(ctx, segments[0], segments[1], info)
    if len(segments) == 4 and segments[2] == "_history":
        return read.vread(ctx, segments[0], segments[1], segments[3])
    raise bad_request(f"GET {entry.url[:60]} is not supported inside a Bundle (read, vread or search).")


# -- transaction ----------------------------------------------------------------------------------------
def _transaction(ctx: FhirContext, entries: list[Entry], request: RequestInfo, prefer_return: str) -> Result:
    try:
        writes = sorted((e for e in entries if e.method != "GET"), key=lambda e: (ORDER[e.method], e.index))
        # The same criteria locks as single conditional requests take (a concurrent POST If-None-Exist cannot
        # create a twin), and one per resource named by id, so two transactions never write the same resource
        # at once while transactions on different resources run side by side. All taken together.
        keys = {_criteria_lock(e) for e in writes} | {f"write:{e.resource_type}/{e.resource_id}"
                                                       for e in writes if e.resource_id}
        with ctx.store.locks.exclusive(*(k for k in keys if k), wait_s=60):
            references = _resolve_targets(ctx, writes)
            with in_flight.transaction(lambda rtype: _in_flight(ctx, writes, references, rtype)):
                versions = _prepare(ctx, writes, references)
            try:
                ctx.store.versions.write_all(versions)
            except VersionConflict:
                raise FhirError.of(409, "conflict", "A resource in the transaction was changed by another "
                                                    "request during the commit; nothing was written. Retry.") from None
    except LockTimeout:
        raise FhirError.of(503, "transient", "Other transactions are running; retry shortly.") from None
    for version in versions:
        after_write(ctx, version)
    for entry in entries:
        if entry.method == "GET":
            info = RequestInfo(base_url=request.base_url, query=tuple(entry.query))
            try:
                entry.result = _get(ctx, entry, info)
            except FhirError as error:
                raise _entry_error(entry.index, error) from None
    responses = [_response(e, e.result or _write_result(e), request.base_url, prefer_return) for e in entries]
    return _response_bundle("transaction-response", responses)


def _in_flight(ctx: FhirContext, writes: list[Entry], references: dict[str, str],
               resource_type: str) -> list[dict[str, Any]]:
    """The resources of one type this transaction creates or replaces, with ids and references as stored."""
    out = []
    for entry in writes:
        if entry.method in ("POST", "PUT") and entry.resource_type == resource_type and entry.resource \
                and entry.target_id and entry.noop is None:
            resource = _rewrite_references(ctx, dict(entry.resource), references, entry.index)
            out.append({**resource, "id": entry.target_id})
    return out


def _criteria_lock(entry: Entry) -> str | None:
    if entry.method == "POST" and entry.if_none_exist:
        pairs = parse_qsl(entry.if_none_exist.split("?", 1)[-1], keep_blank_values=True)
    elif entry.method in ("PUT", "DELETE") and not entry.resource_id and entry.query:
        pairs = entry.query
    else:
        return None
    return "conditional:" + criteria_key(entry.resource_type, pairs)


def _resolve_targets(ctx: FhirContext, writes: list[Entry]) -> dict[str, str]:
    """Decide the id each write applies to; return fullUrl -> "Type/id" for reference rewriting."""
    references: dict[str, str] = {}
    conditional_creates: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    for entry in writes:
        try:
            _resolve_one(ctx, entry)
        except FhirError as error:
            raise _entry_error(entry.index, error) from None
        key = (entry.resource_type, entry.target_id or "")
        if entry.target_id and key in seen:
            raise _entry_error(entry.index, bad_request(f"{entry.resource_type}/{entry.target_id} appears more "
                                                        f"than once in the transaction."))
        seen.add(key)
        if entry.full_url and entry.target_id:
            references[entry.full_url] = f"{entry.resource_type}/{entry.target_id}"
        if entry.method == "POST" and entry.if_none_exist and entry.target_id:
            pairs = parse_qsl(entry.if_none_exist.split("?", 1)[-1], keep_blank_values=True)
            conditional_creates[criteria_key(entry.resource_type, pairs)] = entry.target_id
    references.update({f"conditional:{k}": v for k, v in conditional_creates.items()})
    return references


def _resolve_one(ctx: FhirContext, entry: Entry) -> None:
    if entry.method == "POST":
        entry.created = True
        if entry.if_none_exist:
            matches = _matches(ctx, entry.resource_type, entry.if_none_exist.split("?", 1)[-1])
            if len(matches) > 1:
                raise FhirError.of(412, "multiple-matches", "ifNoneExist matches more than one resource.")
            if matches:
                entry.noop, entry.target_id, entry.created = matches[0], matches[0].id, False
                return
        entry.target_id = str(uuid.uuid4())
        return
    if entry.resource_id:
        if not is_valid_id(entry.resource_id):
            raise bad_request(f"'{entry.resource_id[:64]}' is not a valid FHIR id.")
        entry.target_id = entry.resource_id
        return
    if not entry.query:
        raise bad_request(f"{entry.method} needs Type/id or search criteria in request.url.")
    matches = _matches(ctx, entry.resource_type, "&".join(f"{k}={v}" for k, v in entry.query))
    if len(matches) > 1:
        raise FhirError.of(412, "multiple-matches", "The conditional criteria match more than one resource.")
    if matches:
        entry.target_id = matches[0].id
    elif entry.method == "PUT":
        body_id = (entry.resource or {}).get("id")
        entry.target_id = body_id if isinstance(body_id, str) else str(uuid.uuid4())
    elif entry.method == "PATCH":
        raise not_found(f"The criteria match no {entry.resource_type}; a conditional patch needs exactly one match.")
    else:  # conditional DELETE of nothing
        entry.missing = True


def _matches(ctx: FhirContext, resource_type: str, criteria: str) -> list[StoredVersion]:
    query = ctx.parser.parse(resource_type, parse_qsl(criteria, keep_blank_values=True), criteria_only=True)
    if not query.criteria:
        raise bad_request("Conditional criteria must contain at least one search parameter.")
    query_filter = restricted_filter(ctx, resource_type, query.criteria)
    return ctx.store.search.find_current(resource_type, query_filter, 2)


def _rewrite_references(ctx: FhirContext, node: Any, references: dict[str, str], index: int) -> Any:
    """Replace urn:uuid/fullUrl references and resolve conditional references (Type?criteria)."""
    if isinstance(node, list):
        return [_rewrite_references(ctx, item, references, index) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _rewrite_references(ctx, v, references, index) for k, v in node.items()}
    div = out.get("div")
    if isinstance(div, str) and "urn:uuid:" in div and out.get("status") is not None:
        out["div"] = _rewrite_narrative(div, references)  # a Narrative (status + div): its links too
    ref = out.get("reference")
    if isinstance(ref, str):
        if ref in references:
            out["reference"] = references[ref]
        elif "?" in ref and ref.split("?", 1)[0] and is_supported(ref.split("?", 1)[0]):
            out["reference"] = _conditional_reference(ctx, ref, references, index)
        elif ref.startswith("urn:uuid:"):
            raise _entry_error(index, bad_request(f"Reference {ref[:60]} names no entry of this transaction."))
    return out


_NARRATIVE_LINK = re.compile(r'(\b(?:href|src)\s*=\s*["\'])(urn:uuid:[0-9a-fA-F-]{36})(["\'])')


def _rewrite_narrative(div: str, references: dict[str, str]) -> str:
    """`<a href="urn:uuid:…">` and `<img src="urn:uuid:…">` in the narrative name the resources the transaction
    creates; they become their new references as well (R4 http.html#trules: the server SHALL)."""
    return _NARRATIVE_LINK.sub(lambda m: m.group(1) + references.get(m.group(2), m.group(2)) + m.group(3), div)


def _conditional_reference(ctx: FhirContext, ref: str, references: dict[str, str], index: int) -> str:
    rtype, criteria = ref.split("?", 1)
    pairs = parse_qsl(criteria, keep_blank_values=True)
    created = references.get(f"conditional:{criteria_key(rtype, pairs)}")
    if created:
        return f"{rtype}/{created}"
    try:
        matches = _matches(ctx, rtype, criteria)
    except FhirError as error:
        raise _entry_error(index, error) from None
    if len(matches) != 1:
        raise _entry_error(index, FhirError.of(412 if matches else 404, "not-found" if not matches else
                                               "multiple-matches", f"Conditional reference {ref[:80]} matches "
                                                                   f"{len(matches)} resources; it must match one."))
    return f"{rtype}/{matches[0].id}"


def _prepare(ctx: FhirContext, writes: list[Entry], references: dict[str, str]) -> list[StoredVersion]:
    versions: list[StoredVersion] = []
    wanted: dict[str, list[str]] = {}
    for entry in writes:  # a POST with a fresh server id has no current version: no need to read it
        if entry.target_id and not (entry.method == "POST" and entry.created):
            wanted.setdefault(entry.resource_type, []).append(entry.target_id)
    currents = {(rtype, rid): version for rtype, ids in wanted.items()
                for rid, version in ctx.store.versions.read_current_many(rtype, ids).items()}
    for entry in writes:
        if entry.noop is not None or entry.missing:
            continue
        try:
            version = _prepare_one(ctx, entry, references, currents.get((entry.resource_type, entry.target_id)))
        except FhirError as error:
            raise _entry_error(entry.index, error) from None
        if version is not None:
            entry.written = version
            versions.append(version)
    return versions


def _prepare_one(ctx: FhirContext, entry: Entry, references: dict[str, str],
                 current: StoredVersion | None) -> StoredVersion | None:
    """The entry's next version, made by the write pipeline like any single request's (pipeline.py)."""
    assert entry.target_id is not None
    intent = Intent(entry.method, entry.resource_type, entry.target_id, if_match_name="ifMatch",
                    if_match=parse_etag(entry.if_match, "ifMatch") if entry.if_match is not None else None)
    if entry.method == "PATCH":
        intent.operations, fhirpath = read_patch_body(entry.resource)
        if fhirpath is not None:
            intent.fhirpath = _rewrite_references(ctx, fhirpath, references, entry.index)
    elif entry.method in ("POST", "PUT"):
        resource = dict(entry.resource or {})
        if entry.method == "PUT" and entry.resource_id and resource.get("id") != entry.resource_id:
            raise bad_request(f"The resource id ('{str(resource.get('id'))[:64]}') differs from the url's "
                              f"('{entry.resource_id}').")
        intent.resource = _rewrite_references(ctx, resource, references, entry.index)
    planned = plan(ctx, intent, current)
    if planned.version is None:  # a DELETE of what is absent or already deleted
        entry.noop, entry.missing = current, current is None
        return None
    entry.created = planned.created
    entry.warnings = [*planned.warnings, *planned.advisories]
    return planned.version


def _write_result(entry: Entry) -> Result:
    if entry.written is not None:
        status = 201 if entry.created else (204 if entry.written.deleted else 200)
        return Result(status=status, version=entry.written, location="history" if entry.created else None,
                      warnings=entry.warnings)
    if entry.noop is not None and entry.method == "POST":
        return Result(status=200, version=entry.noop)
    return Result(status=204, version=entry.noop)


# -- responses --------------------------------------------------------------------------------------------
def _response(entry: Entry, result: Result, base_url: str, prefer_return: str) -> dict[str, Any]:
    response: dict[str, Any] = {"status": _status(result.status)}
    out: dict[str, Any] = {}
    version = result.version
    if version is not None:
        response["etag"] = etag(version.vid)
        response["lastModified"] = version.last_updated
        if result.status == 201:
            response["location"] = f"{version.resource_type}/{version.id}/_history/{version.vid}"
        out["fullUrl"] = f"{base_url}/{version.resource_type}/{version.id}"
    if result.body is not None:
        out["resource"] = result.body
    elif (version is not None and version.text is not None and entry.method != "DELETE"
          and (entry.method == "GET" or prefer_return == "representation")):
        out["resource"] = raw_resource(shown(version))
    if result.warnings or result.advisories:  # Bundle.entry.response.outcome: this entry's hints and warnings
        response["outcome"] = operation_outcome([*result.warnings, *result.advisories])
    out["response"] = response
    return out


def _error_response(error: FhirError) -> dict[str, Any]:
    return {"response": {"status": _status(error.status), "outcome": operation_outcome(error.issues)}}


def _response_bundle(kind: str, entries: list[dict[str, Any]]) -> Result:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": kind}
    if entries:
        bundle["entry"] = entries
    return Result(status=200, body=bundle)
