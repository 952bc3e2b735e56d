"""Does a patient's Consent let an organization see this kind of data now? (R4 Consent, scope patient-privacy)

A provision applies when its period covers now, its actors include the organization (by reference, or by
region through an actor reference whose identifier is the hr-region code) and its classes include the resource
type; empty lists match everything. A nested provision that applies overrides its parent; among siblings deny
wins. Across several active consents of the patient, deny wins; no applicable permit means no access.
http://hl7.org/fhir/R4/consent.html#provision
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..fhir.search.values import date_range

SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"


@dataclass(frozen=True)
class Requester:
    organization: str | None
    region: str | None


class ConsentEvaluator:
    def __init__(self, region_system: str, zone: Any, capture_url: str | None = None) -> None:
        self.region_system = region_system
        self.zone = zone
        self.capture_url = capture_url  # a permit counts only from a consent stamped captured (consent_capture.py)

    def decide(self, consents: Iterable[dict[str, Any]], who: Requester, resource_type: str, now_ms: float) -> bool:
        return bool(self.permitting(consents, who, resource_type, now_ms))

    def permitting(self, consents: Iterable[dict[str, Any]], who: Requester, resource_type: str,
                   now_ms: float) -> tuple[str, ...]:
        """The ids of the consents whose permit lets `who` see the type now (empty: no access); the audit names
        them as the policy each disclosure was made under."""
        permits: list[str] = []
        for consent in consents:
            if not self.is_privacy_consent(consent):
                continue
            outcome = self._provision(consent.get("provision") or {}, who, resource_type, now_ms, root=True)
            if outcome == "deny":
                return ()
            if outcome == "permit" and self.captured(consent):  # a permit nobody confirmed grants nothing
                permits.append(str(consent.get("id", "")))
        return tuple(permits)

    def captured(self, consent: dict[str, Any]) -> bool:
        return self.capture_url is None or any(
            isinstance(e, dict) and e.get("url") == self.capture_url and e.get("valueCode")
            for e in consent.get("extension") or [])

    @staticmethod
    def is_privacy_scope(consent: dict[str, Any]) -> bool:
        scope = consent.get("scope") or {}
        return any(c.get("system") == SCOPE_SYSTEM and c.get("code") == "patient-privacy"
                   for c in scope.get("coding", []) if isinstance(c, dict))

    @classmethod
    def is_privacy_consent(cls, consent: dict[str, Any]) -> bool:
        return consent.get("status") == "active" and cls.is_privacy_scope(consent)

    def _provision(self, provision: dict[str, Any], who: Requester, resource_type: str, now_ms: float,
                   root: bool = False) -> str | None:
        if not self._applies(provision, who, resource_type, now_ms):
            return None
        outcome = provision.get("type") or ("deny" if root else None)
        nested = [self._provision(p, who, resource_type, now_ms) for p in provision.get("provision", [])]
        nested = [n for n in nested if n is not None]
        if nested:
            outcome = "deny" if "deny" in nested else "permit"
        return outcome

    def _applies(self, provision: dict[str, Any], who: Requester, resource_type: str, now_ms: float) -> bool:
        period = provision.get("period")
        if period:
            start = date_range(period["start"], self.zone).lo if period.get("start") else float("-inf")
            end = date_range(period["end"], self.zone).hi if period.get("end") else float("inf")
            if not start <= now_ms < end:
                return False
        classes = [c.get("code") for c in provision.get("class", []) if c.get("system") in (None, RESOURCE_TYPES)]
        if provision.get("class") and resource_type not in classes:
            return False
        actors = provision.get("actor", [])
        return not actors or any(self._actor_matches(a.get("reference") or {}, who) for a in actors)

    def _actor_matches(self, reference: dict[str, Any], who: Requester) -> bool:
        if who.organization and reference.get("reference") == who.organization:
            return True
        identifier = reference.get("identifier") or {}
        return bool(who.region and identifier.get("system") == self.region_system
                    and identifier.get("value") == who.region)
