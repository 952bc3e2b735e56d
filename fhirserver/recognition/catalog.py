"""The recognized-items catalog as the rules read it: item facts, scopes and agreements, validity
windows with regional overrides, exception and reason codes. All of it comes from terminology/ files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timezone
from typing import Any

from ..fhir.search.values import date_range
from ..terminology.service import Member, TerminologyService, effective_period, versioned


@dataclass(frozen=True)
class ItemFacts:
    code: str
    display: str
    category: str  # LAB, IMG, ECG or PATH: the top of the hierarchy, also the QC specialty
    validity_days: int
    min_level: int
    price: float
    active: bool


@dataclass(frozen=True)
class ScopePolicy:
    """What a scope ValueSet says beyond its items: whether the item's minimum level applies (not inside a close
    medical alliance), and its level-direction pairs (requester level, performer level); none: no such rule."""

    min_level: bool
    directions: frozenset[tuple[int, int]]

    def allows(self, requester: int | None, performer: int | None) -> bool:
        if not self.directions:
            return True
        return (requester, performer) in self.directions


def province(region: str | None) -> str | None:
    """GB/T 2260: the province of a region code (510100 -> 510000)."""
    return f"{region[:2]}0000" if region and len(region) == 6 and region.isdigit() else None


class RecognitionCatalog:
    def __init__(self, terminology: TerminologyService, canonical: str, zone: timezone) -> None:
        self.terminology = terminology
        self.canonical = canonical
        self.zone = zone
        self.item_system = f"{canonical}/CodeSystem/hr-item"
        self.exception_system = f"{canonical}/CodeSystem/hr-exception"
        self.mark_system = f"{canonical}/CodeSystem/hr-mark"
        self.region_system = f"{canonical}/CodeSystem/hr-region"
        self._items = terminology.code_system(self.item_system)
        self.affiliation_system = f"{canonical}/CodeSystem/hr-affiliation"
        self._scopes: dict[str, tuple[str, ...]] = {}  # scope ValueSet url -> provinces it covers
        self.alliance_url: str | None = None  # the scope of results shared inside a close medical alliance
        for url, vs in terminology.value_sets.items():
            if vs["id"].startswith("hr-scope-") and vs["id"] != "hr-scope-national":
                focus = [c for ctx in vs.get("useContext", [])
                         for c in ctx.get("valueCodeableConcept", {}).get("coding", [])]
                if any(c.get("system") == self.affiliation_system and c.get("code") == "alliance-member"
                       for c in focus):
                    self.alliance_url = url
                    continue
                self._scopes[url] = tuple(c["code"] for c in focus if c.get("system") == self.region_system)
        # Each scope's versions with the instants their effective periods cover (lists change over time), and each
        # version's level rules: read once, the artifacts do not change while the server runs.
        self._versions: dict[str, list[tuple[str, float, float]]] = {}
        self._policies: dict[str, ScopePolicy] = {}
        self._members: dict[str, dict[str, Member]] = {}  # scope version -> its items by code, built on first use
        for url in [*self._scopes, *([self.alliance_url] if self.alliance_url else [])]:
            for vs in terminology.value_set_versions[url]:
                period = effective_period(vs)
                start = date_range(period["start"], zone).lo if period.get("start") else float("-inf")
                end = date_range(period["end"], zone).hi if period.get("end") else float("inf")
                self._versions.setdefault(url, []).append((versioned(vs), start, end))
                self._policies[versioned(vs)] = self._policy_of(vs)

    def in_force(self, url: str | None, moment_ms: float | None) -> str | None:
        """The version of a scope in force at the moment (url|version); the current one without a moment; None when
        no version of the list was in force then."""
        if url is None:
            return None
        if moment_ms is None:
            return versioned(self.terminology.value_set(url))
        return next((key for key, start, end in reversed(self._versions.get(url, []))
                     if start <= moment_ms < end), None)

    def policy(self, scope: str) -> ScopePolicy:
        return self._policies[scope]

    def _policy_of(self, vs: dict[str, Any]) -> ScopePolicy:
        min_level = all(e.get("valueBoolean", True) for e in vs.get("extension", [])
                        if e.get("url") == f"{self.canonical}/StructureDefinition/hr-min-level-applies")
        pairs = set()
        for extension in vs.get("extension", []):
            if extension.get("url") == f"{self.canonical}/StructureDefinition/hr-level-direction":
                parts = {p.get("url"): p.get("valueInteger") for p in extension.get("extension", [])}
                pairs.add((parts.get("requester"), parts.get("performer")))
        return ScopePolicy(min_level, frozenset(pairs))

    def region_name(self, region: str | None) -> str | None:
        """The display of a GB/T 2260 code (its province's when the code itself is not listed): 重庆市."""
        regions = self.terminology.code_system(self.region_system).concepts
        for code in (region, province(region)):
            if code and code in regions:
                return regions[code].display
        return None

    # -- items -----------------------------------------------------------------------------------------------
    def item(self, code: str) -> ItemFacts | None:
        concept = self._items.concepts.get(code)
        if concept is None or concept.value("validity-days") is None:
            return None  # unknown, or a category rather than an item
        top = ([code, *self._items.ancestors(code)])[-1]
        return ItemFacts(code=code, display=concept.display, category=top,
                         validity_days=int(concept.value("validity-days")),
                         min_level=int(concept.value("min-level") or 1),
                         price=float(concept.value("price") or 0), active=concept.value("status") == "active")

    def categories(self) -> list[str]:
        """The top of the item hierarchy (LAB, IMG, ECG, PATH): QC specialties and statistics filters."""
        return [c.code for c in self._items.concepts.values() if c.parent is None]

    def item_coding(self, code: str) -> dict[str, str]:
        facts = self.item(code)
        return {"system": self.item_system, "code": code, "display": facts.display if facts else code}

    # -- scopes --------------------------------------------------------------------------------------------
    def home_url(self, province_code: str | None) -> str | None:
        """The scope ValueSet of a province alone (hr-scope-510000), if the province has one."""
        for url, provinces in self._scopes.items():
            if provinces == (province_code,):
                return url
        return None

    def home_scope(self, province_code: str | None, moment_ms: float | None = None) -> str | None:
        """The version of the province's list in force at the moment (url|version)."""
        return self.in_force(self.home_url(province_code), moment_ms)

    def agreements(self, first: str | None, second: str | None, moment_ms: float | None = None) -> list[str]:
        """Cross-province agreement scopes covering both provinces (e.g. Sichuan-Chongqing), as in force then."""
        urls = [u for u, p in self._scopes.items() if len(p) > 1 and first in p and second in p]
        return [key for key in (self.in_force(u, moment_ms) for u in urls) if key]

    def alliance_scope(self, moment_ms: float | None = None) -> str | None:
        return self.in_force(self.alliance_url, moment_ms)

    def _items_of(self, scope: str) -> dict[str, Member]:
        """The scope version's items by code (decisions ask per prior result and per scope: a lookup, not a scan)."""
        found = self._members.get(scope)
        if found is None:
            found = {m.code: m for m in self.terminology.members(scope) if m.system == self.item_system}
            self._members[scope] = found
        return found

    def in_scope(self, scope: str, code: str) -> bool:
        return code in self._items_of(scope)

    def validity_days(self, code: str, scope_url: str | None) -> int:
        """The scope's override (extension hr-validity-days) or the catalog default."""
        member = self._items_of(scope_url).get(code) if scope_url is not None else None
        for extension in member.extensions if member else ():
            if extension.get("url", "").endswith("/StructureDefinition/hr-validity-days"):
                return int(extension["valueInteger"])
        facts = self.item(code)
        return facts.validity_days if facts else 0

    def mark(self, scope: str) -> dict[str, str]:
        scope_id = scope.split("|", 1)[0].rsplit("/", 1)[-1]
        concept = self.terminology.code_system(self.mark_system).concepts.get(scope_id)
        return {"system": self.mark_system, "code": scope_id, "display": concept.display if concept else "HR"}

    # -- reasons ----------------------------------------------------------------------------------------------
    def reason(self, code: str) -> dict[str, Any]:
        """A CodeableConcept from hr-exception, in Chinese (display) and English (text)."""
        concept = self.terminology.code_system(self.exception_system).concepts[code]
        return {"coding": [{"system": self.exception_system, "code": code, "display": concept.display}],
                "text": f"{concept.display}: {concept.definition}"}

    def patient_text(self, code: str) -> str:
        """The reason in plain Chinese for the patient (property patient-text of hr-exception)."""
        concept = self.terminology.code_system(self.exception_system).concepts[code]
        return str(concept.value("patient-text") or concept.display)

    def is_exception(self, code: str) -> bool:
        index = self.terminology.code_system(self.exception_system)
        return code in index.concepts and "exception" in index.ancestors(code)

    def exceptions(self) -> list[dict[str, str]]:
        index = self.terminology.code_system(self.exception_system)
        return [{"system": self.exception_system, "code": c, "display": index.concepts[c].display}
                for c in index.concepts["exception"].children]
