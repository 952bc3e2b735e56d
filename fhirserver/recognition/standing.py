"""An institution's standing, read from standard resources (see README: how a hospital's standing is written):
level = Organization.type from hr-institution-level; region = the hr-region extension; network membership
and QC accreditation = OrganizationAffiliation (code network-member / qc-accredited, specialty = category,
period = admitted..exited, active)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..fhir.interactions.context import FhirContext
from ..fhir.interactions.search import find
from ..fhir.json_format import loads
from ..fhir.search.values import date_range
from .catalog import RecognitionCatalog

# What a standing is read from: a change to any of these invalidates cached standings (store/registry_cache.py).
STANDING_TYPES = frozenset({"Organization", "OrganizationAffiliation", "PractitionerRole"})


@dataclass(frozen=True)
class Affiliation:
    code: str
    categories: tuple[str, ...]
    start_ms: float
    end_ms: float
    active: bool
    organization: str = ""  # the network, QC centre or alliance (OrganizationAffiliation.organization)

    def covers(self, moment_ms: float) -> bool:
        return self.active and self.start_ms <= moment_ms < self.end_ms


@dataclass
class Standing:
    reference: str
    name: str = ""
    level: int | None = None
    region: str | None = None
    affiliations: list[Affiliation] = field(default_factory=list)

    def member_on(self, moment_ms: float) -> bool:
        return any(a.code == "network-member" and a.covers(moment_ms) for a in self.affiliations)

    def alliances_on(self, moment_ms: float) -> set[str]:
        """The close medical alliances the institution is a member of at the moment."""
        return {a.organization for a in self.affiliations if a.code == "alliance-member" and a.covers(moment_ms)}

    def accredited_on(self, category: str, moment_ms: float) -> bool:
        return any(a.code == "qc-accredited" and category in a.categories and a.covers(moment_ms)
                   for a in self.affiliations)


def read_standing(ctx: FhirContext, catalog: RecognitionCatalog, reference: str) -> Standing | None:
    """The standing of Organization/<id> as stored now; None when the organization does not exist."""
    if not reference.startswith("Organization/"):
        return None
    current = ctx.store.versions.read_current("Organization", reference.split("/", 1)[1])
    if current is None or current.deleted or current.text is None:
        return None
    affiliations = [loads(v.text or "{}") for v in
                    find(ctx, "OrganizationAffiliation", [("participating-organization", reference)], 200)]
    standing = standing_from(reference, loads(current.text), affiliations, catalog, ctx.planner.zone)
    # An alliance membership counts only when its organization is stored as an alliance (hr-organization-type).
    alliances = {a.organization for a in standing.affiliations if a.code == "alliance-member"}
    real = {ref for ref in alliances if _is_alliance(ctx, catalog, ref)}
    standing.affiliations = [a for a in standing.affiliations if a.code != "alliance-member" or a.organization in real]
    return standing


def _is_alliance(ctx: FhirContext, catalog: RecognitionCatalog, reference: str) -> bool:
    if not reference.startswith("Organization/"):
        return False
    stored = ctx.store.versions.read_current("Organization", reference.split("/", 1)[1])
    if stored is None or stored.deleted or stored.text is None:
        return False
    system = f"{catalog.canonical}/CodeSystem/hr-organization-type"
    index = catalog.terminology.code_system(system)
    return any(c.get("system") == system and c.get("code") in index.concepts
               and (c.get("code") == "alliance" or "alliance" in index.ancestors(c["code"]))
               for concept in loads(stored.text).get("type", []) for c in concept.get("coding", []))


def standing_from(reference: str, org: dict[str, Any], affiliations: list[dict[str, Any]],
                  catalog: RecognitionCatalog, zone: Any) -> Standing:
    """The standing written in an Organization and its OrganizationAffiliations (local or from a peer)."""
    standing = Standing(reference=reference, name=org.get("name", ""))
    level_system = f"{catalog.canonical}/CodeSystem/hr-institution-level"
    for concept in org.get("type", []):
        for coding in concept.get("coding", []):
            if coding.get("system") == level_system and str(coding.get("code", ""))[:1].isdigit():
                standing.level = int(str(coding["code"])[0])
    for extension in org.get("extension", []):
        if extension.get("url", "").endswith("/StructureDefinition/hr-region"):
            standing.region = (extension.get("valueCoding") or {}).get("code")
    affiliation_system = f"{catalog.canonical}/CodeSystem/hr-affiliation"
    for data in affiliations:
        period = data.get("period") or {}
        start = date_range(period["start"], zone).lo if period.get("start") else float("-inf")
        end = date_range(period["end"], zone).hi if period.get("end") else float("inf")
        categories = tuple(c.get("code") for s in data.get("specialty", []) for c in s.get("coding", []))
        for concept in data.get("code", []):
            for coding in concept.get("coding", []):
                if coding.get("system") == affiliation_system:
                    standing.affiliations.append(Affiliation(
                        coding["code"], categories, start, end, data.get("active", True) is not False,
                        str((data.get("organization") or {}).get("reference", ""))))
    return standing


