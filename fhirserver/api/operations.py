"""Operations and the read-only conformance resources (CodeSystem, ValueSet, ConceptMap, StructureDefinition,
SearchParameter, CompartmentDefinition) served from the files in terminology/ and profiles/.

OPERATIONS is the one registry of operations: routes and the CapabilityStatement both come from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, request

from ..config import DEFAULT_CANONICAL
from ..fhir.errors import FhirError, Issue, bad_request, information, not_found, operation_outcome
from ..fhir.interactions.context import FhirContext, Result
from ..fhir.interactions.lastn import lastn
from ..fhir.interactions.writing import check_type
from ..fhir.json_format import loads
from ..fhir.operation_params import OperationInput, Param, parse
from ..fhir.resource_types import SUPPORTED_TYPES
from ..persons.everything import everything
from ..persons.match import match
from ..recognition.service import RecognitionService
from ..recognition.statistics import statistics
from ..security.audit import verify
from ..security.principal import current
from ..terminology import operations as terminology
from .negotiation import check_body_type, response_media_type
from .origin import fhir_base
from .responses import render, render_error

CONFORMANCE_TYPES = ("CodeSystem", "ValueSet", "ConceptMap", "StructureDefinition", "SearchParameter",
                     "CompartmentDefinition", "OperationDefinition")
SEARCHABLE = ("url", "name", "version", "status", "_id", "title")
HL7 = "http://hl7.org/fhir/OperationDefinition"
Handler = Callable[[FhirContext, RecognitionService, OperationInput, dict[str, Any] | None], dict[str, Any]]
CANONICAL_OD = f"{DEFAULT_CANONICAL}/OperationDefinition"


@dataclass(frozen=True)
class Operation:
    name: str
    resource_types: tuple[str, ...]
    instance: bool
    definition: str
    parameters: list[Param]
    handler: Handler
    type_level: bool = True
    system: bool = False
    post_only: bool = False


def _tx(fn: Callable[..., dict[str, Any]]) -> Handler:
    return lambda ctx, _recognition, inputs, instance: fn(ctx.terminology, inputs, instance)


def _recognize(ctx: FhirContext, recognition: RecognitionService, inputs: OperationInput,
               instance: dict[str, Any] | None) -> dict[str, Any]:
    assert instance is not None
    requester = inputs.require("requester")
    return recognition.recognize(ctx, instance["resourceType"], instance["id"], requester.get("reference", ""),
                                 inputs.get("date"), inputs.all("context"), inputs.get("mode", "check"))


def _evaluate(ctx: FhirContext, recognition: RecognitionService, inputs: OperationInput,
              instance: dict[str, Any] | None) -> dict[str, Any]:
    assert instance is not None
    evaluator = inputs.get("evaluator") or {}
    return recognition.evaluations.evaluate(ctx, recognition, instance["resourceType"], instance["id"],
                                            evaluator.get("reference"), inputs.get("evaluation"), inputs.get("note"))


def _duplicate_check(ctx: FhirContext, recognition: RecognitionService, inputs: OperationInput,
                     _instance: dict[str, Any] | None) -> dict[str, Any]:
    return recognition.duplicate_check(ctx, inputs.require("request"), inputs.all("context"),
                                       fhir_base(ctx.settings))


def _match(ctx: FhirContext, recognition: RecognitionService, inputs: OperationInput,
           _instance: dict[str, Any] | None) -> dict[str, Any]:
    return match(ctx, recognition.persons, inputs.require("resource"), bool(inputs.get("onlyCertainMatches", False)),
                 inputs.get("count"), fhir_base(ctx.settings))


def _everything(ctx: FhirContext, recognition: RecognitionService, inputs: OperationInput,
                instance: dict[str, Any] | None) -> dict[str, Any]:
    assert instance is not None
    given = {name: inputs.get(name) for name in ("start", "end", "_since", "_type", "_count", "_page")}
    return everything(ctx, recognition.persons, instance["id"], given,
                      fhir_base(ctx.settings))


def _statistics(ctx: FhirContext, recognition: RecognitionService, inputs: OperationInput,
                _instance: dict[str, Any] | None) -> dict[str, Any]:
    """A hospital sees its own statistics; the platform (system/ scopes, or authentication off) sees all."""
    organization = inputs.get("organization")
    p = current()
    if p is not None and not p.unrestricted and not any(s.context == "system" for s in p.scopes):
        own = p.organization
        if own is None:
            raise FhirError.of(403, "forbidden", "$statistics is for a hospital's own events (a token with an "
                                                 "organization) or for platform backends (system/ scopes).")
        asked = organization if organization is None or "/" in organization else f"Organization/{organization}"
        if asked not in (None, own):
            raise FhirError.of(403, "forbidden", "A hospital sees its own statistics; ask without organization, or "
                                                 "with your own.", "organization")
        organization = own
    return statistics(ctx, recognition.catalog, inputs.get("period-start"), inputs.get("period-end"),
                      inputs.get("region"), organization, inputs.get("category"), recognition.persons)


def _verify_chain(ctx: FhirContext, _recognition: RecognitionService, _inputs: OperationInput,
                  _instance: dict[str, Any] | None) -> dict[str, Any]:
    """The audit chain's state, as `fhirserver audit verify` reports it: for platform backends (system scopes)."""
    p = current()
    if p is not None and not p.unrestricted and not any(s.context == "system" for s in p.scopes):
        raise FhirError.of(403, "forbidden", "Only platform backends (system/ scopes) verify the audit chain.")
    problems = list(verify(ctx.store.audit, ctx.settings.canonical_base))
    head = ctx.store.audit.head() or {"seq": 0, "hash": ""}
    parts: list[dict[str, Any]] = [{"name": "intact", "valueBoolean": not problems},
                                   {"name": "events", "valueInteger": int(head["seq"])},
                                   {"name": "waiting", "valueInteger": ctx.store.audit.pending()}]
    if head.get("hash"):
        parts.append({"name": "head", "valueString": str(head["hash"])})
    parts += [{"name": "problem", "valueString": f"position {x.sequence}: {x.text}"} for x in problems[:100]]
    return {"resourceType": "Parameters", "parameter": parts}


def _lastn(ctx: FhirContext, _recognition: RecognitionService, inputs: OperationInput,
           instance: dict[str, Any] | None) -> dict[str, Any]:
    criteria = [(name, str(value)) for name in ("patient", "subject", "category", "code", "date")
                for value in inputs.all(name)]
    return lastn(ctx, fhir_base(ctx.settings), criteria, int(inputs.get("max", 1)))


def _validate(ctx: FhirContext, _recognition: RecognitionService, inputs: OperationInput,
              instance: dict[str, Any] | None) -> dict[str, Any]:
    """$validate: the resource (given or stored) against the FHIR rules and a profile; issues, not errors."""
    resource = inputs.get("resource") or instance
    if not isinstance(resource, dict) or not resource.get("resourceType"):
        raise bad_request("$validate needs a resource (POST it, or call it on [type]/[id]).", "resource")
    issues: list[Issue] = []
    try:
        ctx.validator.validate(dict(resource))
    except FhirError as error:
        issues += error.issues
    profile = inputs.get("profile")
    if profile is not None:
        url = ctx.profiles.resolve(profile)
        if url is None:
            raise FhirError.of(400, "not-supported", f"Profile {profile[:120]} is not known to this server.", "profile")
        issues += ctx.profiles.validate(resource, url)
    else:
        for claimed in (resource.get("meta") or {}).get("profile", []):
            url = ctx.profiles.resolve(claimed)
            if url:
                issues += ctx.profiles.validate(resource, url)
    return operation_outcome(issues) if issues else information("The resource is valid.")


OPERATIONS: tuple[Operation, ...] = (
    Operation("lookup", ("CodeSystem",), True, f"{HL7}/CodeSystem-lookup", terminology.LOOKUP, _tx(terminology.lookup)),
    Operation("validate-code", ("CodeSystem",), True, f"{HL7}/CodeSystem-validate-code", terminology.CS_VALIDATE,
              _tx(terminology.cs_validate_code)),
    Operation("subsumes", ("CodeSystem",), True, f"{HL7}/CodeSystem-subsumes", terminology.SUBSUMES,
              _tx(terminology.subsumes)),
    Operation("expand", ("ValueSet",), True, f"{HL7}/ValueSet-expand", terminology.EXPAND, _tx(terminology.expand)),
    Operation("validate-code", ("ValueSet",), True, f"{HL7}/ValueSet-validate-code", terminology.VS_VALIDATE,
              _tx(terminology.vs_validate_code)),
    Operation("translate", ("ConceptMap",), True, f"{HL7}/ConceptMap-translate", terminology.TRANSLATE,
              _tx(terminology.translate)),
    Operation("validate", SUPPORTED_TYPES, True, f"{HL7}/Resource-validate",
              [Param("resource", "resource"), Param("profile"), Param("mode")], _validate),
    Operation("recognize", ("DiagnosticReport", "ImagingStudy", "Observation"), True, f"{CANONICAL_OD}/hr-recognize",
              [Param("requester", "Reference"), Param("date"), Param("context", "CodeableConcept", repeats=True),
               Param("mode")], _recognize, type_level=False, post_only=True),
    Operation("evaluate", ("DiagnosticReport", "ImagingStudy", "Observation"), True, f"{CANONICAL_OD}/hr-evaluate",
              [Param("evaluator", "Reference"), Param("evaluation", "Coding"), Param("note")], _evaluate,
              type_level=False, post_only=True),
    Operation("duplicate-check", ("ServiceRequest",), False, f"{CANONICAL_OD}/hr-duplicate-check",
              [Param("request", "resource"), Param("context", "CodeableConcept", repeats=True)], _duplicate_check,
              post_only=True),
    Operation("match", ("Patient",), False, f"{HL7}/Patient-match",
              [Param("resource", "resource"), Param("onlyCertainMatches", "boolean"), Param("count", "integer")],
              _match, post_only=True),
    Operation("everything", ("Patient",), True, f"{HL7}/Patient-everything",
              [Param("start"), Param("end"), Param("_since"), Param("_type"), Param("_count", "integer"),
               Param("_page")], _everything, type_level=False),
    Operation("lastn", ("Observation",), False, f"{HL7}/Observation-lastn",
              [Param("max", "integer"), Param("patient"), Param("subject"), Param("category", repeats=True),
               Param("code", repeats=True), Param("date", repeats=True)], _lastn),
    Operation("verify-chain", ("AuditEvent",), False, f"{CANONICAL_OD}/hr-verify-chain", [], _verify_chain),
    Operation("statistics", (), False, f"{CANONICAL_OD}/hr-statistics",
              [Param("period-start"), Param("period-end"), Param("region"), Param("organization"), Param("category")],
              _statistics, type_level=False, system=True),
)


def _conformance(ctx: FhirContext, resource_type: str, resource_id: str) -> dict[str, Any]:
    for resource in ctx.conformance.get(resource_type, []):
        if resource["id"] == resource_id:
            return resource
    raise not_found(f"{resource_type}/{resource_id[:64]} does not exist.")


def _search_conformance(ctx: FhirContext, resource_type: str, base_url: str) -> dict[str, Any]:
    criteria = list(request.args.items(multi=True))
    unknown = [k for k, _ in criteria if k not in SEARCHABLE and k not in ("_format", "_pretty", "_count")]
    if unknown:
        raise FhirError(400, [Issue("not-supported", f"{resource_type} can be searched by {', '.join(SEARCHABLE)}; "
                                                     f"'{k}' is not supported.", expression=(k,)) for k in unknown])
    found = [r for r in ctx.conformance.get(resource_type, []) if all(
        str(r.get("id" if k == "_id" else k, "")) in v.split(",") for k, v in criteria if k in SEARCHABLE)]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(found),
                              "link": [{"relation": "self", "url": request.url}]}
    if found:
        bundle["entry"] = [{"fullUrl": f"{base_url}/{resource_type}/{r['id']}", "resource": r,
                            "search": {"mode": "match"}} for r in found]
    return bundle


def blueprint(ctx: FhirContext, recognition: RecognitionService) -> Blueprint:
    bp = Blueprint("operations", __name__)

    def base_url() -> str:
        return fhir_base(ctx.settings)

    def respond(produce: Callable[[], dict[str, Any]]) -> Response:
        try:
            response_media_type(request)
            return render(Result(status=200, body=produce()), request, base_url())
        except FhirError as error:
            return render_error(error, request)

    for resource_type in CONFORMANCE_TYPES:
        bp.add_url_rule(f"/{resource_type}", f"search_{resource_type}", methods=["GET"],
                        view_func=lambda rt=resource_type: respond(lambda: _search_conformance(ctx, rt, base_url())))
        bp.add_url_rule(f"/{resource_type}/<rid>", f"read_{resource_type}", methods=["GET"],
                        view_func=lambda rid, rt=resource_type: respond(lambda: _conformance(ctx, rt, rid)))

    def run(operation: Operation, resource_type: str, rid: str | None) -> Response:
        def produce() -> dict[str, Any]:
            instance = None
            if rid is not None:
                instance = _conformance(ctx, resource_type, rid) if resource_type in CONFORMANCE_TYPES \
                    else _stored(ctx, resource_type, rid)
            body = None
            if request.method == "POST":
                check_body_type(request)
                body = loads(request.get_data(cache=False))
                if not isinstance(body, dict):
                    raise bad_request("POST a Parameters resource to this operation.")
                if operation.name == "validate" and body.get("resourceType") != "Parameters":
                    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": body}]}
            inputs = parse(operation.parameters, list(request.args.items(multi=True)), body)
            return operation.handler(ctx, recognition, inputs, instance)
        return respond(produce)

    methods = ["GET", "POST"]
    for operation in OPERATIONS:
        allowed = ["POST"] if operation.post_only else methods
        if operation.system:
            bp.add_url_rule(f"/${operation.name}", f"op_{operation.name}_system".replace("-", "_"), methods=allowed,
                            view_func=lambda op=operation: run(op, "", None))
        for resource_type in operation.resource_types:
            levels = [("", False)] if operation.type_level else []
            levels += [("/<rid>", True)] if operation.instance else []
            for suffix, with_id in levels:
                rule = f"/{resource_type}{suffix}/${operation.name}"
                endpoint = f"op_{operation.name}_{resource_type}_{with_id}".replace("-", "_")
                bp.add_url_rule(rule, endpoint, methods=allowed,
                                view_func=lambda op=operation, rt=resource_type, **kw: run(op, rt, kw.get("rid")))
    return bp


def _stored(ctx: FhirContext, resource_type: str, rid: str) -> dict[str, Any]:
    check_type(resource_type)
    ctx.access.permit("r", resource_type)
    version = ctx.store.versions.read_current(resource_type, rid)
    if version is None or version.deleted or version.text is None or not ctx.access.disclose([version]):
        raise not_found(f"{resource_type}/{rid[:64]} does not exist.")
    return loads(version.text)


def capability_operations(resource_type: str, canonical: str = DEFAULT_CANONICAL) -> list[dict[str, str]]:
    """Operations of a type, or with resource_type "" the system-level ones (our definitions on `canonical`)."""
    chosen = [op for op in OPERATIONS if (op.system if not resource_type else resource_type in op.resource_types)]
    return [{"name": op.name, "definition": op.definition.replace(DEFAULT_CANONICAL, canonical)} for op in chosen]
