"""The terminology service: $lookup, $validate-code, $expand, $translate, $subsumes over the shipped
CodeSystems, ValueSets and ConceptMaps (http://hl7.org/fhir/R4/terminology-service.html).

Everything is loaded once at start-up into plain dictionaries; expansions are computed on first use
and cached (the artifacts do not change while the server runs).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..fhir.errors import FhirError
from ..fhir.search.values import normalize_text


@dataclass
class Concept:
    system: str
    code: str
    display: str
    definition: str = ""
    designations: list[dict[str, Any]] = field(default_factory=list)
    properties: dict[str, list[Any]] = field(default_factory=dict)
    parent: str | None = None
    children: list[str] = field(default_factory=list)

    def value(self, name: str) -> Any:
        values = self.properties.get(name)
        return values[0] if values else None


@dataclass
class CodeSystemIndex:
    resource: dict[str, Any]
    concepts: dict[str, Concept]

    @property
    def url(self) -> str:
        return str(self.resource["url"])

    def ancestors(self, code: str) -> list[str]:
        out, current = [], self.concepts[code].parent
        while current is not None:
            out.append(current)
            current = self.concepts[current].parent
        return out


@dataclass(frozen=True)
class Member:
    """One concept of an expanded ValueSet, with scope-level extensions (e.g. a validity override)."""

    system: str
    code: str
    display: str
    extensions: tuple[dict[str, Any], ...] = ()


EFFECTIVE_PERIOD = "http://hl7.org/fhir/StructureDefinition/resource-effectivePeriod"


def versioned(resource: dict[str, Any]) -> str:
    """A resource's canonical with its version (url|version), or the bare url when it has none."""
    version = resource.get("version")
    return f"{resource['url']}|{version}" if version else str(resource["url"])


def effective_period(resource: dict[str, Any]) -> dict[str, str]:
    """The period a version is in force (the core extension: R4 ValueSet has no effectivePeriod element)."""
    return next((e.get("valuePeriod") or {} for e in resource.get("extension", []) if e.get("url") == EFFECTIVE_PERIOD),
                {})


def _property_value(prop: dict[str, Any]) -> Any:
    for key, value in prop.items():
        if key.startswith("value"):
            return value
    return None


def _not_found(kind: str, what: str) -> FhirError:
    return FhirError.of(404, "not-found", f"{kind} {what[:120]} is not known to this server.")


class TerminologyService:
    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.resources = resources
        self.code_systems: dict[str, CodeSystemIndex] = {}
        self.value_sets: dict[str, dict[str, Any]] = {}  # url -> the current version
        self.value_set_versions: dict[str, list[dict[str, Any]]] = {}  # url -> every version, oldest first
        self.concept_maps: dict[str, dict[str, Any]] = {}
        self._by_id: dict[tuple[str, str], dict[str, Any]] = {}
        for resource in resources:
            self._by_id[(resource["resourceType"], resource["id"])] = resource
            if resource["resourceType"] == "CodeSystem":
                self.code_systems[resource["url"]] = self._index(resource)
            elif resource["resourceType"] == "ValueSet":
                self.value_set_versions.setdefault(resource["url"], []).append(resource)
            elif resource["resourceType"] == "ConceptMap":
                self.concept_maps[resource["url"]] = resource
        for url, versions in self.value_set_versions.items():
            versions.sort(key=lambda vs: (effective_period(vs).get("start") or "", str(vs.get("version", ""))))
            self.value_sets[url] = versions[-1]
        self._expansions: dict[str, list[Member]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _index(resource: dict[str, Any]) -> CodeSystemIndex:
        concepts: dict[str, Concept] = {}

        def walk(nodes: list[dict[str, Any]], parent: str | None) -> None:
            for node in nodes:
                props: dict[str, list[Any]] = {}
                for prop in node.get("property", []):
                    props.setdefault(prop["code"], []).append(_property_value(prop))
                concept = Concept(system=resource["url"], code=node["code"], display=node.get("display", ""),
                                  definition=node.get("definition", ""), designations=node.get("designation", []),
                                  properties=props, parent=parent)
                concepts[node["code"]] = concept
                if parent is not None:
                    concepts[parent].children.append(node["code"])
                walk(node.get("concept", []), node["code"])

        walk(resource.get("concept", []), None)
        return CodeSystemIndex(resource=resource, concepts=concepts)

    # -- resources -------------------------------------------------------------------------------------
    def get(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        return self._by_id.get((resource_type, resource_id))

    def code_system(self, system: str) -> CodeSystemIndex:
        index = self.code_systems.get(system)
        if index is None:
            raise _not_found("CodeSystem", system)
        return index

    def value_set(self, url: str) -> dict[str, Any]:
        """The ValueSet of a canonical: url|version names one version, a bare url the current one."""
        bare, _, version = url.partition("|")
        if version:
            vs = next((v for v in self.value_set_versions.get(bare, []) if str(v.get("version")) == version), None)
        else:
            vs = self.value_sets.get(bare)
        if vs is None:
            raise _not_found("ValueSet", url)
        return vs

    def concept_map(self, url: str) -> dict[str, Any]:
        cm = self.concept_maps.get(url.split("|", 1)[0])
        if cm is None:
            raise _not_found("ConceptMap", url)
        return cm

    # -- CodeSystem operations -----------------------------------------------------------------------------
    def lookup(self, system: str, code: str) -> Concept:
        concept = self.code_system(system).concepts.get(code)
        if concept is None:
            raise FhirError.of(404, "not-found", f"Code '{code[:64]}' is not in the CodeSystem {system}.", "code")
        return concept

    def validate_in_code_system(self, system: str, code: str, display: str | None) -> tuple[bool, str, str | None]:
        concept = self.code_system(system).concepts.get(code)
        if concept is None:
            return False, f"Code '{code[:64]}' is not in the CodeSystem {system}.", None
        if display and not self._display_matches(concept, display):
            return False, f"'{display[:64]}' is not a display of {code}; expected '{concept.display}'.", concept.display
        return True, "", concept.display

    @staticmethod
    def _display_matches(concept: Concept, display: str) -> bool:
        names = [concept.display, *(d.get("value", "") for d in concept.designations)]
        return normalize_text(display) in {normalize_text(n) for n in names}

    def subsumes(self, system: str, code_a: str, code_b: str) -> str:
        index = self.code_system(system)
        for code in (code_a, code_b):
            if code not in index.concepts:
                raise FhirError.of(400, "not-found", f"Code '{code[:64]}' is not in the CodeSystem {system}.", "code")
        if code_a == code_b:
            return "equivalent"
        if code_a in index.ancestors(code_b):
            return "subsumes"
        if code_b in index.ancestors(code_a):
            return "subsumed-by"
        return "not-subsumed"

    # -- ValueSet operations --------------------------------------------------------------------------------
    def members(self, url: str) -> list[Member]:
        """The expansion of a canonical (url|version for one version, a bare url for the current one)."""
        cached = self._expansions.get(url)
        if cached is None:
            with self._lock:
                cached = self._expansions.get(url)
                if cached is None:
                    cached = self._compute(self.value_set(url))
                    self._expansions[url] = cached
        return cached

    def _compute(self, vs: dict[str, Any]) -> list[Member]:
        compose = vs.get("compose", {})
        included: dict[tuple[str, str], Member] = {}
        for include in compose.get("include", []):
            for member in self._include(include):
                included.setdefault((member.system, member.code), member)
        for exclude in compose.get("exclude", []):
            for member in self._include(exclude):
                included.pop((member.system, member.code), None)
        return list(included.values())

    def _include(self, include: dict[str, Any]) -> list[Member]:
        members: list[Member] = []
        for url in include.get("valueSet", []):
            members.extend(self.members(url))
        system = include.get("system")
        if not system:
            return members
        index = self.code_system(system)
        if include.get("concept"):
            for item in include["concept"]:
                concept = index.concepts.get(item["code"])
                if concept is not None:
                    members.append(Member(system, concept.code, item.get("display", concept.display),
                                          tuple(item.get("extension", []))))
            return members
        concepts = list(index.concepts.values())
        for rule in include.get("filter", []):
            concepts = [c for c in concepts if self._passes(index, c, rule)]
        return members + [Member(system, c.code, c.display) for c in concepts]

    @staticmethod
    def _passes(index: CodeSystemIndex, concept: Concept, rule: dict[str, Any]) -> bool:
        prop, op, value = rule.get("property"), rule.get("op"), rule.get("value")
        if prop == "concept" and op == "is-a":
            return concept.code == value or value in index.ancestors(concept.code)
        if prop == "concept" and op == "descendent-of":
            return value in index.ancestors(concept.code)
        if op == "=":
            return any(str(v).lower() == str(value).lower() for v in concept.properties.get(str(prop), []))
        raise FhirError.of(500, "not-supported", f"ValueSet filter {prop} {op} is not supported.")

    def validate_in_value_set(self, url: str, system: str | None, code: str,
                              display: str | None) -> tuple[bool, str, str | None]:
        for member in self.members(url):
            if member.code == code and (system is None or member.system == system):
                if display and system and not self._display_matches(self.lookup(member.system, code), display):
                    return False, f"'{display[:64]}' is not a display of {code}.", member.display
                return True, "", member.display
        where = f"{system}|{code}" if system else code
        return False, f"The code {where[:120]} is not in the ValueSet {url}.", None

    def expand(self, url: str, text: str | None, offset: int, count: int | None,
               include_designations: bool, language: str | None) -> dict[str, Any]:
        vs = self.value_set(url)
        members = self.members(url)
        if text:
            needle = normalize_text(text)
            members = [m for m in members if self._matches_text(m, needle)]
        total = len(members)
        page = members[offset: offset + count if count is not None else None]
        contains = []
        for member in page:
            concept = self.code_systems[member.system].concepts[member.code]
            item: dict[str, Any] = {"system": member.system, "code": member.code,
                                    "display": self._display_in(concept, language, member.display)}
            if include_designations and concept.designations:
                item["designation"] = concept.designations
            if member.extensions:
                item["extension"] = list(member.extensions)
            contains.append(item)
        parameters = [{"name": "offset", "valueInteger": offset}]
        if count is not None:
            parameters.append({"name": "count", "valueInteger": count})
        if text:
            parameters.append({"name": "filter", "valueString": text})
        out = {k: v for k, v in vs.items() if k != "compose"}
        out["expansion"] = {"identifier": f"urn:uuid:{vs['id']}-{offset}-{count}",
                            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "total": total, "offset": offset, "parameter": parameters}
        if contains:
            out["expansion"]["contains"] = contains
        return out

    def _matches_text(self, member: Member, needle: str) -> bool:
        concept = self.code_systems[member.system].concepts[member.code]
        haystack = [concept.display, member.code, *(d.get("value", "") for d in concept.designations)]
        haystack += [c.get("code", "") for c in concept.properties.get("loinc", []) if isinstance(c, dict)]
        return any(needle in normalize_text(h) for h in haystack if h)

    @staticmethod
    def _display_in(concept: Concept, language: str | None, default: str) -> str:
        if language:
            for designation in concept.designations:
                if designation.get("language", "").lower().startswith(language.lower()[:2]):
                    return str(designation["value"])
        return default

    # -- ConceptMap ---------------------------------------------------------------------------------------
    def translate(self, map_url: str | None, system: str, code: str, reverse: bool,
                  dependencies: dict[str, str]) -> list[dict[str, Any]]:
        """Matches as (equivalence, Coding, source map url); forward by source code, reverse by target."""
        maps = [self.concept_map(map_url)] if map_url else list(self.concept_maps.values())
        matches = []
        for cm in maps:
            for group in cm.get("group", []):
                if (group.get("target") if reverse else group.get("source")) != system:
                    continue
                for element in group.get("element", []):
                    for target in element.get("target", []):
                        if reverse and target.get("code") == code:
                            concept = _coding(group["source"], element["code"], element.get("display")
                                              or self._display(group["source"], element["code"]))
                            matches.append({"equivalence": _reversed(target.get("equivalence", "equivalent")),
                                            "concept": concept, "source": cm["url"]})
                        elif not reverse and element.get("code") == code and _depends(target, dependencies):
                            concept = _coding(group["target"], target["code"], target.get("display")
                                              or self._display(group["target"], target["code"]))
                            matches.append({"equivalence": target.get("equivalence", "equivalent"),
                                            "concept": concept, "source": cm["url"]})
        return matches

    def _display(self, system: str, code: str) -> str:
        index = self.code_systems.get(system)
        concept = index.concepts.get(code) if index else None
        return concept.display if concept else ""


def _coding(system: str, code: str, display: str | None) -> dict[str, str]:
    """A Coding; without display when none is known (FHIR forbids empty strings)."""
    return {"system": system, "code": code, **({"display": display} if display else {})}


def _depends(target: dict[str, Any], dependencies: dict[str, str]) -> bool:
    for depends in target.get("dependsOn", []):
        given = dependencies.get(depends["property"])
        if given is not None and given.upper() != str(depends.get("value", "")).upper():
            return False
    return True


def _reversed(equivalence: str) -> str:
    return {"wider": "narrower", "narrower": "wider", "subsumes": "specializes",
            "specializes": "subsumes"}.get(equivalence, equivalence)
