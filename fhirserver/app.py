"""Flask app factory: create_app(settings, mongodb_uri) wires storage, FHIR services and blueprints."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from .api import cdshooks, console, dev_login, dicomweb, guard, lists, metrics, operations, rest
from .api.origin import root_url
from .api.responses import render_error, render_unexpected
from .config import Settings
from .federation.breaker import CircuitBreaker
from .federation.client import FederationClient
from .federation.peers import PEER_TYPES
from .federation.service import FederationService
from .fhir import local_base
from .fhir.errors import FhirError
from .fhir.interactions.context import FhirContext
from .fhir.profiles import ProfileValidator
from .fhir.resource_types import SUPPORTED_TYPES
from .fhir.search.compartments import Compartments
from .fhir.search.elements import ElementFilter
from .fhir.search.indexer import BUCKETED_DATES, INDEXABLE_TYPES, ResourceIndexer, database_indexed_parameters
from .fhir.search.parameters import SearchParameterRegistry
from .fhir.search.planner import Planner
from .fhir.search.query import QueryParser
from .fhir.search.values import parse_zone
from .fhir.validation import ResourceValidator
from .imaging.service import ImagingService
from .imaging.studies import StudyBuilder
from .persons.index import LINKS_MAX_AGE_S, PersonIndex
from .recognition.catalog import RecognitionCatalog
from .recognition.facts import RESULT_TYPES
from .recognition.service import RecognitionService
from .recognition.standing import STANDING_TYPES, Standing
from .security.access import PolicyAccess
from .security.audit import AuditTrail
from .security.consent import ConsentEvaluator
from .security.consent_capture import ConsentCapture
from .store.client import Probe, connect, ensure_schema
from .store.errors import StoreUnavailable
from .store.indexes import collection_indexes, indexed_fields
from .store.locks import PERSONS, REGISTRY, SUBSCRIPTIONS
from .store.outages import is_outage
from .store.registry_cache import RegistryCache
from .store.store import open_store
from .subscriptions.service import Subscriptions
from .terminology.artifacts import load_folder
from .terminology.enrich import ItemCoder
from .terminology.service import TerminologyService

log = logging.getLogger(__name__)


class Services(NamedTuple):
    """What build_context wires: the interaction context and the services the blueprints and threads need."""

    ctx: FhirContext
    recognition: RecognitionService
    trail: AuditTrail
    subscriptions: Subscriptions


def build_context(settings: Settings, mongodb_uri: str) -> Services:
    """Connect, create collections/indexes, load definitions: everything an interaction needs."""
    connection = connect(mongodb_uri, settings.mongodb_db, settings.store_timeout_ms, [metrics.StoreTimer()])
    registry = SearchParameterRegistry(settings.profiles_dir, INDEXABLE_TYPES, settings.canonical_base)
    terminology = TerminologyService(load_folder(settings.terminology_dir, settings.canonical_base))
    profile_resources = load_folder(settings.profiles_dir, settings.canonical_base)
    conformance: dict[str, list[dict[str, Any]]] = {}
    for resource in [*terminology.resources, *profile_resources]:
        conformance.setdefault(resource["resourceType"], []).append(resource)
    compartments = Compartments(settings.profiles_dir)
    partitioned = frozenset(t for t in SUPPORTED_TYPES if t == "Patient" or compartments.parameters("Patient", t))
    specs = collection_indexes(SUPPORTED_TYPES, database_indexed_parameters(registry), BUCKETED_DATES, partitioned)
    ensure_schema(connection.db, specs)
    store = open_store(connection.db, {REGISTRY: STANDING_TYPES | PEER_TYPES, PERSONS: frozenset({"Patient"}),
                                       SUBSCRIPTIONS: frozenset({"Subscription"})},
                       settings.store_timeout_ms, indexed_fields(specs))
    store.dicom.ensure_indexes()
    store.deliveries.ensure_indexes()
    validator = ResourceValidator(settings.profiles_dir / "fhir.schema.v4.json")
    zone = parse_zone(settings.timezone)
    ctx = FhirContext(
        settings=settings,
        store=store,
        validator=validator, registry=registry, indexer=ResourceIndexer(registry, zone, settings.base_url),
        parser=QueryParser(registry), planner=Planner(zone, settings.base_url),
        elements=ElementFilter(settings.profiles_dir), compartments=compartments,
        terminology=terminology, conformance=conformance,
        profiles=ProfileValidator([r for r in profile_resources if r["resourceType"] == "StructureDefinition"],
                                  binding_check(terminology)),
        item_coder=ItemCoder(terminology, settings.canonical_base))
    catalog = RecognitionCatalog(terminology, settings.canonical_base, zone)
    registry_cache = RegistryCache(ctx.store.changes)
    persons = PersonIndex(settings.identity_systems, settings.canonical_base,
                          RegistryCache(ctx.store.changes, LINKS_MAX_AGE_S, PERSONS))
    recognition = RecognitionService(catalog, registry_cache, persons, settings.reorder_rule)
    capture = ConsentCapture(settings.canonical_base, settings.consent_capture, settings.consent_days, persons, zone)
    access = PolicyAccess(ConsentEvaluator(f"{settings.canonical_base}/CodeSystem/hr-region", zone,
                                           capture.capture_url),
                          ctx.compartments, {t for t in SUPPORTED_TYPES if registry.get(t, "owner")},
                          lambda org: (recognition.standing(ctx, org) or Standing(org)).region, persons,
                          {t: p.code for t in RESULT_TYPES for p in registry.for_type(t).values()
                           if p.type == "reference" and p.expression == f"{t}.basedOn"})
    trail = AuditTrail(ctx, settings.canonical_base, settings.audit_ship_ms / 1000)
    subscriptions = Subscriptions(settings, RegistryCache(ctx.store.changes, group=SUBSCRIPTIONS))
    ctx = replace(ctx, before_write=(recognition.mark_rule, recognition.reorder_rule, persons.tag_rule,
                                     capture.rule, subscriptions.rule),
                  advise_write=(persons.write_warnings,),
                  after_write=(recognition.record_override, subscriptions.on_write),
                  resolvers={"person-index": persons.of_identity},
                  access=access, record_event=trail.spool,
                  settle_events=trail.settle)
    access.bind(ctx)
    label = f"{settings.node_id} ({settings.region})" if settings.region else settings.node_id
    recognition.federation = FederationService(
        FederationClient(settings.peer_timeout_s, ctx.validator.validate,
                         CircuitBreaker(cooldown_s=settings.peer_cooldown_s)), catalog, settings.identity_systems,
        label, zone, registry_cache, persons)
    return Services(ctx, recognition, trail, subscriptions)


OUTAGE_RECHECK_S = 5.0  # after a store outage, requests ask the quick probe first for this long


def unavailable(app: Flask) -> Response:
    """503 with Retry-After; requests of the next seconds ask the quick probe before waiting on the store."""
    app.extensions.setdefault("store_outage", {"until": 0.0})["until"] = time.monotonic() + OUTAGE_RECHECK_S
    return render_error(FhirError.of(503, "transient", "The data store is not reachable or too slow right now; "
                                                       "retry shortly.", headers={"Retry-After": "5"}), request)


def _malformed_framing(error: Exception) -> bool:
    """The HTTP server (gunicorn) could not read the body as the client framed it: the client's mistake."""
    try:
        from gunicorn.http.errors import ParseException
    except ImportError:  # another WSGI server
        return False
    return isinstance(error, ParseException)


def binding_check(terminology: TerminologyService) -> Callable[[str, str | None, str], bool]:
    """A required binding holds when the code is in the ValueSet; an unknown ValueSet never holds."""

    def check(value_set: str, system: str | None, code: str) -> bool:
        try:
            return terminology.validate_in_value_set(value_set, system, code, None)[0]
        except FhirError:
            return False

    return check


def create_app(settings: Settings, mongodb_uri: str | None = None) -> Flask:
    uri = mongodb_uri or settings.mongodb_uri
    if not uri:
        raise ValueError("create_app needs a MongoDB URI (the CLI starts the embedded engine when none is set)")
    ctx, recognition, trail, subscriptions = build_context(settings, uri)
    app = Flask(__name__)
    app.url_map.strict_slashes = False  # a trailing slash must not produce an HTML redirect page
    app.url_map.merge_slashes = False
    app.url_map.converters["rtype"] = rest.ResourceTypeConverter
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.register_blueprint(operations.blueprint(ctx, recognition), url_prefix="/fhir")
    app.register_blueprint(cdshooks.blueprint(ctx, recognition), url_prefix="/cds-services")
    imaging = ImagingService(ctx.store.dicom, StudyBuilder(ctx.terminology, settings.canonical_base),
                             settings.max_dicom_bytes)
    app.register_blueprint(dicomweb.blueprint(ctx, imaging), url_prefix="/dicomweb")
    app.register_blueprint(lists.blueprint(recognition.catalog), url_prefix="/lists")
    app.register_blueprint(console.blueprint(), url_prefix="/console")
    console.install_home(app)
    if settings.auth_dev_login:
        app.register_blueprint(dev_login.blueprint(ctx, settings), url_prefix="/auth/dev")
    app.register_blueprint(rest.blueprint(ctx, recognition.federation), url_prefix="/fhir")
    metrics.install(app, guard.classify)
    guard.install(app, settings, trail.spool)
    _register_health(app, ctx, Probe(uri))
    _register_registry_snapshot(app, ctx)
    app.before_request(lambda: subscriptions.start(ctx))  # the sender thread of this worker process
    _register_error_handlers(app, settings)
    return app


def _register_registry_snapshot(app: Flask, ctx: FhirContext) -> None:
    """Each request reads the registry generation once (store/registry_cache.py), however many standings it uses."""

    @app.before_request
    def begin() -> None:
        g.registry_snapshot = ctx.store.changes.snapshot()
        g.registry_snapshot.__enter__()
        g.served_base = local_base.serve(root_url() + "/fhir")  # references to us are local

    @app.teardown_request
    def end(_error: BaseException | None) -> None:
        snapshot = g.pop("registry_snapshot", None)
        if snapshot is not None:
            snapshot.__exit__(None, None, None)
        served = g.pop("served_base", None)
        if served is not None:
            local_base.done(served)


def _register_health(app: Flask, ctx: FhirContext, probe: Probe) -> None:
    """/healthz: the process answers and the store answers within a second (503 while it does not: e.g. the
    embedded engine died and is being restarted). /readyz: the same through the server's own store connection.
    After an outage, requests first ask the probe, so they fail within a second instead of the store timeout."""
    outage = app.extensions.setdefault("store_outage", {"until": 0.0})  # per worker process

    @app.before_request
    def store_down() -> Response | None:
        if outage["until"] and time.monotonic() < outage["until"] and request.path not in ("/healthz", "/readyz"):
            if not probe.answers():
                outage["until"] = time.monotonic() + OUTAGE_RECHECK_S
                raise StoreUnavailable("the store did not answer the probe")
            outage["until"] = 0.0
        return None

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(_error: StoreUnavailable) -> Response:
        return unavailable(app)

    @app.get("/healthz")
    def healthz() -> Response:
        if not probe.answers():
            return Response(b'{"status":"unhealthy","store":"not answering"}', status=503,
                            content_type="application/json", headers={"Retry-After": "5"})
        return Response(b'{"status":"ok"}', content_type="application/json")

    @app.get("/readyz")
    def readyz() -> Response:
        ctx.store.health.ping()  # StoreUnavailable -> 503 OperationOutcome through the error handler
        return Response(b'{"status":"ready"}', content_type="application/json")


def _register_error_handlers(app: Flask, settings: Settings) -> None:
    """Every error is an OperationOutcome: no HTML page, no stack trace, no exception text."""

    @app.errorhandler(FhirError)
    def fhir_error(error: FhirError) -> Response:
        return render_error(error, request)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        parts = [p for p in request.path.split("/") if p]
        if isinstance(error, NotFound):
            fhir = FhirError.of(404, "not-found", f"No FHIR endpoint at {request.path[:120]}; the FHIR base is "
                                                  f"/fhir (see /fhir/metadata).")
        elif isinstance(error, MethodNotAllowed) and len(parts) == 3 and parts[0] == "fhir" \
                and parts[2].startswith("$"):
            fhir = FhirError.of(404, "not-supported", f"{parts[2][:40]} is not an operation on the {parts[1][:40]} "
                                                      f"type: run it on one resource, {parts[1][:40]}/<id>/"
                                                      f"{parts[2][:40]}, or see /fhir/metadata for the operations "
                                                      f"of each type.")
        elif isinstance(error, MethodNotAllowed):
            allowed = ", ".join(sorted(m for m in (error.valid_methods or []) if m not in ("HEAD", "OPTIONS")))
            fhir = FhirError.of(405, "not-supported", f"{request.method} is not allowed on {request.path[:120]}; "
                                                      f"allowed: {allowed}.", headers={"Allow": allowed})
        elif isinstance(error, RequestEntityTooLarge):
            fhir = FhirError.of(413, "too-long", f"The body is larger than this server accepts "
                                                 f"({settings.max_body_bytes} bytes).")
        else:
            fhir = FhirError.of(status, "invalid" if status < 500 else "exception",
                                f"The request could not be processed (HTTP {status}).")
        return render_error(fhir, request)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        if is_outage(error):  # a store error no store part translated (e.g. raised while a lock was released)
            return unavailable(app)
        if _malformed_framing(error):
            return render_error(FhirError.of(400, "structure", "The request body is not framed correctly (e.g. a "
                                                               "chunk size that is not hexadecimal in "
                                                               "Transfer-Encoding: chunked)."), request)
        return render_unexpected(request)
