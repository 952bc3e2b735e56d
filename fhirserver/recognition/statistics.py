"""$statistics: a MeasureReport of recognition activity, aggregated in MongoDB from the recorded events
(AuditEvent of type hr-event), never kept as counters. http://hl7.org/fhir/R4/measurereport.html"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..fhir.errors import FhirError, bad_request
from ..fhir.interactions.context import FhirContext
from ..fhir.search.query import Criterion
from ..fhir.search.values import ValueFormatError
from ..persons.index import PersonIndex
from ..store.filters import all_of
from ..store.indexes import index_field
from .catalog import RecognitionCatalog, province
from .evaluations import Evaluations

MAX_RECOGNITIONS = 100_000  # recognition events one report reads to count repeats avoided per person and item

GROUPS = (("view", "跨机构调阅次数 Cross-institution views"),
          ("duplicate-prompt", "重复检查提示次数 Duplicate prompts"),
          ("recognition", "互认次数 Recognitions accepted"),
          ("repeat-avoided", "避免重复检查次数 Repeats avoided"),
          ("override", "有理由复查次数 Overrides"),
          ("evaluation", "外院结果评价次数 Evaluations of outside results"),
          ("evaluation-poor", "评价为质量存疑次数 Evaluated as poor"))


def statistics(ctx: FhirContext, catalog: RecognitionCatalog, start: str | None, end: str | None,
               region: str | None, organization: str | None, category: str | None,
               persons: PersonIndex | None = None) -> dict[str, Any]:
    event_system = f"{catalog.canonical}/CodeSystem/hr-event"
    if ctx.settle_events is not None:
        ctx.settle_events()  # count every event recorded before this request, spooled ones included
    criteria: list[Criterion] = []
    for name, prefix, value in (("period-start", "ge", start), ("period-end", "le", end)):
        if not value:
            continue
        criterion = Criterion("date", "date", None, (f"{prefix}{value}",), name)
        try:
            ctx.planner.plan([criterion])
        except (ValueFormatError, FhirError):  # the planner's own sentence would show its internal prefix
            raise bad_request(f"{name} is a FHIR date such as 2026-01-01, got {value[:30]!r}.", name) from None
        criteria.append(criterion)
    base_filter = ctx.planner.plan(criteria)
    clauses = [base_filter]
    if region:
        if province(region) is None:
            raise bad_request("region is a GB/T 2260 code such as 500000.", "region")
        clauses.append({index_field("site"): {"$in": [province(region)]}})
    if organization:
        reference = organization if "/" in organization else f"Organization/{organization}"
        clauses.append({index_field("agent"): {"$in": [reference]}})
    if category:
        if category not in catalog.categories():
            raise bad_request(f"category is one of {', '.join(catalog.categories())}.", "category")
        clauses.append({index_field("subtype"): {"$in": [f"{catalog.item_system}|{category}"]}})
    base = all_of(*clauses)

    def count(kind: str) -> tuple[int, float]:
        match = all_of(base, {index_field("type"): {"$in": [f"{event_system}|{kind}"]}})
        rows = ctx.store.search.aggregate("AuditEvent", [
            {"$match": match}, {"$group": {"_id": None, "n": {"$sum": 1}, "saving": {"$sum": "$so.saving"}}}])
        return (int(rows[0]["n"]), float(rows[0]["saving"])) if rows else (0, 0.0)

    counts = {kind: count(kind) for kind in ("view", "duplicate-prompt", "recognition", "override", "evaluation")}
    evaluations = Evaluations(catalog)
    evaluated = all_of(base, {index_field("type"): {"$in": [f"{event_system}|evaluation"]}})
    poor = ctx.store.search.count("AuditEvent", all_of(evaluated, evaluations.poor_filter()))
    recognized, _ = counts["recognition"]
    avoided, saved = _repeats_avoided(ctx, catalog, persons, all_of(
        base, {index_field("type"): {"$in": [f"{event_system}|recognition"]}}))
    by_reason = ctx.store.search.aggregate("AuditEvent", [
        {"$match": all_of(base, {index_field("type"): {"$in": [f"{event_system}|override"]}})},
        {"$unwind": f"${index_field('reason')}"},
        {"$group": {"_id": f"${index_field('reason')}", "n": {"$sum": 1}}}])
    reasons = sorted((row["_id"].split("|", 1)[1], int(row["n"])) for row in by_reason
                     if isinstance(row["_id"], str) and row["_id"].startswith(f"{catalog.exception_system}|"))
    values = {"view": counts["view"][0], "duplicate-prompt": counts["duplicate-prompt"][0],
              "recognition": recognized, "repeat-avoided": avoided, "override": counts["override"][0],
              "evaluation": counts["evaluation"][0], "evaluation-poor": poor}
    groups: list[dict[str, Any]] = [
        {"code": {"coding": [{"system": event_system, "code": code}], "text": text} if code != "evaluation-poor"
         else {"coding": [evaluations.coding("poor")], "text": text},
         "measureScore": {"value": values[code]}} for code, text in GROUPS]
    strata = evaluations.strata(ctx, evaluated) if values["evaluation"] else []
    if strata:  # per performing institution, item and evaluation code
        groups[5]["stratifier"] = [{"code": [{"text": "performer, item, evaluation"}], "stratum": strata}]
    groups.insert(5, {"code": {"text": "节省费用(元) Money saved (CNY)"},
                   "measureScore": {"value": round(saved, 2), "unit": "CNY", "system": "urn:iso:std:iso:4217",
                                    "code": "CNY"}})
    if reasons:
        groups[4]["stratifier"] = [{"code": [{"text": "reason"}], "stratum": [
            {"value": catalog.reason(code), "measureScore": {"value": n}} for code, n in reasons]}]
    now = datetime.now(UTC)
    return {"resourceType": "MeasureReport", "status": "complete", "type": "summary",
            "measure": f"{catalog.canonical}/Measure/hr-recognition",
            "date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "period": {"start": start or "1900-01-01", "end": end or now.strftime("%Y-%m-%d")},
            "group": groups}


def _repeats_avoided(ctx: FhirContext, catalog: RecognitionCatalog, persons: PersonIndex | None,
                     match: dict[str, Any]) -> tuple[int, float]:
    """Repeats avoided, and money saved: one per person and item however many times (and under however many of
    the person's hospital records) a result of that item was accepted in the period, at the item's price."""
    rows = ctx.store.search.aggregate("AuditEvent", [
        {"$match": match}, {"$sort": {"ts": 1}}, {"$limit": MAX_RECOGNITIONS},
        {"$project": {"p": f"${index_field('patient')}", "i": f"${index_field('subtype')}", "s": "$so.saving"}}])
    categories = {f"{catalog.item_system}|{c}" for c in catalog.categories()}
    person_of: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    saved = 0.0
    for row in rows:
        patients = sorted(v for v in row.get("p") or [] if isinstance(v, str) and v.startswith("Patient/"))
        items = [v for v in row.get("i") or [] if isinstance(v, str) and v.startswith(f"{catalog.item_system}|")
                 and v not in categories]
        if not patients or not items:
            key = (str(row["_id"]), "")  # an event without a patient or item counts on its own
        else:
            if patients[0] not in person_of:
                records = persons.records(ctx, patients[0]) if persons is not None else [patients[0]]
                person_of.update({r: min(records) for r in records if r not in person_of})
            key = (person_of.get(patients[0], patients[0]), items[0])
        if key not in seen:
            seen.add(key)
            saved += float(row.get("s") or 0)
    return len(seen), saved
