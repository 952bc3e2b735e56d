"""Doctors' evaluations of other institutions' results (结果评价, Sichuan's platform): a coded judgement from
CodeSystem hr-evaluation, recorded as an AuditEvent of type hr-event `evaluation`, so that $statistics counts them
per performing institution and item and a quality-control centre lists a hospital's poorly evaluated results with
an ordinary AuditEvent search. An evaluation never excludes a result by itself: the QC decision stays with people,
recorded as data (the qc-accredited OrganizationAffiliation)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..fhir.errors import FhirError, Issue, bad_request, not_found
from ..fhir.interactions.context import FhirContext
from ..fhir.json_format import loads
from ..store.indexes import index_field
from .catalog import RecognitionCatalog
from .facts import result_facts
from .rules import EvaluationContext, moment

MAX_EVALUATIONS = 100_000  # evaluation events one statistics report reads to stratify


class Evaluations:
    def __init__(self, catalog: RecognitionCatalog) -> None:
        self.catalog = catalog
        self.system = f"{catalog.canonical}/CodeSystem/hr-evaluation"

    def coding(self, code: str) -> dict[str, str]:
        concept = self.catalog.terminology.code_system(self.system).concepts[code]
        return {"system": self.system, "code": code, "display": concept.display}

    def is_poor(self, code: str) -> bool:
        return "poor" in self.catalog.terminology.code_system(self.system).ancestors(code)

    def check(self, coding: dict[str, Any] | None, note: str | None) -> str:
        """The evaluation code given, or a 400 naming what is wrong with it."""
        index = self.catalog.terminology.code_system(self.system)
        if not isinstance(coding, dict) or coding.get("system") != self.system:
            raise bad_request(f"evaluation is a Coding of {self.system}.", "evaluation")
        code = str(coding.get("code", ""))
        if code not in index.concepts or index.concepts[code].children:
            choices = ", ".join(c for c, concept in index.concepts.items() if not concept.children)
            raise bad_request(f"evaluation code {code[:40]!r} is not one of {choices}.", "evaluation")
        if code == "other" and not (note or "").strip():
            raise bad_request("evaluation 'other' needs a note saying what the problem is.", "note")
        return code

    def evaluate(self, ctx: FhirContext, recognition: Any, resource_type: str, resource_id: str,
                 evaluator_ref: str | None, coding: dict[str, Any] | None, note: str | None) -> dict[str, Any]:
        code = self.check(coding, note)
        version = ctx.store.versions.read_current(resource_type, resource_id)
        if version is None or version.deleted or not ctx.access.disclose([version]):
            raise not_found(f"{resource_type}/{resource_id[:64]} does not exist.")
        evaluator = recognition.acting(ctx, evaluator_ref, "evaluator")
        resource = loads(version.text or "{}")
        facts = result_facts(resource, self.catalog.item_system, ctx.planner.zone)
        if facts.performer is None or facts.performer == evaluator.reference:
            raise FhirError(422, [Issue("business-rule", "Only another institution's result is evaluated here; this "
                                                         "result names no performer, or the evaluator performed it.",
                                        expression=("evaluator",))])
        now = EvaluationContext(evaluator, moment(None, ctx.planner.zone))
        decision, performer = recognition.decide(ctx, version, now, superseded=False)
        event_id = recognition.record(ctx, "evaluation", decision, evaluator,
                                      evaluation=[self.coding(code), *([self.coding("poor")] if self.is_poor(code)
                                                                       else [])],
                                      custodian=facts.performer, note=note,
                                      recipients=self.quality_centres(performer, decision))
        return {"resourceType": "Parameters", "parameter": [
            {"name": "evaluation", "valueCoding": self.coding(code)},
            {"name": "event", "valueReference": {"reference": f"AuditEvent/{event_id}"}},
            {"name": "result", "valueReference": {"reference": facts.reference}},
            {"name": "performer", "valueReference": {"reference": facts.performer,
                                                     **({"display": performer.name} if performer else {})}}]}

    @staticmethod
    def quality_centres(performer: Any, decision: Any) -> list[str]:
        """Who reviews the evaluation: the organizations that accredited the performer for the item's category
        (the qc-accredited OrganizationAffiliation's organization, the QC centre), now."""
        if performer is None or decision.item is None:
            return []
        now = moment(None, None)
        return sorted({a.organization for a in performer.affiliations if a.code == "qc-accredited"
                       and decision.item.category in a.categories and a.covers(now) and a.organization})

    def strata(self, ctx: FhirContext, match: dict[str, Any]) -> list[dict[str, Any]]:
        """Evaluations counted per performing institution, item and evaluation code: the stratifier of $statistics."""
        rows = ctx.store.search.aggregate("AuditEvent", [
            {"$match": match}, {"$sort": {"ts": 1}}, {"$limit": MAX_EVALUATIONS},
            {"$project": {"e": f"${index_field('entity')}", "s": f"${index_field('subtype')}"}}])
        categories = {f"{self.catalog.item_system}|{c}" for c in self.catalog.categories()}
        counts: Counter[tuple[str, str, str]] = Counter()
        for row in rows:
            performer = next((v for v in row.get("e") or [] if isinstance(v, str) and v.startswith("Organization/")),
                             "")
            subtypes = [v for v in row.get("s") or [] if isinstance(v, str)]
            item = next((v.split("|", 1)[1] for v in subtypes if v.startswith(f"{self.catalog.item_system}|")
                         and v not in categories), "")
            for value in subtypes:
                if value.startswith(f"{self.system}|") and value != f"{self.system}|poor":
                    counts[(performer, item, value.split("|", 1)[1])] += 1
        def item_value(item: str) -> dict[str, Any]:
            return {"coding": [self.catalog.item_coding(item)]} if item else {"text": "unknown"}

        return [{"value": {"coding": [self.coding(code)]},
                 "component": [{"code": {"text": "performer"}, "value": {"text": performer or "unknown"}},
                               {"code": {"text": "item"}, "value": item_value(item)}],
                 "measureScore": {"value": n}}
                for (performer, item, code), n in sorted(counts.items())]

    def poor_filter(self) -> dict[str, Any]:
        return {index_field("subtype"): {"$in": [f"{self.system}|poor"]}}

