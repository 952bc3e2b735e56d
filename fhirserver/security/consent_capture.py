"""How a Consent becomes effective: captured at the point of care, never granted by a hospital to itself alone.

A patient-privacy Consent that permits an organization X to see the person's results from other hospitals counts
(security/consent.py) only when the server stamped it as captured, which it does on a write that meets all of:
- **narrow**: every permit names X, the organization recording it, and only X (no region, no one else, not
  "everyone"); purpose treatment (TREAT, set when absent); a period of at most FHIRSERVER_CONSENT_DAYS
  (set from now when absent);
- **a care relationship**: X keeps its own record of the person, and an order (ServiceRequest) of X for the
  person changed within the period (from a day before its start);
- **confirmed**: attested in person by a named practitioner of X (the writer's token names them as fhirUser;
  FHIRSERVER_CONSENT_CAPTURE=attested, the default), or accepted by the patient's own token (a `proposed`
  Consent whose patient's token sets it `active`; the only way in FHIRSERVER_CONSENT_CAPTURE=patient).
A write that fails a rule is refused with a sentence saying which, never stored as a Consent that silently
grants nothing. The stamps (hr-consent-capture, hr-consent-attester) are computed here on every write and
never taken from the sender. A Consent that only denies, or is not active, needs no capture: it can only narrow.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from ..fhir.errors import FhirError, Issue
from ..fhir.interactions import in_flight
from ..fhir.interactions.context import FhirContext
from ..fhir.interactions.search import find
from ..fhir.search.values import date_range
from ..persons.index import PersonIndex
from .consent import ConsentEvaluator
from .principal import Principal, current

TREAT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}
DAY_MS = 86_400_000


class ConsentCapture:
    def __init__(self, canonical_base: str, mode: str, max_days: int, persons: PersonIndex, zone: timezone) -> None:
        self.mode = mode
        self.max_days = max_days
        self.persons = persons
        self.zone = zone
        self.capture_url = f"{canonical_base}/StructureDefinition/hr-consent-capture"
        self.attester_url = f"{canonical_base}/StructureDefinition/hr-consent-attester"

    # -- before_write hook ------------------------------------------------------------------------------------
    def rule(self, ctx: FhirContext, resource: dict[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
        if resource.get("resourceType") != "Consent":
            return resource, []
        resource = self._unstamped(resource)
        p = current()
        if p is None or p.unrestricted or not self._permits(resource):
            return resource, []  # no caller to confirm it (auth off, the command line), or nothing it would grant
        if p.patient:
            return self._confirmed_by_patient(ctx, p, resource), []
        return self._recorded_by_organization(ctx, p, resource), []

    def _confirmed_by_patient(self, ctx: FhirContext, p: Principal, resource: dict[str, Any]) -> dict[str, Any]:
        subject = (resource.get("patient") or {}).get("reference")
        if not isinstance(subject, str) or subject not in self.persons.records(ctx, p.patient or ""):
            raise _refused("A patient's token confirms only consents about that patient.", "Consent.patient")
        organization = _single_organization(resource)
        if organization is None:
            raise _refused("The Consent names no single recording organization (Consent.organization).",
                           "Consent.organization")
        resource = self._narrowed(organization, resource)
        if resource.get("status") == "active":
            return self._stamped(resource, "patient", p.patient or "")
        return resource

    def _recorded_by_organization(self, ctx: FhirContext, p: Principal, resource: dict[str, Any]) -> dict[str, Any]:
        if not p.organization:
            raise _refused("Only an organization's token records a consent that lets it look (the token has no "
                           "organization claim).", "Consent.organization")
        resource = self._narrowed(p.organization, resource)
        self._check_care(ctx, p, resource)
        if resource.get("status") != "active":
            return resource  # proposed: waits for the patient's confirmation
        if self.mode == "patient":
            raise _refused("On this platform the patient confirms a consent: store it with status 'proposed'; it "
                           "becomes active when the patient's own token sets it active "
                           "(FHIRSERVER_CONSENT_CAPTURE=patient).", "Consent.status")
        if not p.practitioner:
            raise _refused("A consent to look is attested by the practitioner who took it from the patient: record "
                           "it with a user token whose fhirUser names them (a backend's system token cannot "
                           "attest).", "Consent")
        return self._stamped(resource, "attested", p.practitioner)

    # -- the rules ------------------------------------------------------------------------------------------
    def _narrowed(self, organization: str, resource: dict[str, Any]) -> dict[str, Any]:
        """Every permit names only `organization`; purpose treatment; a bounded period (defaults filled in)."""
        provision = dict(resource.get("provision") or {})
        for permit in _permits_in(provision):
            actors = [(a.get("reference") or {}).get("reference") for a in permit.get("actor") or []]
            if not actors or any(a != organization for a in actors):
                raise _refused(f"A Consent recorded by {organization} permits only {organization} "
                               f"(provision.actor): each hospital records, with the patient, its own consent to "
                               f"look; a consent for others, a region or everyone is not accepted.",
                               "Consent.provision.actor")
        purposes = provision.get("purpose") or []
        if any((c.get("system"), c.get("code")) != (TREAT["system"], TREAT["code"]) for c in purposes):
            raise _refused("A consent to look at other hospitals' results is for treatment only "
                           "(provision.purpose: v3-ActReason TREAT).", "Consent.provision.purpose")
        provision["purpose"] = [TREAT]
        provision["period"] = self._period(provision.get("period"))
        return {**resource, "provision": provision}

    def _period(self, period: Any) -> dict[str, str]:
        now = datetime.now(self.zone)
        if not period:
            return {"start": now.isoformat(timespec="seconds"),
                    "end": (now + timedelta(days=self.max_days)).isoformat(timespec="seconds")}
        if not isinstance(period, dict) or not period.get("start") or not period.get("end"):
            raise _refused("provision.period needs both start and end (or leave it out: the visit and "
                           f"{self.max_days} days are then recorded).", "Consent.provision.period")
        start = date_range(period["start"], self.zone).lo
        end = date_range(period["end"], self.zone).hi
        if end - start > (self.max_days + 1) * DAY_MS:
            raise _refused(f"A consent to look lasts at most {self.max_days} days on this platform "
                           f"(FHIRSERVER_CONSENT_DAYS); provision.period is longer.", "Consent.provision.period")
        if end <= time.time() * 1000:
            raise _refused("provision.period has already ended.", "Consent.provision.period")
        return {"start": period["start"], "end": period["end"]}

    def _check_care(self, ctx: FhirContext, p: Principal, resource: dict[str, Any]) -> None:
        """The recording organization keeps its own record of the person and an order for them in the period,
        stored or arriving in the same transaction Bundle (a visit registered, ordered and consented at once)."""
        subject = (resource.get("patient") or {}).get("reference")
        records = self.persons.records(ctx, subject) if isinstance(subject, str) else []
        ids = [r.split("/", 1)[1] for r in records if r.startswith("Patient/")]
        owners = ",".join(p.owners)
        arriving = [f"Patient/{r['id']}" for r in in_flight.resources("Patient")
                    if (r.get("managingOrganization") or {}).get("reference") in p.owners]
        if subject not in arriving and (not ids or not find(ctx, "Patient", [("_id", ",".join(ids)),
                                                                              ("owner", owners)], 1)):
            raise _refused(f"{p.organization} has no record of this patient (a Patient it manages that is the "
                           f"same person): a hospital records consent only for its own patients.", "Consent.patient")
        start = date_range(resource["provision"]["period"]["start"], self.zone).lo - DAY_MS
        since = datetime.fromtimestamp(start / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ordered = any((r.get("subject") or {}).get("reference") in {*records, subject}
                      and (r.get("requester") or {}).get("reference") in p.owners
                      for r in in_flight.resources("ServiceRequest"))
        if not ordered and not find(ctx, "ServiceRequest", [("patient", ",".join(records)), ("owner", owners),
                                                            ("_lastUpdated", f"ge{since}")], 1):
            raise _refused(f"{p.organization} has no order (ServiceRequest) for this patient in the consent's "
                           f"period: consent to look at other hospitals' results is taken for a visit, with the "
                           f"order that needs them.", "Consent.patient")

    # -- stamps ---------------------------------------------------------------------------------------------
    def _permits(self, resource: dict[str, Any]) -> bool:
        return (resource.get("status") in ("active", "proposed") and ConsentEvaluator.is_privacy_scope(resource)
                and bool(_permits_in(resource.get("provision") or {})))

    def _unstamped(self, resource: dict[str, Any]) -> dict[str, Any]:
        extensions = [e for e in resource.get("extension") or []
                      if not (isinstance(e, dict) and e.get("url") in (self.capture_url, self.attester_url))]
        out = {k: v for k, v in resource.items() if k != "extension"}
        return {**out, "extension": extensions} if extensions else out

    def _stamped(self, resource: dict[str, Any], how: str, who: str) -> dict[str, Any]:
        return {**resource, "extension": [*resource.get("extension", []),
                                          {"url": self.capture_url, "valueCode": how},
                                          {"url": self.attester_url, "valueReference": {"reference": who}}]}


def _permits_in(provision: dict[str, Any]) -> list[dict[str, Any]]:
    """The provisions that permit (the root unless it denies, and nested permits)."""
    out = [provision] if provision and provision.get("type", "deny") == "permit" else []
    for nested in provision.get("provision") or []:
        if isinstance(nested, dict):
            out += _permits_in(nested)
    return out


def _single_organization(resource: dict[str, Any]) -> str | None:
    refs = [(o or {}).get("reference") for o in resource.get("organization") or []]
    return refs[0] if len(refs) == 1 and isinstance(refs[0], str) else None


def _refused(text: str, where: str) -> FhirError:
    return FhirError.of(403, "forbidden", text, where)
