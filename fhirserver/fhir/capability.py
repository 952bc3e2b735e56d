"""The CapabilityStatement, generated from what the server really registers (never hand-written).

Types from resource_types, interactions from the REST route table, search parameters from the
registry loaded from profiles/. http://hl7.org/fhir/R4/capabilitystatement.html
"""

from __future__ import annotations

from datetime import date
from typing import Any

from .. import __version__
from .interactions.context import FhirContext
from .resource_types import SUPPORTED_TYPES

_TYPE_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                      "create", "search-type")
_SEARCH_DOCS = {"token": "system|code, code or |code; comma for OR, repetition for AND"}


def capability_statement(ctx: FhirContext, registered: set[str], base_url: str) -> dict[str, Any]:
    resources = []
    for rtype in SUPPORTED_TYPES:
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": code} for code in _TYPE_INTERACTIONS if code in registered],
            "versioning": "versioned-update",
            "readHistory": "vread" in registered,
            "updateCreate": "update" in registered,
            "conditionalCreate": "create" in registered,
            "conditionalRead": "not-supported",
            "conditionalUpdate": "conditional-update" in registered,
            "conditionalDelete": "single" if "conditional-delete" in registered else "not-supported",
        }
        if "search-type" in registered:
            params = [{"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id",
                       "type": "token"}]
            for code, parameter in sorted(ctx.registry.for_type(rtype).items()):
                if code == "_id":
                    continue
                params.append({"name": code, "definition": parameter.url, "type": parameter.type,
                               "documentation": _SEARCH_DOCS.get(parameter.type, "")})
            entry["searchParam"] = params
        resources.append(entry)
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
        "patchFormat": ["application/json-patch+json"],
        "rest": [{"mode": "server", "resource": resources}],
    }
