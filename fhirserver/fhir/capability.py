"""The CapabilityStatement, generated from what the server really registers (never hand-written).

Types from resource_types, interactions from the REST route table, search parameters from the
registry loaded from profiles/, compartments from the CompartmentDefinitions there.
http://hl7.org/fhir/R4/capabilitystatement.html
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from .. import __version__
from .interactions.context import FhirContext
from .resource_types import SUPPORTED_TYPES
from .search.query import MODIFIERS, VALUE_FORMS

_TYPE_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                      "create", "search-type")


def _documentation(kind: str) -> str:
    modifiers = ", ".join(f":{m}" for m in sorted(MODIFIERS.get(kind, ())))
    return f"{VALUE_FORMS.get(kind, '')}. Modifiers: {modifiers}." if modifiers else VALUE_FORMS.get(kind, "")


def capability_statement(ctx: FhirContext, registered: set[str], base_url: str,
                         operations: Callable[[str], list[dict[str, str]]] | None = None) -> dict[str, Any]:
    resources = []
    for rtype in SUPPORTED_TYPES:
        parameters = ctx.registry.for_type(rtype)
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": code} for code in _TYPE_INTERACTIONS if code in registered],
            "versioning": "versioned-update",
            "readHistory": "vread" in registered,
            "updateCreate": "update" in registered,
            "conditionalCreate": "create" in registered,
            # read answers 304 to If-None-Match and If-Modified-Since (interactions/read.py)
            "conditionalRead": "full-support" if "read" in registered else "not-supported",
            "conditionalUpdate": "conditional-update" in registered,
            "conditionalDelete": "single" if "conditional-delete" in registered else "not-supported",
        }
        if "search-type" in registered:
            references = sorted(c for c, p in parameters.items() if p.type == "reference")
            includes = [f"{rtype}:{c}" for c in references]
            revincludes = sorted(f"{other}:{c}" for other in SUPPORTED_TYPES
                                 for c, p in ctx.registry.for_type(other).items()
                                 if p.type == "reference" and (not p.targets or rtype in p.targets))
            for key, values in (("searchInclude", includes), ("searchRevInclude", revincludes)):
                if values:  # FHIR JSON has no empty arrays
                    entry[key] = values
            params = [{"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id",
                       "type": "token", "documentation": "logical id; :not, :missing"}]
            params += [{"name": code, "definition": p.url, "type": p.type, "documentation": _documentation(p.type)}
                       for code, p in sorted(parameters.items()) if code != "_id"]
            entry["searchParam"] = params
        if operations is not None and operations(rtype):
            entry["operation"] = operations(rtype)
        resources.append(entry)
    for rtype in ("CodeSystem", "ValueSet", "ConceptMap", "StructureDefinition", "SearchParameter",
                  "CompartmentDefinition", "OperationDefinition"):
        served: dict[str, Any] = {"type": rtype, "interaction": [{"code": "read"}, {"code": "search-type"}],
                                  "searchParam": [{"name": n, "type": "token" if n in ("status", "_id") else "string"}
                                                  for n in ("url", "name", "version", "status", "_id", "title")]}
        if operations is not None and operations(rtype):
            served["operation"] = operations(rtype)
        resources.append(served)
    rest: dict[str, Any] = {"mode": "server", "resource": resources}
    system = [*(["transaction", "batch"] if "transaction" in registered else []),
              *(code for code in ("search-system", "history-system") if code in registered)]
    if system:
        rest["interaction"] = [{"code": code} for code in system]
    if operations is not None and operations(""):
        rest["operation"] = operations("")
    if "search-compartment" in registered:
        rest["compartment"] = [f"http://hl7.org/fhir/CompartmentDefinition/{c.lower()}"
                               for c in sorted(ctx.compartments.compartments())]
    rest["security"] = _security(ctx)
    rest["searchParam"] = [{"name": "_federated", "type": "token", "documentation": (
        "true: also search every active peer node (Endpoint resources), the patient given as patient=Patient/<id> "
        "or patient.identifier=<system>|<value>; entries carry the extension hr-origin; failed peers are "
        "OperationOutcome entries")}]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date.today().isoformat(),
        "kind": "instance",
        "software": {"name": "fhirserver", "version": __version__},
        "implementation": {"description": "FHIR R4 server for mutual recognition of test and imaging results",
                           "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [rest],
    }


def _security(ctx: FhirContext) -> dict[str, Any]:
    """How clients authenticate: SMART on FHIR bearer tokens, or nothing when FHIRSERVER_AUTH=off."""
    settings = ctx.settings
    cors = bool(settings.cors_origins)
    if settings.auth != "on":
        return {"cors": cors, "description": "Authentication is off (FHIRSERVER_AUTH=off): development only."}
    endpoints = (("token", settings.auth_token_endpoint), ("authorize", settings.auth_authorization_endpoint))
    uris = [{"url": name, "valueUri": url} for name, url in endpoints if url]
    return {
        "cors": cors,
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                 "code": "SMART-on-FHIR"}]}],
        **({"extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                           "extension": uris}]} if uris else {}),
        "description": "Bearer JWTs with SMART v2 (and v1) scopes; the organization claim decides ownership, "
                       "patients' Consents decide what other organizations see; every request is audited."}
