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

from ...config import DEFAULT_CANONICAL
from ..resource_types import SUPPORTED_TYPES

log = logging.getLogger(__name__)

RESOLVED_BY = "/StructureDefinition/hr-resolved-by"
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


_STEP = re.compile(
    r"where\(reference\.matches\('(?P<regex>[^'\\]*)'\)\)"    # where(reference.matches('...'))
    r"|where\((?P<field>[a-z][A-Za-z]*)='(?P<literal>[^'\\]*)'\)"  # where(system='...')
    r"|(?P<name>[a-z][A-Za-z0-9]*)(?:\.ofType\((?P<type>[A-Za-z]+)\))?")  # element, or element.ofType(T)

Step = Callable[[Any], list[Any]]


def schema_types(schema_path: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(choice element names, data type names) of the types we serve, read from the official JSON schema.
    A choice element (value[x], effective[x]...) is a property base+Type whose base does not exist.
    Conservative: a false positive only makes the fast path look for typed variants too."""
    definitions = json.loads(schema_path.read_text(encoding="utf-8"))["definitions"]
    type_names = frozenset(name[0].upper() + name[1:] for name in definitions)
    resources = {n for n, d in definitions.items() if isinstance(d, dict) and "resourceType" in d.get("properties", {})}
    choices: set[str] = set()
    for name, definition in definitions.items():
        owner = name.split("_")[0]
        if owner in resources and owner not in SUPPORTED_TYPES:
            continue
        properties = definition.get("properties", {}) if isinstance(definition, dict) else {}
        for prop in properties:
            for cut in range(1, len(prop)):
                if prop[cut].isupper() and prop[cut:] in type_names and prop[:cut] not in properties:
                    choices.add(prop[:cut])
    return frozenset(choices), type_names


def compile_path(expression: str, resource_type: str | None, choices: frozenset[str] = frozenset(),
                 type_names: frozenset[str] = frozenset()) -> Callable[[Any], list[Any]] | None:
    """A direct evaluator for path expressions such as `Observation.code | Observation.value.ofType(Quantity)`,
    `Observation.effective` (a choice: whichever typed variant is present), `X.coding.where(system='...')` and
    `X.subject.where(reference.matches('...'))`: about 20x faster than the general engine. None for anything
    else (exists(), resolve(), operators...), which fhirpathpy then evaluates. tests/test_search_parameters.py
    proves both agree on the R4 examples and on our own resources."""
    branches: list[list[Step]] = []
    for branch in expression.split(" | "):
        branch = branch.strip()
        if resource_type is not None:
            if branch != resource_type and not branch.startswith(resource_type + "."):
                return None
            branch = branch[len(resource_type) + 1:]
        steps = _steps(branch, choices, type_names)
        if steps is None or (resource_type is None and not steps):
            return None
        branches.append(steps)

    def evaluate(resource: Any) -> list[Any]:
        out: list[Any] = []
        for steps in branches:
            nodes = [resource]
            for step in steps:
                nodes = [value for node in nodes for value in step(node)]
            if len(branches) == 1:
                return nodes
            out.extend(n for n in nodes if n not in out)  # `|` is a union: duplicates are removed
        return out

    return evaluate


def _steps(path: str, choices: frozenset[str], type_names: frozenset[str]) -> list[Step] | None:
    steps: list[Step] = []
    position = 0
    while position < len(path):
        match = _STEP.match(path, position)
        if match is None:
            return None
        position = match.end()
        if position < len(path):
            if path[position] != ".":
                return None
            position += 1
            if position == len(path):
                return None
        if match.group("regex") is not None:
            steps.append(_reference_matches(re.compile(match.group("regex"), re.DOTALL)))
        elif match.group("field") is not None:
            steps.append(_field_equals(match.group("field"), match.group("literal")))
        elif match.group("type") is not None:
            name, type_name = match.group("name"), match.group("type")
            steps.append(_child(name + type_name[0].upper() + type_name[1:]))
        elif match.group("name") in choices:
            if not type_names:
                return None  # a choice element named without its type, and no type list to resolve it
            steps.append(_choice(match.group("name"), type_names))
        else:
            steps.append(_child(match.group("name")))
    return steps


def _items(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [] if value is None else [value]


def _child(key: str) -> Step:
    def step(node: Any) -> list[Any]:
        return _items(node.get(key)) if isinstance(node, dict) else []
    return step


def _choice(name: str, type_names: frozenset[str]) -> Step:
    """`effective` on {"effectiveDateTime": ...}: the element itself, else its typed variants."""
    def step(node: Any) -> list[Any]:
        if not isinstance(node, dict):
            return []
        if name in node:
            return _items(node[name])
        return [v for key, value in node.items()
                if key.startswith(name) and key[len(name):] in type_names for v in _items(value)]
    return step


def _field_equals(field_name: str, literal: str) -> Step:
    def step(node: Any) -> list[Any]:
        return [node] if isinstance(node, dict) and node.get(field_name) == literal else []
    return step


def _reference_matches(pattern: re.Pattern[str]) -> Step:
    def step(node: Any) -> list[Any]:
        reference = node.get("reference") if isinstance(node, dict) else None
        return [node] if isinstance(reference, str) and pattern.search(reference) else []
    return step


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
    # Resolved by a server service (hr-resolved-by) into references before the search runs, never indexed:
    # `becomes` is the reference parameter it turns into on this type ("" for the resources themselves).
    resolved_by: str | None = None
    becomes: str = ""


class SearchParameterRegistry:
    """Definitions by (resource type, code). Only parameter types with an indexer are registered."""

    def __init__(self, profiles_dir: Path, indexable_types: frozenset[str], canonical: str | None = None) -> None:
        self._canonical = canonical
        self._by_type: dict[str, dict[str, SearchParameter]] = {t: {} for t in SUPPORTED_TYPES}
        model = fhirpath_models["r4"]
        self._choices, self._type_names = schema_types(profiles_dir / "fhir.schema.v4.json")
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

    def _build(self, definition: dict[str, Any], rtype: str, model: Any,
               by_url: dict[Any, dict[str, Any]]) -> SearchParameter:
        resolved_by = next((e.get("valueCode") for e in definition.get("extension", [])
                            if isinstance(e, dict) and str(e.get("url", "")).endswith(RESOLVED_BY)), None)
        if resolved_by:
            path = expression_for(definition["expression"], rtype)
            return SearchParameter(code=definition["code"], type=definition["type"], resource_type=rtype,
                                   expression=path, url=definition.get("url", ""), evaluate=lambda _: [],
                                   resolved_by=resolved_by, becomes=path.partition(".")[2])
        expression = rewrite_expression(expression_for(definition["expression"], rtype))
        components = []
        for component in definition.get("component", []):
            target = by_url.get(component["definition"])
            if target is None:
                raise ValueError(f"component {component['definition']} is not defined")
            sub_expression = rewrite_component(component["expression"])
            components.append(SearchParameter(
                code=target["code"], type=target["type"], resource_type=rtype, expression=sub_expression,
                url=target["url"],
                evaluate=compile_path(sub_expression, None, self._choices, self._type_names)
                or compile_fhirpath(sub_expression, model)))
        return SearchParameter(
            code=definition["code"], type=definition["type"], resource_type=rtype, expression=expression,
            url=definition.get("url", ""),
            evaluate=compile_path(expression, rtype, self._choices, self._type_names)
            or compile_fhirpath(expression, model),
            targets=tuple(definition.get("target", [])), modifiers=tuple(definition.get("modifier", [])),
            components=tuple(components))

    def _definitions(self, profiles_dir: Path) -> list[dict[str, Any]]:
        from ...terminology.artifacts import load_folder

        resources = load_folder(profiles_dir, self._canonical or DEFAULT_CANONICAL)
        return [r for r in resources if r.get("resourceType") == "SearchParameter"]

    def for_type(self, resource_type: str) -> dict[str, SearchParameter]:
        return self._by_type.get(resource_type, {})

    def get(self, resource_type: str, code: str) -> SearchParameter | None:
        return self._by_type.get(resource_type, {}).get(code)
