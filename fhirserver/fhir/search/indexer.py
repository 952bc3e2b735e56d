"""Index values computed at write time from the search parameter definitions.

Stored beside the resource in one document (`sp.<code>`), so the resource and its index never
disagree. Token values are flattened to strings a plain multikey index serves:
  "system|code" (exact), "code" (any system), "|code" (explicitly no system).
See http://hl7.org/fhir/R4/search.html#token for the three query forms these answer.
"""

from __future__ import annotations

from typing import Any

from ...store.indexes import field_name
from ..resource_types import SUPPORTED_TYPES
from .parameters import SearchParameter, SearchParameterRegistry

INDEXABLE_TYPES = frozenset({"token"})


def _token_strings(value: Any) -> list[str]:
    """Flatten one FHIRPath result (Coding, CodeableConcept, Identifier, ContactPoint, code, boolean)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
        return [text, f"|{text}"]
    if isinstance(value, str):
        return [value, f"|{value}"]
    if not isinstance(value, dict):
        return []
    if "coding" in value:  # CodeableConcept
        return [s for coding in value.get("coding", []) for s in _token_strings(coding)]
    code = value.get("code", value.get("value"))
    if not isinstance(code, str) or not code:
        return []
    system = value.get("system")
    return [f"{system}|{code}", code] if system else [f"|{code}", code]


def index_values(parameter: SearchParameter, resource: dict[str, Any]) -> list[str]:
    try:
        results = parameter.evaluate(resource)
    except Exception:
        return []
    out: list[str] = []
    for value in results:
        for token in _token_strings(value):
            if token not in out:
                out.append(token)
    return out


class ResourceIndexer:
    """Builds the `sp` sub-document stored with each current version."""

    def __init__(self, registry: SearchParameterRegistry) -> None:
        self._registry = registry

    def index(self, resource: dict[str, Any]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for code, parameter in self._registry.for_type(resource["resourceType"]).items():
            if code == "_id":
                continue  # the logical id is the document _id
            values = index_values(parameter, resource)
            if values:
                out[field_name(code)] = values
        return out


# Parameters that also get a MongoDB index (all indexed parameters are stored; indexes cost writes).
DATABASE_INDEXED = ("identifier",)


def database_indexed_parameters(registry: SearchParameterRegistry) -> dict[str, list[str]]:
    return {t: [c for c in DATABASE_INDEXED if registry.get(t, c)] for t in SUPPORTED_TYPES}
