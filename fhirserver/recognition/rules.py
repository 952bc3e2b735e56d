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
    """The decision under the best scope that applies: the regional list in force (the requester's province, or
    an agreement between the two provinces), then the close medical alliance both belong to. A scope's own rules
    (its items, windows, whether the item minimum applies, its level direction) decide per scope; the rest holds
    under every scope. Refused under all, the answer gives the reasons of the scope that came closest."""
    item = catalog.item(result.item) if result.item else None
    candidates = [(scope, _scope_reasons(catalog, item, result, performer, context, scope))
                  for scope in _scopes(catalog, item, performer, context, result.date_ms)]
    if candidates:
        scope, (specific, valid_until) = min(candidates, key=lambda c: len(c[1][0]))
    else:  # no list applies at all: the catalog's own window and minimum
        scope, (specific, valid_until) = None, _scope_reasons(catalog, item, result, performer, context, None)
    reasons = ["status-not-final"] if not result.final else []
    reasons += [r for r in ("not-in-scope", "outside-window") if r in specific]
    if performer is None or result.date_ms is None or not (performer.member_on(result.date_ms)
                                                             and performer.member_on(context.moment_ms)):
        reasons.append("performer-not-admitted")
    if item is not None and (performer is None or result.date_ms is None
                             or not performer.accredited_on(item.category, result.date_ms)):
        reasons.append("performer-not-qc")
    reasons += [r for r in ("performer-level-too-low", "level-direction") if r in specific]
    if superseded:
        reasons.append("superseded")
    reasons += [code for code in context.exceptions if catalog.is_exception(code)]
    return Decision(result=result, recognizable=not reasons, reasons=reasons, item=item,
                    valid_until_ms=valid_until, scope=scope)


def _scope_reasons(catalog: RecognitionCatalog, item: ItemFacts | None, result: ResultFacts,
                   performer: Standing | None, context: EvaluationContext,
                   scope: str | None) -> tuple[list[str], float | None]:
    """What one scope (a list version, or None for the catalog alone) says of the result, and its window's end."""
    reasons: list[str] = []
    if item is None or not item.active or scope is None or not catalog.in_scope(scope, item.code):
        reasons.append("not-in-scope")
    valid_until = None
    if result.date_ms is not None and item is not None:
        valid_until = result.date_ms + catalog.validity_days(item.code, scope) * DAY_MS
        if context.moment_ms >= valid_until:
            reasons.append("outside-window")
    elif result.date_ms is None:
        reasons.append("outside-window")  # a result without a date cannot be placed in a window
    policy = catalog.policy(scope) if scope else None
    level = performer.level if performer else None
    if item is not None and (policy is None or policy.min_level) and (level is None or level < item.min_level):
        reasons.append("performer-level-too-low")
    requester_level = context.requester.level if context.requester else None
    if policy is not None and not policy.allows(requester_level, level):
        reasons.append("level-direction")
    return reasons, valid_until


def _province(standing: Standing | None) -> str | None:
    return province(standing.region) if standing else None


def _scopes(catalog: RecognitionCatalog, item: ItemFacts | None, performer: Standing | None,
            context: EvaluationContext, result_ms: float | None) -> list[str]:
    """The scopes (list versions in force at the moment) that could apply: the requester's province list when both
    are in the same province, else an agreement between the two; then their common close medical alliance."""
    if item is None:
        return []
    home, away = _province(context.requester), _province(performer)
    scopes = [catalog.home_scope(home, context.moment_ms)] if home == away else \
        catalog.agreements(home, away, context.moment_ms)
    if _one_alliance(performer, context.requester, result_ms, context.moment_ms):
        scopes.append(catalog.alliance_scope(context.moment_ms))
    return [s for s in scopes if s]


def _one_alliance(performer: Standing | None, requester: Standing | None, result_ms: float | None,
                  moment_ms: float) -> bool:
    """Whether performer and requester are members of one close medical alliance: the performer when it produced
    the result and now, the requester now."""
    if performer is None or requester is None or result_ms is None:
        return False
    return bool(performer.alliances_on(result_ms) & performer.alliances_on(moment_ms)
                & requester.alliances_on(moment_ms))


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


def explain_to_patient(catalog: RecognitionCatalog, decision: Decision, performer: Standing | None) -> str:
    """The same decision for the patient, in plain Chinese from the reasons' patient-text (no codes, no jargon):
    what the doctor's explanation starts from (national guidance: the doctor explains a refusal to the patient)."""
    where = performer.name if performer and performer.name else "其他医院"
    what = decision.item.display if decision.item else "检查检验"
    when = decision.result.date_text or "之前"
    if decision.recognizable:
        until = (decision.valid_until() or "")[:10]
        return f"您{when}在{where}做的{what}，结果可以在本院直接使用，不用重复检查（{until}前有效）。"
    why = "；".join(catalog.patient_text(r) for r in decision.reasons)
    return f"您{when}在{where}做的{what}，这次不能直接使用，需要重新检查：{why}。"


def moment(value: str | None, zone: Any) -> float:
    """An evaluation time as epoch ms; now when not given."""
    if not value:
        return datetime.now(UTC).timestamp() * 1000
    return date_range(value, zone).lo
