"""The recognition rules: one decision, with coded reasons, for one prior result in one requesting context.

Every list and threshold comes from data: the item's scope, validity window (regional overrides) and
minimum level from terminology/; the performer's level, region, network membership and QC accreditation
from stored Organization / OrganizationAffiliation resources; reasons from CodeSystem hr-exception.
The rules themselves are code, written once (domain notes, "Rules a recognition decision must apply").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..fhir.search.values import date_range
from .catalog import ItemFacts, RecognitionCatalog, province
from .facts import ResultFacts
from .standing import Standing

DAY_MS = 86_400_000


@dataclass
class EvaluationContext:
    requester: Standing | None
    moment_ms: float
    exceptions: list[str] = field(default_factory=list)  # hr-exception codes given by the doctor


@dataclass
class Decision:
    result: ResultFacts
    recognizable: bool
    reasons: list[str]
    item: ItemFacts | None
    valid_until_ms: float | None
    scope: str | None  # the ValueSet under which the item was recognized

    def valid_until(self) -> str | None:
        if self.valid_until_ms is None:
            return None
        return datetime.fromtimestamp(self.valid_until_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def evaluate(catalog: RecognitionCatalog, result: ResultFacts, performer: Standing | None,
             context: EvaluationContext, superseded: bool = False) -> Decision:
    reasons: list[str] = []
    item = catalog.item(result.item) if result.item else None
    if not result.final:
        reasons.append("status-not-final")
    scope = _scope(catalog, item, performer, context.requester)
    if item is None or not item.active or scope is None:
        reasons.append("not-in-scope")
    valid_until = None
    if result.date_ms is not None and item is not None:
        days = catalog.validity_days(item.code, scope or catalog.home_scope(_province(context.requester)))
        valid_until = result.date_ms + days * DAY_MS
        if context.moment_ms >= valid_until:
            reasons.append("outside-window")
    elif result.date_ms is None:
        reasons.append("outside-window")  # a result without a date cannot be placed in a window
    if performer is None or result.date_ms is None or not (performer.member_on(result.date_ms)
                                                             and performer.member_on(context.moment_ms)):
        reasons.append("performer-not-admitted")
    if item is not None and (performer is None or result.date_ms is None
                             or not performer.accredited_on(item.category, result.date_ms)):
        reasons.append("performer-not-qc")
    if item is not None and (performer is None or performer.level is None or performer.level < item.min_level):
        reasons.append("performer-level-too-low")
    if superseded:
        reasons.append("superseded")
    reasons += [code for code in context.exceptions if catalog.is_exception(code)]
    return Decision(result=result, recognizable=not reasons, reasons=reasons, item=item,
                    valid_until_ms=valid_until, scope=scope)


def _province(standing: Standing | None) -> str | None:
    return province(standing.region) if standing else None


def _scope(catalog: RecognitionCatalog, item: ItemFacts | None, performer: Standing | None,
           requester: Standing | None) -> str | None:
    """The scope under which the item is recognized for this performer and requester, if any:
    the requester's province list when both are in the same province, else an agreement between the two."""
    if item is None:
        return None
    home, away = _province(requester), _province(performer)
    candidates = [catalog.home_scope(home)] if home == away else catalog.agreements(home, away)
    return next((s for s in candidates if s and catalog.in_scope(s, item.code)), None)


def describe(catalog: RecognitionCatalog, decision: Decision, performer: Standing | None) -> str:
    """The sentence a doctor reads: 患者于2026-01-02在XX医院完成胸部DR，结果可互认，有效期至…"""
    where = performer.name if performer and performer.name else (decision.result.performer or "其他医院")
    region = catalog.region_name(performer.region) if performer else None
    if region and not where.startswith(region):
        where = f"{region}{where}"  # the origin region, for results from another province's platform
    what = decision.item.display if decision.item else "检查检验"
    when = decision.result.date_text or "日期不详"
    if decision.recognizable:
        until = decision.valid_until() or ""
        return f"患者于{when}在{where}完成{what}，结果可互认，有效期至{until[:10]}。"
    why = "、".join(catalog.reason(r)["coding"][0]["display"] for r in decision.reasons)
    return f"患者于{when}在{where}完成{what}，结果不予互认（{why}）。"


def moment(value: str | None, zone: Any) -> float:
    """An evaluation time as epoch ms; now when not given."""
    if not value:
        return datetime.now(UTC).timestamp() * 1000
    return date_range(value, zone).lo
