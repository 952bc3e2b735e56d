"""Our StructureDefinitions (differentials) and custom SearchParameters, for tools/build_terminology.py."""

from __future__ import annotations

from typing import Any

DATE = "2026-11-23"


def _sd(c: str, rid: str, name: str, title: str, description: str, rtype: str, elements: list[dict[str, Any]],
        kind: str = "resource", context: list[str] | None = None) -> dict[str, Any]:
    sd: dict[str, Any] = {
        "resourceType": "StructureDefinition", "id": rid, "url": f"{c}/StructureDefinition/{rid}", "version": "2026.1",
        "name": name, "title": title, "status": "active", "date": DATE, "publisher": "fhirserver project",
        "description": description, "fhirVersion": "4.0.1", "kind": kind, "abstract": False, "type": rtype,
        "baseDefinition": f"http://hl7.org/fhir/StructureDefinition/{rtype}", "derivation": "constraint",
        "differential": {"element": [{"id": rtype, "path": rtype}, *elements]},
    }
    if context:
        sd["context"] = [{"type": "element", "expression": e} for e in context]
    return sd


def _el(path: str, **rules: Any) -> dict[str, Any]:
    element = {"id": path, "path": path}
    element.update(rules)
    return element


def _ref(*targets: str) -> list[dict[str, Any]]:
    return [{"code": "Reference", "targetProfile": [f"http://hl7.org/fhir/StructureDefinition/{t}" for t in targets]}]


def _required(c: str, valueset: str) -> dict[str, str]:
    return {"strength": "required", "valueSet": f"{c}/ValueSet/{valueset}"}


def _extension(c: str, rid: str, name: str, title: str, description: str, context: str, value_type: str,
               binding: dict[str, str] | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"min": 1, "type": [{"code": value_type}]}
    if binding:
        value["binding"] = binding
    return _sd(c, rid, name, title, description, "Extension", [
        _el("Extension.url", fixedUri=f"{c}/StructureDefinition/{rid}"),
        _el("Extension.value[x]", **value)], kind="complex-type", context=[context])


def profiles(c: str) -> list[dict[str, Any]]:
    region = _extension(c, "hr-region", "HRRegionExtension", "所在行政区划 Region of an institution",
                        "The GB/T 2260 region of a participating institution.", "Organization", "Coding",
                        _required(c, "hr-region"))
    override = _extension(c, "hr-override-reason", "HROverrideReason", "复查理由 Override reason",
                          "Why the doctor re-orders a test although a recognizable result exists.", "ServiceRequest",
                          "CodeableConcept", _required(c, "hr-exception-reasons"))
    validity = _extension(c, "hr-validity-days", "HRValidityDays", "有效期覆盖 Validity override",
                          "A region's validity window for an item, overriding the catalog default.",
                          "ValueSet.compose.include.concept", "integer")
    min_level = _extension(c, "hr-min-level-applies", "HRMinLevelApplies", "最低级别是否适用 Minimum level applies",
                           "False on a scope whose results are recognized whatever the item's minimum institution "
                           "level (a close medical alliance); absent means it applies.", "ValueSet", "boolean")
    direction = _sd(c, "hr-level-direction", "HRLevelDirection", "机构等级方向 Level direction",
                    "One pair of a region's level-direction rule on its scope ValueSet: an institution of level "
                    "`requester` recognizes results performed at level `performer`. A scope with pairs recognizes "
                    "only the pairs listed (reason level-direction otherwise); a scope without any has no such rule.",
                    "Extension", [
                        _el("Extension.extension", min=2),
                        _el("Extension.extension:requester", sliceName="requester", min=1, max="1"),
                        _el("Extension.extension:requester.url", fixedUri="requester"),
                        _el("Extension.extension:requester.value[x]", min=1, type=[{"code": "integer"}]),
                        _el("Extension.extension:performer", sliceName="performer", min=1, max="1"),
                        _el("Extension.extension:performer.url", fixedUri="performer"),
                        _el("Extension.extension:performer.value[x]", min=1, type=[{"code": "integer"}]),
                        _el("Extension.url", fixedUri=f"{c}/StructureDefinition/hr-level-direction"),
                        _el("Extension.value[x]", max="0")], kind="complex-type", context=["ValueSet"])
    patient_text = _extension(c, "hr-patient-text", "HRPatientText", "给患者的说明 Explanation for the patient",
                              "The decision in plain Chinese for the patient, made from the same reasons as the "
                              "doctor's sentence (no codes, no jargon).", "DetectedIssue", "string")
    subscriber = _extension(c, "hr-subscriber", "HRSubscriber", "订阅方 Subscriber",
                            "The organization that made a Subscription, set by the server from the caller's token "
                            "(never taken from the body): it owns the Subscription and is notified only of what it "
                            "may read.", "Subscription", "Reference")
    report = _sd(c, "hr-diagnostic-report", "HRDiagnosticReport", "互认检查检验报告 Recognized report",
                 "A laboratory or imaging report as exchanged on the platform.", "DiagnosticReport", [
                     _el("DiagnosticReport.category", min=1),
                     _el("DiagnosticReport.code", binding=_required(c, "hr-scope-national")),
                     _el("DiagnosticReport.subject", min=1, type=_ref("Patient")),
                     _el("DiagnosticReport.effective[x]", min=1),
                     _el("DiagnosticReport.issued", min=1),
                     _el("DiagnosticReport.performer", min=1, type=_ref("Organization")),
                     _el("DiagnosticReport.result", type=_ref("Observation")),
                     _el("DiagnosticReport.imagingStudy", type=_ref("ImagingStudy"))])
    observation = _sd(c, "hr-observation", "HRObservation", "互认检验结果 Recognized observation",
                      "A laboratory result as exchanged on the platform.", "Observation", [
                          _el("Observation.code", binding=_required(c, "hr-scope-national")),
                          _el("Observation.subject", min=1, type=_ref("Patient")),
                          _el("Observation.effective[x]", min=1),
                          _el("Observation.performer", min=1, type=_ref("Organization", "Practitioner",
                                                                        "PractitionerRole"))])
    imaging = _sd(c, "hr-imaging-study", "HRImagingStudy", "互认影像检查 Recognized imaging study",
                  "An imaging study as exchanged on the platform.", "ImagingStudy", [
                      _el("ImagingStudy.subject", type=_ref("Patient")),
                      _el("ImagingStudy.started", min=1),
                      _el("ImagingStudy.procedureCode", min=1, binding=_required(c, "hr-category-imaging")),
                      _el("ImagingStudy.series", min=1)])
    organization = _sd(c, "hr-organization", "HROrganization", "互认机构 Participating institution",
                       "A hospital or other institution taking part in recognition.", "Organization", [
                           _el("Organization.extension", slicing={"discriminator": [{"type": "value", "path": "url"}],
                                                                  "rules": "open"}),
                           {"id": "Organization.extension:region", "path": "Organization.extension",
                            "sliceName": "region", "min": 1, "max": "1",
                            "type": [{"code": "Extension", "profile": [f"{c}/StructureDefinition/hr-region"]}]},
                           _el("Organization.identifier", min=1),
                           _el("Organization.type", min=1, binding=_required(c, "hr-institution-level")),
                           _el("Organization.name", min=1)])
    affiliation = _sd(c, "hr-organization-affiliation", "HROrganizationAffiliation", "互认网络关系 Network affiliation",
                      "Network membership or quality-control accreditation of an institution, with its period.",
                      "OrganizationAffiliation", [
                          _el("OrganizationAffiliation.active", min=1),
                          _el("OrganizationAffiliation.period", min=1),
                          _el("OrganizationAffiliation.organization", min=1, type=_ref("Organization")),
                          _el("OrganizationAffiliation.participatingOrganization", min=1, type=_ref("Organization")),
                          _el("OrganizationAffiliation.code", min=1, max="1", binding=_required(c, "hr-affiliation"))])
    order = _sd(c, "hr-service-request", "HRServiceRequest", "检查检验申请 Order",
                "An order for a test or examination, with the reason when a recognizable result was not used.",
                "ServiceRequest", [
                    _el("ServiceRequest.extension", slicing={"discriminator": [{"type": "value", "path": "url"}],
                                                             "rules": "open"}),
                    {"id": "ServiceRequest.extension:overrideReason", "path": "ServiceRequest.extension",
                     "sliceName": "overrideReason", "min": 0, "max": "1",
                     "type": [{"code": "Extension", "profile": [f"{c}/StructureDefinition/hr-override-reason"]}]},
                    _el("ServiceRequest.code", min=1),
                    _el("ServiceRequest.subject", type=_ref("Patient"))])
    item_system = f"{c}/CodeSystem/hr-item"
    item = {"resourceType": "SearchParameter", "id": "hr-item", "url": f"{c}/SearchParameter/hr-item",
            "version": "2026.1", "name": "item", "status": "active", "date": DATE, "publisher": "fhirserver project",
            "description": "Results and orders by recognized item (互认项目), e.g. item=CT-HEAD.", "code": "item",
            "base": ["DiagnosticReport", "Observation", "ImagingStudy", "ServiceRequest"], "type": "token",
            "expression": " | ".join(f"{t}.{e}.coding.where(system='{item_system}')" for t, e in (
                ("DiagnosticReport", "code"), ("Observation", "code"), ("ImagingStudy", "procedureCode"),
                ("ServiceRequest", "code")))}
    region_param = {"resourceType": "SearchParameter", "id": "hr-region", "url": f"{c}/SearchParameter/hr-region",
                    "version": "2026.1", "name": "region", "status": "active", "date": DATE,
                    "publisher": "fhirserver project", "description": "Institutions by GB/T 2260 region.",
                    "code": "region", "base": ["Organization"], "type": "token",
                    "expression": f"Organization.extension.where(url='{c}/StructureDefinition/hr-region')"
                                  f".value.ofType(Coding)"}
    mark = _param(c, "hr-mark", "mark", ["DiagnosticReport", "Observation", "ImagingStudy"], "token",
                  " | ".join(f"{t}.meta.tag.where(system='{c}/CodeSystem/hr-mark')"
                             for t in ("DiagnosticReport", "Observation", "ImagingStudy")),
                  "Results by recognition mark (scope), e.g. mark=hr-scope-chuanyu.")
    reason = _param(c, "hr-event-reason", "reason", ["AuditEvent"], "token", "AuditEvent.purposeOfEvent",
                    "Recognition events by reason (overrides).")
    saving = _param(c, "hr-event-saving", "saving", ["AuditEvent"], "number",
                    f"AuditEvent.extension.where(url='{c}/StructureDefinition/hr-saving').value",
                    "Recognition events by money saved (CNY).")
    owner = _param(c, "hr-owner", "owner", list(OWNER_PATHS), "reference",
                   " | ".join(f"{t}.{path.format(c=c)}" for t, paths in OWNER_PATHS.items() for path in paths),
                   "The organization (or practitioner) a resource belongs to: it may write it and always read it. "
                   "Other organizations read patient data only with the patient's consent (README: security).")
    person = _param(c, "hr-person", "person", list(PERSON_BASES), "token",
                    " | ".join(f"{t}.{path}" if path else t for t, path in PERSON_BASES.items()),
                    "The records of one person and their results, named by an identity token of a system in "
                    "FHIRSERVER_IDENTITY_SYSTEMS (the national resident ID by default), under this server's person "
                    "rules: a resident ID that fails its "
                    "check or contradicts the record links nothing; explicit Patient.link joins records; a person "
                    "never spans two resident IDs. What peers ask for a patient's results (README: one person, many "
                    "records). Resolved by the person index, not indexed per resource.")
    person["extension"] = [{"url": f"{c}/StructureDefinition/hr-resolved-by", "valueCode": "person-index"}]
    resolved_by = _extension(c, "hr-resolved-by", "HRResolvedBy", "检索参数解析方式 How a search parameter is resolved",
                             "A search parameter that is resolved by a server service (the code names it) into "
                             "references before the search runs, instead of being indexed per resource: its "
                             "expression names the references it becomes.", "SearchParameter", "code")
    capture = _extension(c, "hr-consent-capture", "HRConsentCapture", "同意的确认方式 How a consent was captured",
                         "Stamped by the server when a Consent to look is captured (never taken from the sender): "
                         "attested (in person, by the named practitioner of the recording hospital) or patient "
                         "(accepted by the patient's own token). A permit without it grants nothing.",
                         "Consent", "code")
    attester = _extension(c, "hr-consent-attester", "HRConsentAttester", "同意的确认人 Who confirmed a consent",
                          "The practitioner who attested the consent, or the patient who accepted it (stamped by "
                          "the server from the writer's token).", "Consent", "Reference")
    audit_seq = _extension(c, "hr-audit-sequence", "HRAuditSequence", "审计链序号 Audit chain position",
                           "Position of this event in the server's tamper-evident audit chain (1, 2, ...).",
                           "AuditEvent", "integer")
    audit_hash = _extension(c, "hr-audit-hash", "HRAuditHash", "审计链哈希 Audit chain hash",
                            "Hex SHA-256 of the previous event's hash followed by this event's canonical JSON "
                            "(without meta and this extension); `fhirserver audit verify` recomputes it.",
                            "AuditEvent", "string")
    correlation = _extension(c, "hr-correlation-id", "HRCorrelationId", "关联标识 Correlation id",
                             "The X-Request-Id shared by the requests one user action caused, across nodes.",
                             "AuditEvent", "string")
    origin = _extension(c, "hr-origin", "HROrigin", "结果来源节点 Origin node",
                        "The node a federated search entry comes from: the peer's Endpoint and its name and region.",
                        "Bundle.entry", "Reference")
    saving_ext = _extension(c, "hr-saving", "HRSaving", "节省费用 Money saved",
                            "Reference price (CNY) of the test a recognition avoided.", "AuditEvent", "decimal")
    operations = [
        _operation(c, "recognize", "Recognize a prior result", ["DiagnosticReport", "ImagingStudy", "Observation"],
                   instance=True, system=False,
                   parameters=[("requester", "in", 1, "1", "Reference"), ("date", "in", 0, "1", "dateTime"),
                               ("context", "in", 0, "*", "CodeableConcept"), ("mode", "in", 0, "1", "code"),
                               ("recognizable", "out", 1, "1", "boolean"), ("item", "out", 0, "1", "Coding"),
                               ("validUntil", "out", 0, "1", "dateTime"),
                               ("list", "out", 0, "1", "canonical", LIST_DOC),
                               ("reason", "out", 0, "*", "CodeableConcept"),
                               ("result", "out", 1, "1", "Reference"),
                               ("explanation", "out", 1, "1", "string", "The decision in a sentence for the doctor."),
                               ("patientExplanation", "out", 1, "1", "string",
                                "The same decision in plain Chinese for the patient, from the reasons' patient-text "
                                "(no codes, no jargon): national guidance asks the doctor to explain a refusal.")],
                   description="Decide whether a stored result can be recognized by the requesting institution, with "
                               "coded reasons; mode=accept records the recognition (a repeat avoided)."),
        _operation(c, "evaluate", "Evaluate another institution's result", ["DiagnosticReport", "ImagingStudy",
                                                                             "Observation"],
                   instance=True, system=False,
                   parameters=[("evaluator", "in", 0, "1", "Reference",
                                "The evaluating Organization or PractitionerRole; with authentication on, the "
                                "caller's own organization."),
                               ("evaluation", "in", 1, "1", "Coding", "A code of CodeSystem hr-evaluation."),
                               ("note", "in", 0, "1", "string", "Required with evaluation 'other'."),
                               ("event", "out", 1, "1", "Reference", "The AuditEvent that records the evaluation."),
                               ("result", "out", 1, "1", "Reference"), ("performer", "out", 1, "1", "Reference")],
                   description="A doctor's coded evaluation of a result another institution performed (结果评价). "
                               "Counted by $statistics per performer, item and code; a poor evaluation never "
                               "excludes a result by itself (quality control decides, as data)."),
        _operation(c, "duplicate-check", "Check an order for recognizable prior results", ["ServiceRequest"],
                   instance=False, system=False,
                   parameters=[("request", "in", 1, "1", "ServiceRequest"), ("context", "in", 0, "*", "CodeableConcept"),
                               ("return", "out", 1, "1", "Bundle")],
                   description="One DetectedIssue per prior result of the ordered item for the patient, with the "
                               "recognition decision; the prior results follow as entries."),
        _operation(c, "verify-chain", "Verify the audit chain", ["AuditEvent"], instance=False, system=False,
                   parameters=[("intact", "out", 1, "1", "boolean"), ("events", "out", 1, "1", "integer"),
                               ("waiting", "out", 1, "1", "integer", "Events spooled, not chained yet."),
                               ("head", "out", 0, "1", "string"), ("problem", "out", 0, "*", "string")],
                   description="Recompute the AuditEvent hash chain, as `fhirserver audit verify` does; for "
                               "platform backends (system/ scopes)."),
        _operation(c, "statistics", "Recognition statistics", [], instance=False, system=True,
                   parameters=[("period-start", "in", 0, "1", "date"), ("period-end", "in", 0, "1", "date"),
                               ("region", "in", 0, "1", "string"), ("organization", "in", 0, "1", "string"),
                               ("category", "in", 0, "1", "string"), ("return", "out", 1, "1", "MeasureReport")],
                   description="Views, duplicate prompts, recognitions (repeats avoided), overrides by reason and "
                               "money saved, aggregated from the recorded events."),
    ]
    return [region, override, validity, min_level, direction, patient_text, subscriber, saving_ext, report, observation, imaging, organization, affiliation, order,
            item, region_param, mark, reason, saving, owner, person, resolved_by, capture, attester, audit_seq, audit_hash, correlation, origin, *operations]


# What a person search (hr-person) becomes on each type: the references to the person's records.
PERSON_BASES: dict[str, str] = {
    "DiagnosticReport": "subject", "Observation": "subject", "ImagingStudy": "subject", "ServiceRequest": "subject",
    "Patient": "",  # the records themselves
    "Consent": "patient",
}


# Who owns a resource of each type: the data owner rule of the security model (fhirserver/security/access.py).
OWNER_PATHS: dict[str, tuple[str, ...]] = {
    "DiagnosticReport": ("performer",), "Observation": ("performer",), "ImagingStudy": ("series.performer.actor",),
    "ServiceRequest": ("requester",), "Specimen": ("collection.collector",), "Patient": ("managingOrganization",),
    "Consent": ("organization",), "AuditEvent": ("agent.who",), "Provenance": ("agent.who",),
    "Endpoint": ("managingOrganization",), "PractitionerRole": ("organization",),
    "OrganizationAffiliation": ("organization",),
    "Subscription": ("extension.where(url='{c}/StructureDefinition/hr-subscriber').value",),
}


def _param(c: str, rid: str, code: str, bases: list[str], kind: str, expression: str, description: str) -> dict[str, Any]:
    return {"resourceType": "SearchParameter", "id": rid, "url": f"{c}/SearchParameter/{rid}", "version": "2026.1",
            "name": code, "status": "active", "date": DATE, "publisher": "fhirserver project",
            "description": description, "code": code, "base": bases, "type": kind, "expression": expression}


LIST_DOC = ("The recognized-item list the decision was made against, with its version (url|version): the scope "
            "ValueSet in force where the result is used. Absent when the item is on no list that applies.")


def _operation(c: str, code: str, title: str, resources: list[str], instance: bool, system: bool,
               parameters: list[tuple[Any, ...]], description: str) -> dict[str, Any]:
    return {"resourceType": "OperationDefinition", "id": f"hr-{code}", "url": f"{c}/OperationDefinition/hr-{code}",
            "version": "2026.1", "name": title.replace(" ", ""), "title": title, "status": "active",
            "kind": "operation", "date": DATE, "publisher": "fhirserver project", "description": description,
            "code": code, "resource": resources, "system": system, "type": not (system or instance),
            "instance": instance,
            "parameter": [{"name": n, "use": u, "min": lo, "max": hi, "type": t, **({"documentation": d[0]} if d else {})}
                          for n, u, lo, hi, t, *d in parameters]}
