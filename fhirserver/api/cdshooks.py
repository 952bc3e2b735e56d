"""CDS Hooks 2.0 (https://cds-hooks.hl7.org/2.0/): the order-time prompt in the doctor's EMR.

GET /cds-services lists the services; POST /cds-services/{id} answers order-select / order-sign with one
card per recognizable prior result (hospital, date, validity, link, a suggestion to drop the draft order,
override reasons from CodeSystem hr-exception); POST /cds-services/{id}/feedback records what the doctor
did: an accepted suggestion is a recognition (a repeat avoided), an override is recorded with its reason.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from flask import Blueprint, Response, request

from ..fhir.errors import FhirError, bad_request, not_found
from ..fhir.interactions.context import FhirContext
from ..fhir.json_format import dumps, loads
from ..recognition.rules import EvaluationContext, describe, moment
from ..recognition.service import CONSENT_NOTICE, RecognitionService
from ..store.indexes import CDS_CARDS
from .origin import fhir_base

SERVICES = {
    "hr-recognition-order-select": ("order-select", "互认提示（选择医嘱时）",
                                    "Tells the doctor, while choosing an order, that a recognizable result exists."),
    "hr-recognition-order-sign": ("order-sign", "互认提示（签署医嘱时）",
                                  "Checks orders at signing; the prompt is recorded for the platform's statistics."),
}


def _json(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status=status, content_type="application/json; charset=utf-8")


def _error(error: FhirError) -> Response:
    return _json({"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in error.issues]}, error.status)


def blueprint(ctx: FhirContext, recognition: RecognitionService) -> Blueprint:
    bp = Blueprint("cdshooks", __name__)

    def base_url() -> str:
        return fhir_base(ctx.settings)

    @bp.get("")
    @bp.get("/")
    def discovery() -> Response:
        return _json({"services": [
            {"hook": hook, "id": sid, "title": title, "description": description,
             "prefetch": {"patient": "Patient/{{context.patientId}}"}}
            for sid, (hook, title, description) in SERVICES.items()]})

    @bp.post("/<service_id>")
    def call(service_id: str) -> Response:
        try:
            return _json(_cards(ctx, recognition, service_id, base_url()))
        except FhirError as error:
            return _error(error)

    @bp.post("/<service_id>/feedback")
    def feedback(service_id: str) -> Response:
        try:
            _feedback(ctx, recognition, service_id)
            return _json({})
        except FhirError as error:
            return _error(error)

    return bp


def _body() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise FhirError.of(415, "not-supported", "CDS Hooks requests are application/json.")
    body = loads(request.get_data(cache=False))
    if not isinstance(body, dict):
        raise bad_request("The CDS Hooks request must be a JSON object.")
    return body


def _cards(ctx: FhirContext, recognition: RecognitionService, service_id: str, base: str) -> dict[str, Any]:
    if service_id not in SERVICES:
        raise not_found(f"No CDS service '{service_id[:60]}' here; see GET /cds-services.")
    hook = SERVICES[service_id][0]
    body = _body()
    context = body.get("context")
    if body.get("hook") != hook or not isinstance(body.get("hookInstance"), str) or not isinstance(context, dict):
        raise bad_request(f"A {hook} request needs hook='{hook}', a hookInstance and a context.")
    patient_id, user = context.get("patientId"), context.get("userId")
    drafts = context.get("draftOrders")
    if not isinstance(patient_id, str) or not isinstance(drafts, dict) or drafts.get("resourceType") != "Bundle":
        raise bad_request("context needs patientId and draftOrders (a Bundle).")
    selections = set(context.get("selections") or [])
    cards = []
    for entry in drafts.get("entry", []):
        order = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(order, dict) or order.get("resourceType") != "ServiceRequest":
            continue
        if hook == "order-select" and selections and f"ServiceRequest/{order.get('id')}" not in selections:
            continue
        order = {**order, "subject": order.get("subject") or {"reference": f"Patient/{patient_id}"}}
        if not order.get("requester") and isinstance(user, str):
            order["requester"] = {"reference": user}
        cards += _order_cards(ctx, recognition, service_id, order, base, record=hook == "order-sign")
    return {"cards": cards}


def _order_cards(ctx: FhirContext, recognition: RecognitionService, service_id: str, order: dict[str, Any],
                 base: str, record: bool) -> list[dict[str, Any]]:
    priors = recognition.find_priors(ctx, order, [])
    found = [(d, p) for d, p, _ in priors.found if d.recognizable]
    requester = recognition.requester(ctx, (order.get("requester") or {}).get("reference"))
    cards = []
    for decision, performer in found:
        card_id = str(uuid.uuid4())
        detail = describe(recognition.catalog, decision, performer)
        hospital = performer.name if performer and performer.name else "其他医院"
        region = recognition.catalog.region_name(performer.region) if performer else None
        hospital = f"{region}{hospital}" if region and not hospital.startswith(region) else hospital
        item = decision.item.display if decision.item else ""
        summary = f"已有可互认结果：{decision.result.date_text}{hospital}{item}"
        card: dict[str, Any] = {
            "uuid": card_id, "summary": summary[:140], "indicator": "warning",
            "detail": f"{detail}\n\n如仍需复查，请选择复查理由（病情变化、急诊急救等），系统将记录。",
            "source": {"label": "检查检验结果互认 Mutual recognition", "url": base},
            "links": [{"label": "查看报告 View the report", "type": "absolute",
                       "url": decision.result.reference if decision.result.reference.startswith("http")
                       else f"{base}/{decision.result.reference}"},
                      _console_link(base, order, decision.result.reference)],
            "suggestions": [{"label": "使用已有结果，取消本次申请 Use the existing result", "uuid": str(uuid.uuid4()),
                             "isRecommended": True, "actions": []}],
            "selectionBehavior": "at-most-one",
            "overrideReasons": recognition.catalog.exceptions()}
        if order.get("id"):
            card["suggestions"][0]["actions"] = [{"type": "delete", "description": "取消本次重复申请",
                                                  "resourceId": f"ServiceRequest/{order['id']}"}]
        cards.append(card)
        ctx.store.notes.save(CDS_CARDS, {"_id": card_id, "service": service_id, "result": decision.result.reference,
                                             "requester": requester.reference if requester else None,
                                             "order": order.get("id"), "issued": time.time()})
        if record:
            recognition.record(ctx, "duplicate-prompt", decision, requester)
    if priors.consent_needed:
        cards.append({"uuid": str(uuid.uuid4()), "summary": "外院结果需患者授权 Other hospitals' results need consent",
                      "indicator": "info", "detail": CONSENT_NOTICE,
                      "source": {"label": "检查检验结果互认 Mutual recognition", "url": base},
                      "links": [_console_link(base, order, None)]})
    return cards


def _console_link(base: str, order: dict[str, Any], result: str | None) -> dict[str, Any]:
    """A SMART link that opens the console (api/console.py) on the patient and the order: the EHR launches it with
    iss and launch, and passes appContext to the app through its authorization server."""
    subject = (order.get("subject") or {}).get("reference", "")
    context = {"patient": subject.removeprefix("Patient/"), "order": order.get("id"), "result": result}
    return {"label": "在互认控制台打开 Open in the console", "type": "smart",
            "url": f"{base.rsplit('/fhir', 1)[0]}/console/launch",
            "appContext": json.dumps({k: v for k, v in context.items() if v}, ensure_ascii=False)}


def _feedback(ctx: FhirContext, recognition: RecognitionService, service_id: str) -> None:
    if service_id not in SERVICES:
        raise not_found(f"No CDS service '{service_id[:60]}' here.")
    items = _body().get("feedback")
    if not isinstance(items, list) or not items:
        raise bad_request("feedback must be a non-empty array.")
    for item in items:
        card = ctx.store.notes.load(CDS_CARDS, str(item.get("card"))) if isinstance(item, dict) else None
        if card is None or card["service"] != service_id:
            raise bad_request(f"Unknown card {str(item.get('card') if isinstance(item, dict) else item)[:60]}.")
        outcome = item.get("outcome")
        if outcome not in ("accepted", "overridden"):
            raise bad_request("feedback outcome is accepted or overridden.")
        rtype, rid = card["result"].split("/", 1)
        version = ctx.store.versions.read_current(rtype, rid)
        if version is None or version.deleted:
            raise not_found(f"{card['result']} no longer exists.")
        requester = recognition.standing(ctx, card.get("requester"))
        decision, _ = recognition.decide(ctx, version, EvaluationContext(requester, moment(None, ctx.planner.zone)),
                                         superseded=False)
        if outcome == "accepted":
            recognition.record(ctx, "recognition", decision, requester)
        else:
            reason = (item.get("overrideReason") or {}).get("reason")
            comment = (item.get("overrideReason") or {}).get("userComment")
            if not isinstance(reason, dict) or not recognition.catalog.is_exception(str(reason.get("code"))):
                raise bad_request("An override needs overrideReason.reason from the card's overrideReasons.")
            concept: dict[str, Any] = {"coding": [reason]}
            if comment:
                concept["text"] = str(comment)[:500]
            recognition.record(ctx, "override", decision, requester, reason=concept)
