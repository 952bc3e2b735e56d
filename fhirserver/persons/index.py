"""The person index (EMPI-lite): which Patient records are one person, and why.

Two records are the same person when they share a value of a configured identity system
(FHIRSERVER_IDENTITY_SYSTEMS; the national resident ID by default), or when one links the other explicitly
(`Patient.link`: seealso, replaced-by, replaces, refer). A resident ID links only when it passes GB 11643 (its
check character) and agrees with the record's own birthDate and gender; and a person never spans two different
resident IDs. A link between records of two different hospitals (managingOrganization) counts only when confirmed:
each record links the other (each owner, or the platform's record steward for both, wrote its side). One hospital
alone cannot pull another hospital's record into its patient's person, which would carry its consents there.
The index is derived from what is stored (the identifier and link search fields, written with
every version), so it is current after every write: there is nothing else to keep in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..fhir.errors import FhirError, Issue
from ..fhir.interactions.context import FhirContext
from ..fhir.interactions.search import find, with_references
from ..fhir.json_format import loads
from ..fhir.local_base import local_bases
from ..fhir.search.indexer import reference_strings
from ..store.registry_cache import RegistryCache
from . import resident_id

LINKS_MAX_AGE_S = 10.0  # bounds a cached link edge a writer that died before counting its change could leave
MAX_LINKING = 5_000  # records with explicit links kept in memory; beyond that the walk searches per level
MAX_RECORDS = 50  # records of one person followed; a person held by more hospitals than this is cut off here
LINK_TYPES = frozenset({"seealso", "replaced-by", "replaces", "refer"})


@dataclass(frozen=True)
class Member:
    """One record of the person and what tied it in: "self", an identity token ("system|value"), or a link."""

    reference: str
    via: str


class PersonIndex:
    def __init__(self, identity_systems: tuple[str, ...], canonical_base: str = "http://hr.example.org/fhir",
                 cache: RegistryCache | None = None) -> None:
        self.identity_systems = identity_systems
        self._cache = cache  # keyed by the Patient change counter: the link edges, never stale
        self.tag_system = f"{canonical_base}/CodeSystem/hr-identity"

    # -- one record ---------------------------------------------------------------------------------------------
    def identities(self, patient: dict[str, Any]) -> tuple[list[str], list[str]]:
        """(identity tokens that may link this record, problems that keep others from linking)."""
        tokens, problems, _ = self._check(patient)
        return tokens, problems

    def _check(self, patient: dict[str, Any]) -> tuple[list[str], list[str], set[str]]:
        """Tokens, problems, and the hr-identity codes of the problems (invalid-id, contradicted-id)."""
        tokens: list[str] = []
        problems: list[str] = []
        codes: set[str] = set()
        for identifier in patient.get("identifier") or []:
            if not isinstance(identifier, dict):
                continue
            system, value = identifier.get("system"), identifier.get("value")
            if system not in self.identity_systems or not isinstance(value, str) or not value:
                continue
            if system != resident_id.SYSTEM:
                tokens.append(f"{system}|{value}")
                continue
            parsed = resident_id.parse(value)
            if isinstance(parsed, str):
                codes.add("invalid-id")
                problems.append(f"The resident ID {value[:20]} is not valid ({parsed}); it links this record to no "
                                f"other record of the person.")
                continue
            contradictions = _contradictions(patient, parsed)
            if contradictions:
                codes.add("contradicted-id")
                problems.append(f"The record contradicts its resident ID {value[:18]} ({'; '.join(contradictions)}); "
                                f"it is not linked to other records of that ID until one of them is corrected.")
                continue
            tokens.append(f"{system}|{parsed.value}")
        return tokens, problems, codes

    def tag_rule(self, ctx: FhirContext, resource: dict[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
        """before_write hook: a Patient carries the hr-identity tags of its ID's problems, computed here and never
        taken from the sender, so `Patient?_tag=<hr-identity>|contradicted-id` finds the records to correct."""
        if resource.get("resourceType") != "Patient":
            return resource, []
        meta = dict(resource.get("meta") or {})
        tags = [t for t in meta.get("tag", []) if not (isinstance(t, dict) and t.get("system") == self.tag_system)]
        _, _, codes = self._check(resource)
        tags += [{"system": self.tag_system, "code": code} for code in sorted(codes)]
        if tags:
            meta["tag"] = tags
        else:
            meta.pop("tag", None)
        return ({**resource, "meta": meta} if meta else {k: v for k, v in resource.items() if k != "meta"}), []

    def write_warnings(self, ctx: FhirContext, resource: dict[str, Any]) -> list[Issue]:
        """advise_write hook: a Patient whose identity cannot link gets a warning with its write (never a refusal:
        the hospital's record is still the hospital's record), in the OperationOutcome a client asks for."""
        if resource.get("resourceType") != "Patient":
            return []
        _, problems = self.identities(resource)
        return [Issue("business-rule", text, severity="warning", expression=("Patient.identifier",))
                for text in problems]

    # -- the person -----------------------------------------------------------------------------------------------
    def members(self, ctx: FhirContext, reference: str) -> list[Member]:
        """Every record of the person `reference` (a "Patient/id") belongs to, itself first. Deterministic: the
        same stored records give the same answer in the same order."""
        return self._walk(ctx, reference)[0]

    def of_identity(self, ctx: FhirContext, name: str, values: list[str]) -> list[str]:
        """Resolver of the `person` search parameter (profiles/SearchParameter-hr-person.json): the records of the
        person each identity names (values OR-ed), under the same rules as every other person lookup here, so a
        peer asking `DiagnosticReport?person=<system>|<value>` gets what this node's own checks would see."""
        records: list[str] = []
        for value in values:
            system, bar, code = value.partition("|")
            if bar and (system not in self.identity_systems or not code):
                raise FhirError.of(400, "value", f"'{name}' takes an identity as system|value (or a bare value), "
                                                 f"where system is one of {', '.join(self.identity_systems)}; got "
                                                 f"{value[:60]!r}.", name)
            for token in [value] if bar else [f"{s}|{value}" for s in self.identity_systems]:
                for version in find(ctx, "Patient", [("identifier", _escaped(token))], MAX_RECORDS):
                    record = loads(version.text) if version.text else {}
                    if token in self.identities(record)[0] and f"Patient/{version.id}" not in records:
                        records += [r for r in self.records(ctx, f"Patient/{version.id}") if r not in records]
        return records

    def records(self, ctx: FhirContext, reference: str) -> list[str]:
        return [m.reference for m in self.members(ctx, reference)]

    def tokens(self, ctx: FhirContext, reference: str) -> list[str]:
        """The linking identity tokens found on any record of the person (for asking peers)."""
        members, loaded = self._walk(ctx, reference)
        return [t for m in members if loaded.get(m.reference) for t in self.identities(loaded[m.reference])[0]]

    def _walk(self, ctx: FhirContext, reference: str) -> tuple[list[Member], dict[str, dict[str, Any] | None]]:
        """Breadth-first, one level at a time: per level, one identifier search for the identity values not searched
        yet and the records linking to the level (from the link cache, else one search). Each record is read once
        (a search hit is not re-read)."""
        if not reference.startswith("Patient/"):
            return [Member(reference, "self")], {}
        found: dict[str, Member] = {reference: Member(reference, "self")}
        loaded: dict[str, dict[str, Any] | None] = {}
        resident: set[str] = set()
        searched: set[str] = set()
        linking = self._linking(ctx)
        level = [reference]
        while level and len(found) < MAX_RECORDS:
            candidates: list[tuple[str, str, str]] = []  # (record, what ties it, the record it was reached from)
            new_tokens: set[str] = set()
            for current in level:
                record = self._load(ctx, current, loaded)
                if record is None:
                    continue
                tokens, _ = self.identities(record)
                resident |= {t for t in tokens if t.startswith(resident_id.SYSTEM + "|")}
                new_tokens |= set(tokens) - searched
                for link in record.get("link") or []:
                    other = _local(ctx, ((link or {}).get("other") or {}).get("reference"))
                    if (link or {}).get("type") in LINK_TYPES and other is not None:
                        candidates.append((other, f"link:{link['type']}", current))
            searched |= new_tokens
            if new_tokens:
                for version in find(ctx, "Patient", [("identifier", ",".join(sorted(_escaped(t) for t in new_tokens)))],
                                    MAX_RECORDS):
                    ref = f"Patient/{version.id}"
                    loaded.setdefault(ref, loads(version.text) if version.text else None)
                    shared = sorted(new_tokens & set(self.identities(loaded[ref] or {})[0]))
                    candidates.append((ref, shared[0] if shared else "unlinked", ""))
            if linking is None:
                for version in find(ctx, "Patient", [("link", ",".join(level))], MAX_RECORDS):
                    loaded.setdefault(f"Patient/{version.id}", loads(version.text) if version.text else None)
                    record = loaded[f"Patient/{version.id}"] or {}
                    candidates += [(f"Patient/{version.id}", "link:from", current) for current in level
                                   if current in _link_targets(ctx, record)]
            else:
                candidates += [(source, "link:from", current) for current in level
                               for source in linking.get(current, ())]
            level = []
            for candidate, via, origin in sorted(set(candidates)):
                if candidate in found or via == "unlinked" or len(found) >= MAX_RECORDS:
                    continue  # "unlinked": it carries the value, but the value does not link it (invalid, contradicted)
                other_record = self._load(ctx, candidate, loaded)
                if other_record is None:
                    continue
                if via.startswith("link:") and not _confirmed(ctx, origin, self._load(ctx, origin, loaded) or {},
                                                              candidate, other_record):
                    continue  # one hospital's word about another hospital's record
                other_resident = {t for t in self.identities(other_record)[0] if t.startswith(resident_id.SYSTEM + "|")}
                if resident and other_resident and not other_resident <= resident:
                    continue  # never one person across two different resident IDs
                resident |= other_resident
                found[candidate] = Member(candidate, via)
                level.append(candidate)
        return list(found.values()), loaded

    def _linking(self, ctx: FhirContext) -> dict[str, tuple[str, ...]] | None:
        """Which records link to each record (explicit links are few: an administrator's merge, a hospital's
        seealso), kept per process until a Patient changes anywhere; None when too many to keep."""
        if self._cache is None:
            return None

        def compute() -> dict[str, tuple[str, ...]] | None:
            rows = with_references(ctx, "Patient", "link", MAX_LINKING + 1)
            if len(rows) > MAX_LINKING:
                return None
            edges: dict[str, set[str]] = {}
            for record_id, targets in rows:
                for target in targets:
                    edges.setdefault(target, set()).add(f"Patient/{record_id}")
            return {target: tuple(sorted(sources)) for target, sources in edges.items()}

        return self._cache.get("linking", compute)

    @staticmethod
    def _load(ctx: FhirContext, reference: str, loaded: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
        if reference not in loaded:
            version = ctx.store.versions.read_current("Patient", reference.split("/", 1)[1])
            loaded[reference] = loads(version.text) if version is not None and version.text else None
        return loaded[reference]


def _link_targets(ctx: FhirContext, record: dict[str, Any]) -> set[str]:
    """The local records this record links explicitly (any of LINK_TYPES)."""
    targets = set()
    for link in record.get("link") or []:
        other = _local(ctx, ((link or {}).get("other") or {}).get("reference")) if isinstance(link, dict) else None
        if other is not None and link.get("type") in LINK_TYPES:
            targets.add(other)
    return targets


def _confirmed(ctx: FhirContext, a: str, a_record: dict[str, Any], b: str, b_record: dict[str, Any]) -> bool:
    """A link between two records counts when one hospital keeps both (the same managingOrganization, or none on
    either: a merge of its own duplicates), or when each record links the other: the other owner confirmed it."""
    if _custodian(a_record) == _custodian(b_record):
        return True
    return b in _link_targets(ctx, a_record) and a in _link_targets(ctx, b_record)


def _custodian(record: dict[str, Any]) -> str | None:
    organization = record.get("managingOrganization")
    return organization.get("reference") if isinstance(organization, dict) else None


def _contradictions(patient: dict[str, Any], parsed: resident_id.ResidentId) -> list[str]:
    """Where the record's birthDate (also a partial one: 2020, 2020-01) or gender (male/female; other and unknown
    say nothing) disagrees with what its resident ID encodes."""
    out = []
    born = patient.get("birthDate")
    if isinstance(born, str) and born and not parsed.birth_date.startswith(born[:10]):
        out.append(f"birthDate {born[:10]} but the ID says {parsed.birth_date}")
    gender = patient.get("gender")
    if gender in ("male", "female") and gender != parsed.gender:
        out.append(f"gender {gender} but the ID says {parsed.gender}")
    return out


def _escaped(token: str) -> str:
    """A token as one search value (FHIR escapes `,` and `$` with a backslash; `|` separates system and code)."""
    return token.replace("\\", "\\\\").replace(",", "\\,").replace("$", "\\$")


def _local(ctx: FhirContext, reference: Any) -> str | None:
    """A link target as "Patient/id" when it names a record here (relative, or absolute with a base this server
    answers to, as the indexer reads references); None otherwise."""
    forms = reference_strings(reference, local_bases(ctx.settings.base_url))
    return forms[0] if len(forms) == 2 and forms[0].startswith("Patient/") else None
