"""Search parameter definitions, loaded from SearchParameter resources in profiles/ (data, not code).

profiles/search-parameters.json holds the official R4 core definitions for our types (HL7, CC0);
any other profiles/*.json file with SearchParameter resources (ours, later) is merged in. Expressions
are rewritten once here where fhirpathpy needs it (`(X as T)` on several items -> `X.ofType(T)`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models as fhirpath_models

from ..resource_types import SUPPORTED_TYPES

_AS_TYPE = re.compile(r"\(([A-Za-z][A-Za-z0-9.]*) as ([A-Za-z]+)\)")


def rewrite_expression(expression: str) -> str:
    """Make an R4 expression evaluable by fhirpathpy: `(a.b as T)` raises there on several items."""
    return _AS_TYPE.sub(lambda m: f"{m.group(1)}.ofType({m.group(2)})", expression)


def _expression_for(expression: str, resource_type: str) -> str:
    """Keep only the union branches that apply to this type (shared parameters list many types)."""
    branches = [b.strip() for b in expression.split(" | ")]
    mine = [b for b in branches if b.lstrip("(").startswith((f"{resource_type}.", "Resource."))]
    return " | ".join(mine) if mine else expression


@dataclass(frozen=True)
class SearchParameter:
    """One parameter as it applies to one resource type."""

    code: str
    type: str
    resource_type: str
    expression: str
    url: str
    evaluate: Callable[[dict[str, Any]], list[Any]] = field(compare=False, repr=False)


class SearchParameterRegistry:
    """Definitions by (resource type, code). Only parameter types with an indexer are registered."""

    def __init__(self, profiles_dir: Path, indexable_types: frozenset[str]) -> None:
        self._by_type: dict[str, dict[str, SearchParameter]] = {t: {} for t in SUPPORTED_TYPES}
        model = fhirpath_models["r4"]
        for definition in self._definitions(profiles_dir):
            if definition.get("type") not in indexable_types or not definition.get("expression"):
                continue
            bases = definition.get("base", [])
            targets = SUPPORTED_TYPES if ({"Resource", "DomainResource"} & set(bases)) else bases
            for rtype in targets:
                if rtype not in self._by_type:
                    continue
                expression = rewrite_expression(_expression_for(definition["expression"], rtype))
                compiled = compile_fhirpath(expression, model)
                self._by_type[rtype][definition["code"]] = SearchParameter(
                    code=definition["code"], type=definition["type"], resource_type=rtype,
                    expression=expression, url=definition.get("url", ""), evaluate=compiled,
                )

    @staticmethod
    def _definitions(profiles_dir: Path) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for path in sorted(profiles_dir.glob("*.json")):
            if path.name == "fhir.schema.v4.json":
                continue
            data = json.loads(path.read_text(encoding="utf-8"))
            candidates = [e.get("resource", {}) for e in data.get("entry", [])] if data.get(
                "resourceType") == "Bundle" else [data]
            found.extend(r for r in candidates if r.get("resourceType") == "SearchParameter")
        return found

    def for_type(self, resource_type: str) -> dict[str, SearchParameter]:
        return self._by_type.get(resource_type, {})

    def get(self, resource_type: str, code: str) -> SearchParameter | None:
        return self._by_type.get(resource_type, {}).get(code)
