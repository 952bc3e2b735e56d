"""The access policy: scopes decide which interactions a caller may use; ownership and consent decide which
patient data it may see; only owners write.

- Data owner: the organization (or practitioner) named by the `owner` search parameter (profiles/
  SearchParameter-hr-owner.json). Owners write their resources and always read them.
- Patient data (types in the Patient compartment, and Patient): another organization sees it only while an
  active Consent of that patient permits it (security/consent.py), or under break-the-glass (audited).
  A patient-context token sees only its patient's compartment.
- A patient-context token sees its person's data under every record of the person (the person index links them):
  the patient's own results from every hospital, the Consents about them and the AuditEvents of who looked. A
  Consent is also visible to every hospital keeping a record of that person (the
  custodians of the data it opens), when they ask about a patient (`Consent?patient=` or `person=`).
- Every disclosure made under a consent names that Consent in the audit, and the other organizations whose data
  was disclosed (consent or break-the-glass) are agents of the event, so each can search who looked at its data.
- The order is a care relationship: the organization that ordered a test (ServiceRequest.requester) reads the
  results based on that order (basedOn) without a separate consent, the township clinic's report from the county
  hospital (乡开县检). The audit names the order as the ground, as it names a Consent.
- A Subscription is its subscriber's (it may carry endpoint credentials): only the subscriber and platform
  backends see it.
- Types without an owner parameter (Organization, Practitioner, ...) are readable by every authenticated
  caller and writable only by platform backends (system scopes).
- What a caller may not see is answered exactly like what does not exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..fhir import never_shown
from ..fhir.errors import FhirError, not_found
from ..fhir.interactions.context import FhirContext
from ..fhir.interactions.search import find
from ..fhir.json_format import loads
from ..fhir.search.compartments import Compartments
from ..fhir.search.query import Criterion
from ..persons.index import PersonIndex
from ..store.indexes import index_field
from ..store.records import StoredVersion
from .consent import ConsentEvaluator, Requester
from .principal import Principal, current
from .scopes import grants

OWNER = "owner"
NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
MAX_CONSENTS = 20_000
CUSTODIAN_VISIBLE = frozenset({"Consent"})  # also visible to every hospital keeping a record of the person
MAX_ASKED = 50  # patients named by one query that the custodian rule looks at
PRIVATE_TYPES = frozenset({"Subscription"})  # seen only by their owner and platform backends
MAX_ORDERS = 5000  # orders of the caller a search widens by (the newest; older ones' results stay readable by id)
MAX_ORDERS_PER_RESULT = 5


class PolicyAccess:
    def __init__(self, consents: ConsentEvaluator, compartments: Compartments, owned_types: set[str],
                 region_of: Callable[[str], str | None], persons: PersonIndex,
                 order_params: dict[str, str] | None = None) -> None:
        self.consents = consents
        self.persons = persons  # a Consent given on any record of the person covers the person's results
        self.compartments = compartments
        self.owned_types = owned_types
        self.region_of = region_of
        # per result type, the search parameter through which a result names the order it fulfils (the order rule)
        self.order_params = order_params or {}
        self.ctx: FhirContext | None = None

    def bind(self, ctx: FhirContext) -> None:
        """The context whose store holds the Consents (set once by the app factory)."""
        self.ctx = ctx

    # -- the Access protocol ------------------------------------------------------------------------------
    def permit(self, permission: str, resource_type: str) -> None:
        p = current()
        if p is None or p.unrestricted:
            return
        if grants(p.scopes, resource_type, permission) is None:
            raise FhirError.of(403, "forbidden", f"The token's scopes do not allow {NAMES[permission]} on "
                                                 f"{resource_type} (a scope such as user/{resource_type}."
                                                 f"{permission} is needed).")

    def search_filter(self, resource_type: str, criteria: list[Criterion]) -> dict[str, Any] | None:
        p = current()
        if p is not None and not p.unrestricted and resource_type in PRIVATE_TYPES and not _platform(p):
            return {index_field(OWNER): {"$in": p.owners or ["-"]}}
        if p is None or p.unrestricted or not self.is_patient_data(resource_type) or p.break_glass:
            return None
        if p.patient:
            return self._members(resource_type, self._patient_records(p))
        clauses = [{index_field(OWNER): {"$in": p.owners}}] if p.owners and resource_type in self.owned_types else []
        permitted = self._consenting_patients(p, resource_type)
        if permitted:
            clauses.append(self._members(resource_type, permitted))
        if resource_type in self.order_params and p.owners:
            orders = self._orders(p)
            if orders:
                clauses.append({index_field(self.order_params[resource_type]): {"$in": orders}})
        if resource_type in CUSTODIAN_VISIBLE:
            held = [record for patient in self._asked_patients(resource_type, criteria) if self._holds(p, patient)
                    for record in self.persons.records(self._ctx, patient)]
            if held:
                clauses.append(self._members(resource_type, sorted(set(held))))
        if not clauses:
            return {"_id": {"$in": []}}
        return clauses[0] if len(clauses) == 1 else {"$or": clauses}

    def disclose(self, versions: list[StoredVersion]) -> list[StoredVersion]:
        versions = [never_shown.shown(v) for v in versions]
        p = current()
        if p is None:
            return versions
        shown = [v for v in versions if self.visible(p, v)]
        for version in shown:
            p.touched.append(f"{version.resource_type}/{version.id}")
            p.patients.update(self.patients_of(version))
            self._record_grounds(p, version)
        return shown

    def _record_grounds(self, p: Principal, version: StoredVersion) -> None:
        """What the audit says about a disclosure of another organization's patient data: whose it was, and the
        Consents it was made under (none under break-the-glass, which the event states itself)."""
        if p.unrestricted or p.patient or not self.is_patient_data(version.resource_type) \
                or version.resource_type in CUSTODIAN_VISIBLE:
            return
        owners = self.owners_of(version)
        if set(owners) & set(p.owners):
            return
        p.custodians.update(o for o in owners if o.startswith("Organization/"))
        order = self._ordered_by(p, version)
        if order is not None:
            p.orders.add(order)  # the caller's own order is the ground
        elif not p.break_glass:
            for patient in self.patients_of(version):
                p.grounds.update(self._consents_to(p, patient, version.resource_type))

    def check_write(self, new: StoredVersion, current_version: StoredVersion | None) -> None:
        p = current()
        if p is None or p.unrestricted:
            if p is not None:
                self._record(p, new)
            return
        rtype = new.resource_type
        if self._steward_links(p, new, current_version) or self._patient_decides(p, new, current_version):
            self._record(p, new)
            return
        if current_version is not None and current_version.text is not None and not self.visible(p, current_version):
            raise not_found(f"{rtype}/{new.id} does not exist.")
        if rtype not in self.owned_types:
            if not any(s.context == "system" for s in p.scopes):
                raise FhirError.of(403, "forbidden", f"{rtype} is registry data: only platform backends "
                                                     f"(system/ scopes) write it.")
        else:
            for version, what in ((current_version, "stored"), (new, "new")):
                if version is None or version.deleted:
                    continue
                if not set(self.owners_of(version)) & set(p.owners):
                    raise FhirError.of(403, "forbidden", f"The {what} {rtype} does not belong to "
                                                         f"{p.organization or p.subject}: name your organization "
                                                         f"as its owner (see SearchParameter hr-owner).")
        self._record(p, new)

    @staticmethod
    def _steward_links(p: Principal, new: StoredVersion, stored: StoredVersion | None) -> bool:
        """A platform's record steward (a system/ scope that may update Patient) links or unlinks any hospital's
        records of one person (`Patient.link`: seealso, replaced-by), and changes nothing else of a record it does
        not own: the hospital's data stays the hospital's."""
        if new.resource_type != "Patient" or stored is None or stored.text is None or new.text is None:
            return False
        if not any(s.context == "system" and s.resource_type in ("*", "Patient") and "u" in s.permissions
                   for s in p.scopes):
            return False
        return _changes_only(loads(stored.text), loads(new.text), ("meta", "link"))

    def _patient_decides(self, p: Principal, new: StoredVersion, stored: StoredVersion | None) -> bool:
        """The patient's own token accepts, declines or revokes a Consent about them (its status), nothing else;
        the hospital that recorded it still owns it (security/consent_capture.py stamps who confirmed)."""
        if not p.patient or new.resource_type != "Consent" or stored is None or stored.text is None \
                or new.text is None or not self.visible(p, stored):
            return False
        before, after = loads(stored.text), loads(new.text)
        if (after.get("patient") or {}).get("reference") not in self.persons.records(self._ctx, p.patient):
            return False
        return _changes_only(before, after, ("meta", "status", "extension"))

    def lacks_consent(self, patient: str) -> bool:
        p = current()
        if p is None or p.unrestricted or p.break_glass or p.patient or not (p.organization or p.owners):
            return False
        return not self._consents_to(p, patient, "DiagnosticReport")

    # -- visibility ------------------------------------------------------------------------------------------
    def visible(self, p: Principal, version: StoredVersion) -> bool:
        if p.unrestricted:
            return True
        rtype = version.resource_type
        if grants(p.scopes, rtype, "r") is None and grants(p.scopes, rtype, "s") is None:
            return False
        if rtype in PRIVATE_TYPES:
            return _platform(p) or bool(set(self.owners_of(version)) & set(p.owners))
        if not self.is_patient_data(rtype) or p.break_glass:
            return True
        if version.deleted and version.vid > 1:  # a deletion is as visible as what it deleted
            prior = self._ctx.store.versions.read_version(rtype, version.id, version.vid - 1)
            version = prior if prior is not None else version
        patients = self.patients_of(version)
        if p.patient:
            return bool(patients & set(self._patient_records(p)))
        if set(self.owners_of(version)) & set(p.owners):
            return True
        if rtype in CUSTODIAN_VISIBLE and any(self._holds(p, patient) for patient in patients):
            return True
        if self._ordered_by(p, version) is not None:
            return True
        return any(self._consents_to(p, patient, rtype) for patient in patients)

    def is_patient_data(self, resource_type: str) -> bool:
        return resource_type == "Patient" or bool(self.compartments.parameters("Patient", resource_type))

    def patients_of(self, version: StoredVersion) -> set[str]:
        if version.resource_type == "Patient":
            return {f"Patient/{version.id}"}
        params = self.compartments.parameters("Patient", version.resource_type)
        return {v for param in params for v in version.sp.get(param.replace("-", "_"), [])
                if isinstance(v, str) and v.startswith("Patient/")}

    def owners_of(self, version: StoredVersion) -> list[str]:
        """Owner references; a PractitionerRole stands for its organization (and its practitioner)."""
        owners = [v for v in version.sp.get(OWNER, []) if isinstance(v, str) and "/" in v]
        for ref in [o for o in owners if o.startswith("PractitionerRole/")]:
            role = self._ctx.store.versions.read_current("PractitionerRole", ref.split("/", 1)[1])
            if role is not None and role.text:
                data = loads(role.text)
                owners += [(data.get(k) or {}).get("reference", "") for k in ("organization", "practitioner")]
        return owners

    # -- the order rule ------------------------------------------------------------------------------------------
    def _ordered_by(self, p: Principal, version: StoredVersion) -> str | None:
        """The caller's own order (ServiceRequest reference) this result is based on, if any."""
        param = self.order_params.get(version.resource_type)
        if param is None or not p.owners:
            return None
        orders = [v for v in version.sp.get(param.replace("-", "_"), []) if isinstance(v, str)
                  and v.startswith("ServiceRequest/") and v.count("/") == 1]
        for reference in orders[:MAX_ORDERS_PER_RESULT]:
            order = self._ctx.store.versions.read_current("ServiceRequest", reference.split("/", 1)[1])
            if order is not None and not order.deleted and set(self.owners_of(order)) & set(p.owners):
                return reference
        return None

    def _orders(self, p: Principal) -> list[str]:
        """The caller's orders (ServiceRequests it requested), for the search clause of the order rule."""
        if p.orders_cache is None:
            p.orders_cache = [f"ServiceRequest/{v.id}" for v in
                              find(self._ctx, "ServiceRequest", [(OWNER, ",".join(p.owners))], MAX_ORDERS)]
        return p.orders_cache

    # -- consent -------------------------------------------------------------------------------------------------
    def _requester(self, p: Principal) -> Requester:
        if p.region is None and p.organization:
            p.region = self.region_of(p.organization) or ""
        return Requester(p.organization, p.region or None)

    def _consents_to(self, p: Principal, patient: str, resource_type: str) -> tuple[str, ...]:
        """The Consents (ids) that let the caller see this type of the patient's person now; empty: none does."""
        key = f"{patient} {resource_type}"
        if key not in p.consent_cache:
            records = ",".join(self.persons.records(self._ctx, patient))
            consents = [loads(v.text) for v in find(self._ctx, "Consent", [("patient", records)], 200) if v.text]
            p.consent_cache[key] = self.consents.permitting(consents, self._requester(p), resource_type, _now_ms())
        return p.consent_cache[key]

    def _holds(self, p: Principal, patient: str) -> bool:
        """Whether the caller's organization keeps a record of the patient's person (it is a custodian of it)."""
        if patient not in p.holds_cache:
            ids = [r.split("/", 1)[1] for r in self.persons.records(self._ctx, patient) if r.startswith("Patient/")]
            p.holds_cache[patient] = bool(p.owners and ids and find(
                self._ctx, "Patient", [("_id", ",".join(ids)), (OWNER, ",".join(p.owners))], 1))
        return p.holds_cache[patient]

    def _patient_records(self, p: Principal) -> list[str]:
        """The records a patient-context token sees: every record of its person (its own data, in every hospital)."""
        assert p.patient is not None
        return self.persons.records(self._ctx, p.patient)

    def _asked_patients(self, resource_type: str, criteria: list[Criterion]) -> list[str]:
        """The patients a query names through the type's Patient-compartment parameters (person= resolves to them)."""
        params = set(self.compartments.parameters("Patient", resource_type))
        asked: list[str] = []
        for c in criteria:
            if c.code in params and c.modifier in (None, "Patient") and not c.chain and c.has is None:
                asked += [v if "/" in v else f"Patient/{v}" for v in c.values]
        return [a for a in dict.fromkeys(asked) if a.startswith("Patient/")][:MAX_ASKED]

    def _consenting_patients(self, p: Principal, resource_type: str) -> list[str]:
        by_patient: dict[str, list[dict[str, Any]]] = {}
        for version in find(self._ctx, "Consent", [("status", "active")], MAX_CONSENTS):
            consent = loads(version.text or "{}")
            patient = (consent.get("patient") or {}).get("reference")
            if isinstance(patient, str) and patient.startswith("Patient/"):
                by_patient.setdefault(patient, []).append(consent)
        requester, now = self._requester(p), _now_ms()
        permitted = {patient for patient, consents in by_patient.items()
                     if self.consents.decide(consents, requester, resource_type, now)}
        # the person's other records are covered too; a deny given on one of them is weighed with the rest
        covered = {record for patient in permitted for record in self.persons.records(self._ctx, patient)}
        return sorted(r for r in covered if self._consents_to(p, r, resource_type))

    def _members(self, resource_type: str, patients: list[str]) -> dict[str, Any]:
        if resource_type == "Patient":
            return {"_id": {"$in": [ref.split("/", 1)[1] for ref in patients]}}
        params = self.compartments.parameters("Patient", resource_type)
        clauses = [{index_field(param): {"$in": patients}} for param in params]
        return clauses[0] if len(clauses) == 1 else {"$or": clauses}

    def _record(self, p: Principal, version: StoredVersion) -> None:
        p.touched.append(f"{version.resource_type}/{version.id}")
        if not version.deleted:
            p.patients.update(self.patients_of(version))

    @property
    def _ctx(self) -> FhirContext:
        assert self.ctx is not None, "PolicyAccess.bind(ctx) was not called"
        return self.ctx


def _platform(p: Principal) -> bool:
    return any(s.context == "system" for s in p.scopes)


def _changes_only(before: dict[str, Any], after: dict[str, Any], elements: tuple[str, ...]) -> bool:
    """Whether a new version differs from the stored one in these top-level elements at most."""
    return ({k: v for k, v in before.items() if k not in elements}
            == {k: v for k, v in after.items() if k not in elements})


def _now_ms() -> float:
    return time.time() * 1000.0
