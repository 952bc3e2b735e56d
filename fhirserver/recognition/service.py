"""Mutual recognition as FHIR: $recognize, $duplicate-check, the re-order rule, the computed mark, and the
events the statistics count. Decisions come from rules.evaluate; this module gathers facts and records.

Events are AuditEvents (type from CodeSystem hr-event: view, duplicate-prompt, recognition, override),
so statistics are aggregations over stored resources, never counters that can drift.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from ..fhir.errors import FhirError, Issue, bad_request, not_found, operation_outcome
from ..fhir.interactions import create
from ..fhir.interactions.context import FhirContext, RequestInfo
from ..fhir.interactions.search import find
from ..fhir.json_format import loads
from ..persons.index import PersonIndex
from ..security.principal import CUSTODIAN, acting_as_server, current
from ..store.records import StoredVersion
from ..store.registry_cache import RegistryCache
from .catalog import RecognitionCatalog, province
from .evaluations import Evaluations
from .facts import RESULT_TYPES, ResultFacts, result_facts
from .rules import Decision, EvaluationContext, describe, evaluate, explain_to_patient, moment
from .standing import Standing, read_standing

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# The QC centre an evaluation goes to (v3 ParticipationType IRCP): an agent of the event, so it is theirs to read.
RECIPIENT = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP",
                         "display": "information recipient"}]}
# Said whenever the requesting hospital holds no consent of the person, whether or not other hospitals hold
# results (the same words either way, so the answer reveals nothing about them).
CONSENT_NOTICE = ("其他医院的检查检验结果须经患者同意后方可调阅，本院尚无该患者的有效授权。"
                  "Other hospitals' results are searched only with the patient's consent, "
                  "and this organization holds none for this patient.")
PRIOR_LIMIT = 50


@dataclass(frozen=True)
class Prior:
    """A prior result as found: the resource, and where it lives when on a peer node (absolute URL)."""

    resource: dict[str, Any]
    url: str | None = None
    origin: str | None = None


class Priors(NamedTuple):
    """What find_priors found: the decided priors, the peers' warnings, and whether the caller must be told that
    other hospitals' results need the patient's consent (it holds none for this person)."""

    found: list[tuple[Decision, Standing | None, Prior]]
    warnings: list[str]
    consent_needed: bool


class RecognitionService:
    def __init__(self, catalog: RecognitionCatalog, registry: RegistryCache, persons: PersonIndex,
                 reorder_mode: str = "enforce") -> None:
        self.catalog = catalog
        self.persons = persons  # which Patient records are the person (persons/index.py)
        self.registry = registry  # standings cached while the registry is unchanged (never stale)
        self.reorder_mode = reorder_mode
        c = catalog.canonical
        self.event_system = f"{c}/CodeSystem/hr-event"
        self.issue_system = f"{c}/CodeSystem/hr-detected-issue"
        self.override_url = f"{c}/StructureDefinition/hr-override-reason"
        self.saving_url = f"{c}/StructureDefinition/hr-saving"
        self.patient_text_url = f"{c}/StructureDefinition/hr-patient-text"
        self.evaluations = Evaluations(catalog)
        self.federation: Any = None  # federation/service.py, set by the app when the node has peers to ask

    # -- facts -------------------------------------------------------------------------------------------
    def standing(self, ctx: FhirContext, reference: str | None) -> Standing | None:
        """The institution's standing as stored now, through the registry cache (never stale): a batch of
        results from one hospital, or a check with many priors from it, reads it once."""
        if not reference:
            return None
        return self.registry.get(("standing", reference), lambda: read_standing(ctx, self.catalog, reference))

    def requester(self, ctx: FhirContext, reference: str | None) -> Standing | None:
        """The requesting institution: an Organization, or the organization of a PractitionerRole."""
        if reference and reference.startswith("PractitionerRole/"):
            role = ctx.store.versions.read_current("PractitionerRole", reference.split("/", 1)[1])
            reference = (loads(role.text).get("organization") or {}).get("reference") if role and role.text else None
        return self.standing(ctx, reference)

    def acting(self, ctx: FhirContext, reference: str | None, parameter: str) -> Standing:
        """The institution an operation acts for, whose events it records (views, recognitions, evaluations): the one
        named, which with authentication on must be the caller's own organization (or one of its PractitionerRoles);
        the caller's own when none is named. Platform backends (system/ scopes) may name any."""
        caller = current()
        restricted = caller is not None and not caller.unrestricted and not any(s.context == "system"
                                                                              for s in caller.scopes)
        own = caller.organization if restricted and caller is not None else None
        reference = reference or own
        if not reference:
            raise bad_request(f"{parameter} (the Organization or PractitionerRole that acts) is required.", parameter)
        standing = self.requester(ctx, reference)
        if standing is None:
            raise bad_request(f"{parameter} {reference[:80]} is not a stored Organization (or PractitionerRole).",
                              parameter)
        if own and standing.reference != own:
            raise FhirError.of(403, "forbidden", f"{parameter} must be your own organization (or one of its "
                                                 f"PractitionerRoles).", parameter)
        return standing

    def exceptions(self, concepts: list[dict[str, Any]]) -> list[str]:
        codes = [c.get("code", "") for concept in concepts for c in concept.get("coding", [])
                 if c.get("system") == self.catalog.exception_system]
        unknown = [code for code in codes if not self.catalog.is_exception(code)]
        if unknown:
            raise bad_request(f"context codes {', '.join(unknown)[:100]} are not clinical exceptions of "
                              f"{self.catalog.exception_system}.", "context")
        return codes

    def decide(self, ctx: FhirContext, version: StoredVersion, context: EvaluationContext,
               superseded: bool) -> tuple[Decision, Standing | None]:
        facts = result_facts(loads(version.text or "{}"), self.catalog.item_system, ctx.planner.zone)
        performer = self.standing(ctx, facts.performer)
        return evaluate(self.catalog, facts, performer, context, superseded), performer

    def prior_results(self, ctx: FhirContext, patient: str, item: str) -> list[tuple[StoredVersion, ResultFacts]]:
        """The person's results of the item, under any of their hospitals' Patient records, newest first (indexed
        lookups by subject + item)."""
        found = []
        subjects = ",".join(self.persons.records(ctx, patient))
        for rtype in RESULT_TYPES:
            # Only what the caller may see (its own, or another hospital's with the patient's consent).
            for version in ctx.access.disclose(find(ctx, rtype, [("subject", subjects), ("item", item)], PRIOR_LIMIT)):
                found.append((version, result_facts(loads(version.text or "{}"), self.catalog.item_system,
                                                    ctx.planner.zone)))
        return sorted(found, key=lambda pair: -(pair[1].date_ms or 0))

    # -- $recognize ------------------------------------------------------------------------------------------
    def recognize(self, ctx: FhirContext, resource_type: str, resource_id: str, requester_ref: str,
                  when: str | None, context: list[dict[str, Any]], mode: str) -> dict[str, Any]:
        if mode not in ("check", "accept"):
            raise bad_request("mode is check or accept.", "mode")
        version = ctx.store.versions.read_current(resource_type, resource_id)
        if version is None or version.deleted or not ctx.access.disclose([version]):
            raise not_found(f"{resource_type}/{resource_id[:64]} does not exist.")
        requester = self.acting(ctx, requester_ref, "requester")
        evaluation = EvaluationContext(requester, moment(when, ctx.planner.zone), self.exceptions(context))
        facts = result_facts(loads(version.text or "{}"), self.catalog.item_system, ctx.planner.zone)
        newer = [f for _, f in self.prior_results(ctx, facts.patient, facts.item)
                 if f.final and (f.date_ms or 0) > (facts.date_ms or 0)] if facts.patient and facts.item else []
        if not newer and facts.patient and facts.item and self.federation is not None:
            # a newer final result on a peer node supersedes this one too
            remote, _ = self.federation.remote_results(ctx, facts.patient, facts.item)
            newer = [f for f in (result_facts(r.resource, self.catalog.item_system, ctx.planner.zone) for r in remote)
                     if f.final and (f.date_ms or 0) > (facts.date_ms or 0)]
        decision, performer = self.decide(ctx, version, evaluation, superseded=bool(newer))
        if decision.result.performer != requester.reference:  # a view is of another institution's result
            self.record(ctx, "view", decision, requester)
        if mode == "accept":
            if not decision.recognizable:
                reasons = [Issue("business-rule", self.catalog.reason(r)["text"]) for r in decision.reasons]
                raise FhirError(422, [Issue("business-rule", "This result cannot be recognized; see the reasons.",
                                            expression=("mode",)), *reasons])
            self.record(ctx, "recognition", decision, requester)
        return self.parameters(decision, performer)

    def parameters(self, decision: Decision, performer: Standing | None) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"name": "recognizable", "valueBoolean": decision.recognizable}]
        if decision.item:
            parts.append({"name": "item", "valueCoding": self.catalog.item_coding(decision.item.code)})
        if decision.valid_until():
            parts.append({"name": "validUntil", "valueDateTime": decision.valid_until()})
        if decision.scope:  # the list (and its version) the decision was made against
            parts.append({"name": "list", "valueCanonical": decision.scope})
        parts += [{"name": "reason", "valueCodeableConcept": self.catalog.reason(r)} for r in decision.reasons]
        parts.append({"name": "result", "valueReference": {"reference": decision.result.reference}})
        parts.append({"name": "explanation", "valueString": describe(self.catalog, decision, performer)})
        parts.append({"name": "patientExplanation",
                      "valueString": explain_to_patient(self.catalog, decision, performer)})
        return {"resourceType": "Parameters", "parameter": parts}

    # -- $duplicate-check -------------------------------------------------------------------------------------
    def order_facts(self, ctx: FhirContext, order: dict[str, Any]) -> tuple[str | None, str | None]:
        """(patient reference, item code) of a draft order; codes translated through the ConceptMaps."""
        coded = ctx.item_coder({**order, "resourceType": "ServiceRequest"})
        item = next((c.get("code") for c in (coded.get("code") or {}).get("coding", [])
                     if c.get("system") == self.catalog.item_system), None)
        subject = order.get("subject") or {}
        patient = subject.get("reference")
        identifier = subject.get("identifier")
        if not patient and isinstance(identifier, dict) and identifier.get("value"):
            token = f"{identifier.get('system', '')}|{identifier['value']}" if identifier.get("system") \
                else identifier["value"]
            # Several hospitals' records may carry the ID: one person when the index links them all.
            matches = [f"Patient/{v.id}" for v in find(ctx, "Patient", [("identifier", token)], 50)]
            patient = matches[0] if matches and set(matches) <= set(self.persons.records(ctx, matches[0])) else None
        return patient, item

    def duplicates(self, ctx: FhirContext, order: dict[str, Any], exceptions: list[str],
                   when: str | None = None) -> list[tuple[Decision, Standing | None, Prior]]:
        """The patient's prior results of the ordered item on this node (the re-order rule uses only these)."""
        return self.find_priors(ctx, order, exceptions, when, peers=False).found

    def find_priors(self, ctx: FhirContext, order: dict[str, Any], exceptions: list[str], when: str | None = None,
                    peers: bool = True) -> Priors:
        """Prior results of the ordered item, newest first, each with its decision; with `peers`, the peer
        nodes' too (federation), plus a warning per peer that could not answer."""
        patient, item = self.order_facts(ctx, order)
        consent_needed = bool(patient) and ctx.access.lacks_consent(str(patient))
        if not patient or not item:
            return Priors([], [], consent_needed)
        requester = self.requester(ctx, (order.get("requester") or {}).get("reference"))
        evaluation = EvaluationContext(requester, moment(when or order.get("authoredOn"), ctx.planner.zone),
                                       exceptions)
        candidates: list[tuple[ResultFacts, Standing | None, Prior]] = []
        for version, facts in self.prior_results(ctx, patient, item):
            candidates.append((facts, self.standing(ctx, facts.performer), Prior(loads(version.text or "{}"))))
        warnings: list[str] = []
        if peers and self.federation is not None:
            remote, warnings = self.federation.remote_results(ctx, patient, item)
            for found in remote:
                facts = result_facts(found.resource, self.catalog.item_system, ctx.planner.zone)
                candidates.append((replace(facts, reference=found.url, patient=patient), found.performer,
                                   Prior(found.resource, found.url, found.peer.label)))
        candidates.sort(key=lambda c: -(c[0].date_ms or 0))
        out, newest_final_seen = [], False
        for facts, performer, prior in candidates:
            decision = evaluate(self.catalog, facts, performer, evaluation, newest_final_seen)
            newest_final_seen = newest_final_seen or facts.final
            out.append((decision, performer, prior))
        return Priors(out, warnings, consent_needed)

    def duplicate_check(self, ctx: FhirContext, order: dict[str, Any], context: list[dict[str, Any]],
                        base_url: str, record: bool = True) -> dict[str, Any]:
        if not isinstance(order, dict) or order.get("resourceType") != "ServiceRequest":
            raise bad_request("request must be a ServiceRequest (the draft order).", "request")
        found, warnings, consent_needed = self.find_priors(ctx, order, self.exceptions(context))
        requester = self.requester(ctx, (order.get("requester") or {}).get("reference"))
        entries: list[dict[str, Any]] = []
        for decision, performer, _version in found:
            issue = self.detected_issue(decision, performer, order)
            if record:
                with acting_as_server():  # the server records its own finding, whoever asked
                    stored = create.create(ctx, "DetectedIssue", issue, RequestInfo(base_url=base_url))
                assert stored.version is not None
                issue = loads(stored.version.text or "{}")
                if decision.recognizable:
                    self.record(ctx, "duplicate-prompt", decision, requester)
            entries.append({"fullUrl": f"{base_url}/DetectedIssue/{issue['id']}" if "id" in issue
                            else f"urn:uuid:{uuid.uuid4()}", "resource": issue})
        if record and found and requester is not None:
            self.record(ctx, "view", found[0][0], requester)
        entries += [{"fullUrl": p.url or f"{base_url}/{p.resource['resourceType']}/{p.resource['id']}",
                     "resource": p.resource} for _, _, p in found]
        notices = [Issue("incomplete", w, "warning") for w in warnings]
        if consent_needed:
            notices.append(Issue("suppressed", CONSENT_NOTICE, "information"))
        if notices:
            entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": operation_outcome(notices)})
        bundle: dict[str, Any] = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "collection",
                                  "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        if entries:
            bundle["entry"] = entries
        return bundle

    def detected_issue(self, decision: Decision, performer: Standing | None, order: dict[str, Any]) -> dict[str, Any]:
        code = "recognizable" if decision.recognizable else "not-recognizable"
        issue: dict[str, Any] = {
            "resourceType": "DetectedIssue", "status": "final",
            "code": {"coding": [{"system": ACT_CODE, "code": "DUPTHPY", "display": "Duplicate Therapy Alert"},
                                {"system": self.issue_system, "code": code}]},
            "severity": "moderate" if decision.recognizable else "low",
            "identifiedDateTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "implicated": [{"reference": decision.result.reference}],
            "detail": describe(self.catalog, decision, performer),
            "extension": [{"url": self.patient_text_url, "valueString": explain_to_patient(self.catalog, decision,
                                                                                           performer)}]}
        if decision.result.patient:
            issue["patient"] = {"reference": decision.result.patient}
        if decision.reasons:
            issue["evidence"] = [{"code": [self.catalog.reason(r) for r in decision.reasons]}]
        return issue

    # -- the re-order rule (a before_write hook on ServiceRequest) ---------------------------------------------
    def reorder_rule(self, ctx: FhirContext, resource: dict[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
        if (self.reorder_mode == "off" or resource.get("resourceType") != "ServiceRequest"
                or resource.get("status") not in ("draft", "active")):
            return resource, []
        recognizable = [(d, p) for d, p, _ in self.duplicates(ctx, resource, []) if d.recognizable]
        if not recognizable or self.override_reason(resource) is not None:
            return resource, []
        issues = [Issue("business-rule", describe(self.catalog, d, p), severity="error",
                        expression=("ServiceRequest.code",)) for d, p in recognizable]
        issues.append(Issue("business-rule", "A recognizable result of this item exists. Use it, or re-order with "
                                             f"the extension {self.override_url} giving the reason (a code from "
                                             f"{self.catalog.exception_system}, free text allowed).",
                            expression=("ServiceRequest.extension",)))
        if self.reorder_mode == "enforce":
            raise FhirError(status=422, issues=issues)
        return resource, [Issue(i.code, i.diagnostics, "warning", i.expression) for i in issues]

    def override_reason(self, resource: dict[str, Any]) -> dict[str, Any] | None:
        for extension in resource.get("extension", []):
            if extension.get("url") == self.override_url:
                return extension.get("valueCodeableConcept") or {}
        return None

    def record_override(self, ctx: FhirContext, version: StoredVersion, resource: dict[str, Any]) -> None:
        """after_write: an order stored with an override reason is an override event."""
        if resource.get("resourceType") != "ServiceRequest" or version.vid != 1:
            return
        reason = self.override_reason(resource)
        if reason is None:
            return
        found = [(d, p) for d, p, _ in self.duplicates(ctx, resource, []) if d.recognizable]
        if found:
            requester = self.requester(ctx, (resource.get("requester") or {}).get("reference"))
            self.record(ctx, "override", found[0][0], requester, reason=reason,
                        order=f"ServiceRequest/{version.id}")

    # -- the mark (a before_write hook on results) ---------------------------------------------------------------
    def mark_rule(self, ctx: FhirContext, resource: dict[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
        if resource.get("resourceType") not in RESULT_TYPES:
            return resource, []
        meta = dict(resource.get("meta") or {})
        tags = [t for t in meta.get("tag", []) if t.get("system") != self.catalog.mark_system]  # never trusted
        facts = result_facts(resource, self.catalog.item_system, ctx.planner.zone)
        performer = self.standing(ctx, facts.performer)
        item = self.catalog.item(facts.item) if facts.item else None
        if (item is not None and item.active and facts.final and performer is not None and facts.date_ms
                and performer.member_on(facts.date_ms) and performer.accredited_on(item.category, facts.date_ms)
                and performer.level is not None and performer.level >= item.min_level):
            home = province(performer.region)  # the lists in force when the result was reported
            scopes = [self.catalog.home_scope(home, facts.date_ms), *self.catalog.agreements(home, home, facts.date_ms)]
            tags += [self.catalog.mark(s) for s in scopes if s and self.catalog.in_scope(s, item.code)]
        if tags:
            meta["tag"] = tags
        else:
            meta.pop("tag", None)
        return {**resource, "meta": meta}, []

    # -- events -------------------------------------------------------------------------------------------------
    def record(self, ctx: FhirContext, kind: str, decision: Decision, requester: Standing | None,
               reason: dict[str, Any] | None = None, order: str | None = None,
               evaluation: list[dict[str, str]] | None = None, custodian: str | None = None,
               note: str | None = None, recipients: list[str] | None = None) -> str:
        """Record one event (AuditEvent of type hr-event) and return its id. An evaluation carries its codes as
        subtypes, the performing institution as entity and custodian agent (its results, its events to read),
        the QC centres as information recipients (theirs to read too), and the doctor's note as the result
        entity's description."""
        item = decision.item
        event: dict[str, Any] = {
            "resourceType": "AuditEvent",
            "type": {"system": self.event_system, "code": kind},
            "action": "E", "recorded": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z",
            "outcome": "0",
            "agent": [{"who": {"reference": requester.reference} if requester else {"display": "unknown"},
                       "requestor": True}],
            "source": {"site": province(requester.region) if requester and requester.region else "unknown",
                       "observer": {"display": "fhirserver recognition"}},
            "entity": [{"what": {"reference": decision.result.reference}}]}
        if item is not None:
            event["subtype"] = [self.catalog.item_coding(item.code), self.catalog.item_coding(item.category)]
        if decision.result.patient:
            event["entity"].append({"what": {"reference": decision.result.patient}})
        if order:
            event["entity"].append({"what": {"reference": order}})
        if reason is not None:
            event["purposeOfEvent"] = [reason]
        if kind == "recognition" and item is not None:
            event["extension"] = [{"url": self.saving_url, "valueDecimal": item.price}]
        if evaluation:
            event["subtype"] = [*event.get("subtype", []), *evaluation]
        if note:
            event["entity"][0]["description"] = note[:1000]
        if custodian:
            event["entity"].append({"what": {"reference": custodian}})
            event["agent"].append({"type": CUSTODIAN, "who": {"reference": custodian}, "requestor": False})
        for recipient in recipients or []:
            event["agent"].append({"type": RECIPIENT, "who": {"reference": recipient}, "requestor": False})
        event_id = str(uuid.uuid4())
        if ctx.record_event is not None:
            ctx.record_event({"id": event_id, **event})
        else:
            stored = create.create(ctx, "AuditEvent", {"id": event_id, **event}, RequestInfo(base_url=""))
            event_id = stored.version.id if stored.version else event_id
        return event_id
