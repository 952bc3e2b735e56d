"""What federation adds to this node: a patient's results on the peers, for $duplicate-check, CDS Hooks and
the federated search (`_federated=true`), merged with the local ones.

Patients are matched across nodes by identifier only (FHIRSERVER_IDENTITY_SYSTEMS, the national resident ID
by default), never by name: a local patient becomes `person=system|value` on each peer, which the peer resolves
with its own person index (the same rules as here: profiles/SearchParameter-hr-person.json). A peer that does not
know `person` (another make) is asked `patient.identifier=system|value` instead.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from ..fhir.bundles import new_bundle, page_url
from ..fhir.errors import FhirError, Issue, bad_request, operation_outcome
from ..fhir.interactions import search as local_search
from ..fhir.interactions.context import FhirContext, RequestInfo
from ..fhir.json_format import loads
from ..persons.index import PersonIndex
from ..recognition.catalog import RecognitionCatalog
from ..recognition.facts import RESULT_TYPES, result_facts
from ..recognition.standing import Standing, standing_from
from ..security.principal import current
from ..store.registry_cache import RegistryCache
from .client import FederationClient, PeerAnswer
from .peers import Peer, active_peers

STANDING_TTL_S = 60.0
PATIENT_PARAMS = ("patient", "subject", "person")
PERSON = "person"  # the person search parameter (hr-person), resolved by each node's person index
PERSON_TYPES = frozenset({"DiagnosticReport", "Observation", "ImagingStudy", "ServiceRequest"})


@dataclass(frozen=True)
class RemoteResult:
    peer: Peer
    resource: dict[str, Any]
    url: str                    # absolute, on the origin node
    performer: Standing | None


class FederationService:
    def __init__(self, client: FederationClient, catalog: RecognitionCatalog, identity_systems: tuple[str, ...],
                 node_label: str, zone: Any, registry: RegistryCache, persons: PersonIndex | None = None) -> None:
        self.client = client
        self.persons = persons  # the identity sent to peers is one that links the person here (persons/index.py)
        self.registry = registry
        self.zone = zone
        self.catalog = catalog
        self.identity_systems = identity_systems
        self.node_label = node_label
        self.origin_url = f"{catalog.canonical}/StructureDefinition/hr-origin"
        self._standings: dict[tuple[str, str], tuple[float, Standing | None]] = {}

    # -- identity ---------------------------------------------------------------------------------------
    def identity(self, ctx: FhirContext, patient_ref: str | None) -> str | None:
        """The patient's identity in a cross-node identity system, as system|value: with the person index, the first
        system's value that links the person's records here (an invalid or contradicted resident ID is never sent:
        it would tie unrelated records on the peers), looked for on every record of the person."""
        if not patient_ref or not patient_ref.startswith("Patient/"):
            return None
        if self.persons is not None:
            tokens = self.persons.tokens(ctx, patient_ref)
            for system in self.identity_systems:
                chosen = sorted(t for t in tokens if t.startswith(system + "|"))
                if chosen:
                    return chosen[0]
            return None
        version = ctx.store.versions.read_current("Patient", patient_ref.split("/", 1)[1])
        if version is None or version.text is None:
            return None
        identifiers = loads(version.text).get("identifier", [])
        for system in self.identity_systems:
            for identifier in identifiers:
                if identifier.get("system") == system and identifier.get("value"):
                    return f"{system}|{identifier['value']}"
        return None

    def peers(self, ctx: FhirContext) -> list[Peer]:
        """The active peers as registered now (through the registry cache, which is never stale)."""
        return self.registry.get("peers", lambda: active_peers(ctx))

    # -- results of an item, for $duplicate-check and CDS Hooks ---------------------------------------------
    def remote_results(self, ctx: FhirContext, patient: str, item: str) -> tuple[list[RemoteResult], list[str]]:
        """The patient's results of the item on every active peer (none without peers or a cross-node id)."""
        peers = self.peers(ctx)
        identity = self.identity(ctx, patient) if peers else None
        if not identity:
            return [], []
        queries = [(rtype, [(PERSON, identity), ("item", item), ("_count", "50")]) for rtype in RESULT_TYPES]
        answers = self.client.search_all(peers, queries, _correlation(), _by_chain)
        results, warnings = [], []
        for answer in answers:
            warnings += self._warnings(answer)
            performers = {_key(r): result_facts(r, self.catalog.item_system, self.zone).performer
                          for r in answer.resources}
            standings = {ref: self._standing(answer.peer, ref) for ref in set(performers.values()) if ref}
            results += [RemoteResult(answer.peer, r, f"{answer.peer.address}/{r['resourceType']}/{r['id']}",
                                     standings.get(performers[_key(r)] or "")) for r in answer.resources]
        return results, warnings

    def _standing(self, peer: Peer, reference: str) -> Standing | None:
        """A peer's hospital's standing, as that peer's platform records it (cached for a minute)."""
        key = (peer.address, reference)
        hit = self._standings.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        deadline = time.monotonic() + self.client.timeout_s
        standing: Standing | None = None
        try:
            org = self.client.get_json(peer, reference, [], _correlation(), deadline)
            bundle = self.client.get_json(peer, "OrganizationAffiliation",
                                          [("participating-organization", reference), ("_count", "200")],
                                          _correlation(), deadline)
            if isinstance(org, dict) and org.get("resourceType") == "Organization":
                affiliations = [e["resource"] for e in (bundle or {}).get("entry", [])
                                if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
                standing = standing_from(f"{peer.address}/{reference}", org, affiliations, self.catalog,
                                         self.zone)
        except Exception:  # noqa: BLE001 - an unknown standing makes the result not recognizable, not an error
            standing = None
        self._standings[key] = (time.monotonic() + STANDING_TTL_S, standing)
        return standing

    # -- federated search --------------------------------------------------------------------------------
    def search(self, ctx: FhirContext, resource_type: str, pairs: list[tuple[str, str]], base_url: str) -> dict:
        """Local matches, then every peer's, in one searchset; each entry says its origin; failed peers become
        OperationOutcome entries (HTTP 200 with partial results)."""
        pairs = [(k, v) for k, v in pairs if k != "_federated"]
        if any(k == "_page" for k, _ in pairs):
            raise bad_request("A federated search has no further pages; narrow it instead of paging.", "_page")
        identity = self._search_identity(ctx, pairs)
        local = local_search.search(ctx, resource_type, RequestInfo(base_url=base_url, query=tuple(pairs))).body or {}
        remote_pairs = [(k, v) for k, v in pairs if k.split(":")[0].split(".")[0] not in PATIENT_PARAMS
                        and k not in ("_include", "_revinclude", "_total", "_summary", "_elements")]
        remote_pairs.append((PERSON, identity) if resource_type in PERSON_TYPES else ("patient.identifier", identity))
        peers = self.peers(ctx)
        answers = self.client.search_all(peers, [(resource_type, remote_pairs)], _correlation(),
                                         _by_chain) if peers else []
        bundle = new_bundle("searchset", page_url(base_url, resource_type, [*pairs, ("_federated", "true")]))
        entries, seen = [], set()
        for entry in local.get("entry", []):
            resource = entry["resource"]
            resource = resource if isinstance(resource, dict) else loads(orjson.dumps(resource))  # raw Fragment
            if entry.get("search", {}).get("mode") == "match":
                seen |= _business_ids(resource)
            entries.append({**entry, "resource": resource, "extension": [self._origin(None)]})
        for answer in answers:
            for resource in answer.resources:
                keys = _business_ids(resource)
                if keys & seen:
                    continue  # the same result, already listed from a nearer origin
                seen |= keys
                entries.append({"fullUrl": f"{answer.peer.address}/{resource_type}/{resource['id']}",
                                "resource": resource, "search": {"mode": "match"},
                                "extension": [self._origin(answer.peer)]})
            for warning in self._warnings(answer):
                entries.append({"resource": operation_outcome([Issue("incomplete", warning, "warning")]),
                                "search": {"mode": "outcome"}})
        if entries:
            bundle["entry"] = entries
        return bundle

    def _search_identity(self, ctx: FhirContext, pairs: list[tuple[str, str]]) -> str:
        for key, value in pairs:
            name = key.split(":")[0]
            if name in ("patient.identifier", "subject.identifier", "subject:Patient.identifier", PERSON) \
                    and "|" in value:
                return value
            if name in PATIENT_PARAMS:
                ref = value if "/" in value else f"Patient/{value}"
                found = self.identity(ctx, ref)
                if found:
                    return found
                raise FhirError.of(400, "processing", f"{ref[:80]} has no identifier of "
                                                      f"{', '.join(self.identity_systems)}; other nodes know "
                                                      f"patients only by that.", key)
        raise bad_request("A federated search names the patient: patient=Patient/<id>, person=<system>|<value> or "
                          "patient.identifier=<system>|<value>.", "_federated")

    def _origin(self, peer: Peer | None) -> dict[str, Any]:
        value: dict[str, Any] = {"display": peer.label if peer else self.node_label}
        if peer is not None:
            value["reference"] = peer.endpoint
        return {"url": self.origin_url, "valueReference": value}

    @staticmethod
    def _warnings(answer: PeerAnswer) -> list[str]:
        out = []
        if answer.problem:
            out.append(f"Peer {answer.peer.label} at {answer.peer.address} {answer.problem}; its results are "
                       f"missing from this answer.")
        if answer.dropped:
            out.append(f"Peer {answer.peer.label} sent {answer.dropped} invalid resource(s); they were left out.")
        return out


def _by_chain(params: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """The query for a peer without the person parameter: the standard chain on the patient's identifier."""
    if not any(k == PERSON for k, _ in params):
        return None
    return [("patient.identifier", v) if k == PERSON else (k, v) for k, v in params]


def _key(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _business_ids(resource: dict[str, Any]) -> set[str]:
    identifiers = resource.get("identifier", [])
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    return {f"{i.get('system', '')}|{i['value']}" for i in identifiers if isinstance(i, dict) and i.get("value")}


def _correlation() -> str:
    principal = current()
    return principal.correlation_id if principal is not None and principal.correlation_id else str(uuid.uuid4())
