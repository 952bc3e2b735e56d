"""Profile validation driven by the StructureDefinitions in profiles/ (differentials; nothing per profile in code).

Checks, per differential element: cardinality (per parent instance), fixed[x] and pattern[x] values,
required bindings (through the terminology service), Reference target types, and extension slices
(each matching extension validated against its own StructureDefinition). Issues carry FHIRPath
locations. http://hl7.org/fhir/R4/profiling.html
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import Issue

# A required binding's check: (valueSet url, system, code) -> member?
BindingCheck = Callable[[str, str | None, str], bool]


class ProfileValidator:
    def __init__(self, structure_definitions: list[dict[str, Any]], in_value_set: BindingCheck) -> None:
        self._by_url = {sd["url"]: sd for sd in structure_definitions if sd.get("differential")}
        self._in_value_set = in_value_set

    def profiles_for(self, resource_type: str) -> list[str]:
        return [u for u, sd in self._by_url.items() if sd.get("type") == resource_type and sd.get("kind") == "resource"]

    def resolve(self, reference: str) -> str | None:
        """A profile named by url, url|version, or id."""
        url = reference.split("|", 1)[0]
        if url in self._by_url:
            return url
        return next((u for u, sd in self._by_url.items() if sd["id"] == reference), None)

    def validate(self, resource: dict[str, Any], url: str) -> list[Issue]:
        sd = self._by_url[url.split("|", 1)[0]]
        if sd.get("type") != resource.get("resourceType"):
            rtype = str(resource.get("resourceType"))
            return [Issue("invalid", f"Profile {sd['url']} is for {sd.get('type')}, not {rtype}.", expression=(rtype,))]
        return self._elements(sd, resource, str(resource["resourceType"]))

    # -- engine --------------------------------------------------------------------------------------------
    def _elements(self, sd: dict[str, Any], root: Any, root_path: str) -> list[Issue]:
        issues: list[Issue] = []
        type_name = sd["type"]
        for element in sd["differential"]["element"]:
            path = element["path"]
            if path == type_name or ("slicing" in element and "sliceName" not in element):
                continue
            relative = path.split(".")[1:]
            if element.get("sliceName"):
                issues += self._slice(element, root, relative, root_path)
                continue
            for parent, parent_path in _parents(root, relative[:-1], root_path):
                name = relative[-1]
                values, where = _children(parent, name, parent_path)
                issues += self._cardinality(element, values, where)
                for index, value in enumerate(values):
                    location = f"{where}[{index}]" if len(values) > 1 else where
                    issues += self._value(element, value, location)
        return issues

    def _cardinality(self, element: dict[str, Any], values: list[Any], where: str) -> list[Issue]:
        low, high = element.get("min", 0), element.get("max")
        if len(values) < low:
            return [Issue("required", f"{where} is required by the profile (at least {low}, found {len(values)}).",
                          expression=(where,))]
        if high not in (None, "*") and len(values) > int(high):
            return [Issue("structure", f"{where} may appear at most {high} time(s) in this profile, found "
                                       f"{len(values)}.", expression=(where,))]
        return []

    def _value(self, element: dict[str, Any], value: Any, where: str) -> list[Issue]:
        issues: list[Issue] = []
        for key, expected in element.items():
            if key.startswith("fixed") and value != expected:
                issues.append(Issue("value", f"{where} must be exactly {expected!r}.", expression=(where,)))
            if key.startswith("pattern") and not _contains(value, expected):
                issues.append(Issue("value", f"{where} must match the pattern {expected!r}.", expression=(where,)))
        binding = element.get("binding")
        if binding and binding.get("strength") == "required":
            issues += self._binding(binding["valueSet"], value, where)
        for allowed in element.get("type", []):
            targets = [p.rsplit("/", 1)[-1] for p in allowed.get("targetProfile", [])]
            if allowed.get("code") == "Reference" and targets and isinstance(value, dict):
                reference = value.get("reference", "")
                kind = reference.split("/")[-2] if reference.count("/") >= 1 and not reference.startswith("#") else None
                if kind is not None and kind not in targets:
                    issues.append(Issue("invalid", f"{where} must reference {' or '.join(targets)}, not {kind}.",
                                        expression=(where,)))
        return issues

    def _binding(self, value_set: str, value: Any, where: str) -> list[Issue]:
        if isinstance(value, str):
            codings = [(None, value)]
        elif isinstance(value, dict) and "coding" in value:
            codings = [(c.get("system"), c.get("code")) for c in value.get("coding", []) if c.get("code")]
        elif isinstance(value, dict) and "code" in value:
            codings = [(value.get("system"), value["code"])]
        else:
            codings = []
        if any(self._in_value_set(value_set, system, code) for system, code in codings):
            return []
        shown = ", ".join(f"{s}|{c}" if s else c for s, c in codings) or "no code"
        return [Issue("code-invalid", f"{where} has {shown[:200]}, which is not in the required ValueSet {value_set}.",
                      expression=(where,))]

    def _slice(self, element: dict[str, Any], root: Any, relative: list[str], root_path: str) -> list[Issue]:
        """Extension slices: the extensions whose url is the slice's profile, validated by that profile."""
        profiles = [p for t in element.get("type", []) for p in t.get("profile", [])]
        if relative[-1] not in ("extension", "modifierExtension") or not profiles:
            return []
        url = profiles[0]
        issues: list[Issue] = []
        for parent, parent_path in _parents(root, relative[:-1], root_path):
            extensions = [e for e in (parent.get(relative[-1]) or []) if isinstance(e, dict) and e.get("url") == url]
            where = f"{parent_path}.{relative[-1]}('{url}')"
            issues += self._cardinality(element, extensions, where)
            definition = self._by_url.get(url)
            for extension in extensions if definition else []:
                issues += self._elements(definition, extension, where)
        return issues


def _parents(root: Any, steps: list[str], path: str) -> list[tuple[dict[str, Any], str]]:
    nodes = [(root, path)]
    for step in steps:
        following = []
        for node, where in nodes:
            values, location = _children(node, step, where)
            following += [(v, f"{location}[{i}]" if len(values) > 1 else location) for i, v in enumerate(values)
                          if isinstance(v, dict)]
        nodes = following
    return [(n, w) for n, w in nodes if isinstance(n, dict)]


def _children(node: Any, name: str, path: str) -> tuple[list[Any], str]:
    if not isinstance(node, dict):
        return [], f"{path}.{name}"
    if name.endswith("[x]"):
        base = name[:-3]
        keys = [k for k in node if k.startswith(base) and len(k) > len(base) and k[len(base)].isupper()]
        values = [node[k] for k in keys]
        return values, f"{path}.{keys[0] if keys else base}"
    value = node.get(name)
    values = value if isinstance(value, list) else ([] if value is None else [value])
    return values, f"{path}.{name}"


def _contains(value: Any, pattern: Any) -> bool:
    """FHIR pattern[x]: every element of the pattern appears in the value (lists: each pattern item matches one)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(_contains(value.get(k), v) for k, v in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(_contains(v, p) for v in value) for p in pattern)
    return value == pattern
