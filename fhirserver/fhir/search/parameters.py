"""Search parameter definitions, loaded from SearchParameter resources in profiles/ (data, not code).

profiles/search-parameters.json holds the official R4 core definitions for our types (HL7, CC0);
any other profiles/*.json file with SearchParameter resources (ours) is merged in. Expressions are
rewritten here, once, where fhirpathpy needs it:
  `(X as T)`                    -> `X.ofType(T)`       (fhirpathpy raises on several items)
  `X.where(resolve() is T)`     -> a test on the reference string (resolve() is not implemented)
  composite component `v.as(T)` -> `vT`                 (evaluated on sub-elements, without type context)
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models as fhirpath_models

from ..resource_types import SUPPORTED_TYPES

log = logging.getLogger(__name__)

_AS_TYPE = re.compile(r"\(([A-Za-z][A-Za-z0-9.]*) as ([A-Za-z]+)\)")
_RESOLVE_IS = re.compile(r"where\(resolve\(\) is ([A-Z][A-Za-z]+)\)")
_COMPONENT_AS = re.compile(r"\b([a-z][A-Za-z]*)\.as\(([A-Za-z]+)\)")


def rewrite_expression(expression: str) -> str:
    """Make an R4 expression evaluable by fhirpathpy (see the module docstring)."""
    expression = _AS_TYPE.sub(lambda m: f"{m.group(1)}.ofType({m.group(2)})", expression)
    return _RESOLVE_IS.sub(
        lambda m: f"where(reference.matches('(^|/){m.group(1)}/[^/]+(/_history/.*)?$'))", expression)


def rewrite_component(expression: str) -> str:
    return _COMPONENT_AS.sub(lambda m: m.group(1) + m.group(2)[0].upper() + m.group(2)[1:], expression)


def expression_for(expression: str, resource_type: str) -> str:
    """Keep only the union branches that apply to this type (shared parameters list many types), and
    name the type instead of `Resource.` (fhirpathpy does not match an Observation to `Resource`)."""
    branches = [b.strip() for b in expression.split(" | ")]
    mine = [b for b in branches
            if b.lstrip("(") == resource_type or b.lstrip("(").startswith((f"{resource_type}.", "Resource."))]
    chosen = " | ".join(mine) if mine else expression
    return re.sub(r"(^|[(| ])Resource\.", lambda m: f"{m.group(1)}{resource_type}.", chosen)


@dataclass(frozen=True)
class SearchParameter:
    """One parameter as it applies to one resource type."""

    code: str
    type: str
    resource_type: str
    expression: str
    url: str
    evaluate: Callable[[Any], list[Any]] = field(compare=False, repr=False)
    targets: tuple[str, ...] = ()
    modifiers: tuple[str, ...] = ()
    components: tuple[SearchParameter, ...] = ()


class SearchParameterRegistry:
    """Definitions by (resource type, code). Only parameter types with an indexer are registered."""

    def __init__(self, profiles_dir: Path, indexable_types: frozenset[str]) -> None:
        self._by_type: dict[str, dict[str, SearchParameter]] = {t: {} for t in SUPPORTED_TYPES}
        model = fhirpath_models["r4"]
        definitions = self._definitions(profiles_dir)
        by_url = {d.get("url"): d for d in definitions}
        for definition in definitions:
            if definition.get("type") not in indexable_types or not definition.get("expression"):
                continue
            bases = definition.get("base", [])
            targets = SUPPORTED_TYPES if ({"Resource", "DomainResource"} & set(bases)) else bases
            for rtype in targets:
                if rtype not in self._by_type:
                    continue
                try:
                    parameter = self._build(definition, rtype, model, by_url)
                except Exception as exc:  # noqa: BLE001 - one bad definition must not stop the server
                    log.warning("search parameter %s skipped for %s: %s", definition.get("url"), rtype, exc)
                    continue
                self._by_type[rtype][definition["code"]] = parameter

    @staticmethod
    def _build(definition: dict[str, Any], rtype: str, model: Any,
               by_url: dict[Any, dict[str, Any]]) -> SearchParameter:
        expression = rewrite_expression(expression_for(definition["expression"], rtype))
        components = []
        for component in definition.get("component", []):
            target = by_url.get(component["definition"])
            if target is None:
                raise ValueError(f"component {component['definition']} is not defined")
            sub_expression = rewrite_component(component["expression"])
            components.append(SearchParameter(
                code=target["code"], type=target["type"], resource_type=rtype, expression=sub_expression,
                url=target["url"], evaluate=compile_fhirpath(sub_expression, model)))
        return SearchParameter(
            code=definition["code"], type=definition["type"], resource_type=rtype, expression=expression,
            url=definition.get("url", ""), evaluate=compile_fhirpath(expression, model),
            targets=tuple(definition.get("target", [])), modifiers=tuple(definition.get("modifier", [])),
            components=tuple(components))

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
