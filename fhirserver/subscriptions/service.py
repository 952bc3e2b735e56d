"""Subscriptions (R4, channel rest-hook): the order-to-result loop's notification. A township clinic subscribes to
`DiagnosticReport?based-on:ServiceRequest.requester=Organization/<clinic>`; when the county hospital's report
arrives, the clinic's endpoint is told.

- Written by a client as `requested` (or `off`); the server checks it (criteria must be a search it can run,
  the endpoint an absolute URL), stamps the subscriber (the caller's organization), and only the server moves it
  to `active` (its endpoint answered the handshake) or `error` (with `Subscription.error`), as new versions.
- Every stored write is matched against the active Subscriptions of its type by running the criteria with
  `_id` of the written resource (the same search engine as the REST API), and only when the subscriber may read
  the resource (the access policy decides, as for its own reads): a notification never reveals what its
  subscriber could not see.
- Notifications are jobs in the store's outbox (store/deliveries.py), sent by one thread per process: retried
  with a doubling delay, and after FHIRSERVER_HOOK_ATTEMPTS failures the Subscription is put in `error` with the
  last failure in its `error` element, never left silently active. A heartbeat is sent when the channel asks for
  one (backport heartbeat period) and nothing else was sent in that period.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import requests

from ..config import Settings
from ..fhir.errors import FhirError, Issue
from ..fhir.interactions import update
from ..fhir.interactions.context import FhirContext, RequestInfo
from ..fhir.interactions.search import find
from ..fhir.json_format import loads
from ..security.principal import Principal, acting_as_server, current, reset, set_current
from ..security.scopes import parse_scopes
from ..store.records import StoredVersion
from ..store.registry_cache import RegistryCache
from .channel import CLIENT_STATUSES, Wanted, channel_of, criteria_pairs, wanted

log = logging.getLogger(__name__)
LEASE_S = 60.0           # a claimed job is the claimer's this long (a sender that died frees it then)
IDLE_S = 0.2             # how often an idle sender looks for due jobs
MAX_ACTIVE = 1000        # Subscriptions the matcher holds in memory
CONTENT_TYPE = "application/fhir+json"
MATCHING = "-matching-"  # the outbox's owner of the jobs that match a written version (not a Subscription id)


class Subscriptions:
    def __init__(self, settings: Settings, cache: RegistryCache) -> None:
        self.settings = settings
        self.cache = cache  # the active Subscriptions, re-read whenever a Subscription changes (never stale)
        self.subscriber_url = f"{settings.canonical_base}/StructureDefinition/hr-subscriber"
        self._sender_pid: int | None = None
        self._lock = threading.Lock()
        self._holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._session = requests.Session()

    # -- the write rule (before_write) ---------------------------------------------------------------------------
    def rule(self, ctx: FhirContext, resource: dict[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
        """Check a Subscription a client writes, and stamp its subscriber. The server's own status changes
        (active, error) are written as the server and pass."""
        if resource.get("resourceType") != "Subscription":
            return resource, []
        principal = current()
        criteria_pairs(ctx, resource.get("criteria"))
        channel_of(resource)
        if principal is None:
            return resource, []
        if resource.get("status") not in CLIENT_STATUSES:
            raise FhirError(422, [Issue("business-rule", "A client writes a Subscription as requested (or off); "
                                                         "only the server sets active and error.",
                                        expression=("Subscription.status",))])
        resource = {k: v for k, v in resource.items() if k != "error"}
        if not principal.unrestricted and not principal.organization:
            return resource, []  # a platform backend: the subscriber it names, if any
        extensions = [e for e in resource.get("extension", []) if e.get("url") != self.subscriber_url]
        if principal.organization and not principal.unrestricted:
            extensions.append({"url": self.subscriber_url, "valueReference": {"reference": principal.organization}})
        if extensions:
            resource["extension"] = extensions
        else:
            resource.pop("extension", None)
        return resource, []

    # -- after a write ---------------------------------------------------------------------------------------------
    def on_write(self, ctx: FhirContext, version: StoredVersion, resource: dict[str, Any]) -> None:
        """A Subscription a client (re)requested is greeted (the handshake); any other write is matched."""
        if version.resource_type == "Subscription":
            if current() is None:
                return  # the server's own status change
            ctx.store.deliveries.drop(version.id)
            if resource.get("status") == "requested":
                ctx.store.deliveries.reset(version.id)
                ctx.store.deliveries.enqueue(version.id, "handshake")
            return
        if any(sub.resource_type == version.resource_type and sub.status == "active" for sub in self.active(ctx)):
            # Matched by the sender, off the request: a write costs one insert however many Subscriptions there are.
            ctx.store.deliveries.enqueue(MATCHING, "match", f"{version.resource_type}/{version.id}/_history/"
                                                            f"{version.vid}")

    def match(self, ctx: FhirContext, job: dict[str, Any]) -> None:
        """A written version against every active Subscription of its type: an event job for each that matches."""
        rtype, rid, vid = _focus(job["focus"])
        version = ctx.store.versions.read_current(rtype, rid)  # the index holds the current version only
        if version is not None and version.text and version.vid == vid:
            for sub in self.active(ctx):
                if sub.resource_type == rtype and sub.status == "active" and self._matches(ctx, sub, version):
                    event = ctx.store.deliveries.count_event(sub.id)
                    ctx.store.deliveries.enqueue(sub.id, "event", job["focus"], event)
        ctx.store.deliveries.done(job["_id"])

    @staticmethod
    def _matches(ctx: FhirContext, sub: Wanted, version: StoredVersion) -> bool:
        """Whether the written resource matches the criteria as the subscriber would search them (chains resolve
        only through what it may read), and the subscriber may read it: it is never told of what it could not
        see. A Subscription without a subscriber (authentication off) sees everything."""
        subscriber = _as_subscriber(sub.subscriber) if sub.subscriber else None
        token = set_current(subscriber)
        try:
            if not find(ctx, version.resource_type, [*sub.pairs, ("_id", version.id)], 1):
                return False
            return subscriber is None or ctx.access.visible(subscriber, version)
        finally:
            reset(token)

    def active(self, ctx: FhirContext) -> list[Wanted]:
        def load() -> list[Wanted]:
            out = []
            for stored in find(ctx, "Subscription", [("status", "active,requested")], MAX_ACTIVE):
                try:
                    out.append(wanted(ctx, loads(stored.text or "{}"), self.subscriber_url))
                except FhirError:
                    continue  # stored before a rule existed; the sender puts it in error when it next sends
            return out
        return self.cache.get("subscriptions", load)

    # -- the sender ---------------------------------------------------------------------------------------------
    def start(self, ctx: FhirContext) -> None:
        """One sender thread per process (after a fork, anew), started by the first write or request."""
        if self._sender_pid == os.getpid():
            return
        with self._lock:
            if self._sender_pid == os.getpid():
                return
            self._sender_pid = os.getpid()
            self._holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            threading.Thread(target=self._send_forever, args=(ctx,), name="subscription-sender", daemon=True).start()

    def _send_forever(self, ctx: FhirContext) -> None:
        next_heartbeats = 0.0
        while True:
            try:
                job = ctx.store.deliveries.claim(self._holder, LEASE_S)
                if job is not None:
                    self.match(ctx, job) if job["kind"] == "match" else self.deliver(ctx, job)
                    continue
                if time.monotonic() >= next_heartbeats:
                    self.heartbeats(ctx)
                    next_heartbeats = time.monotonic() + 1.0
            except Exception:
                log.exception("subscription sending failed; the jobs stay in the outbox and are retried")
                time.sleep(1.0)
            time.sleep(IDLE_S)

    def heartbeats(self, ctx: FhirContext) -> None:
        for sub in self.active(ctx):
            period = sub.channel.heartbeat_s
            if sub.status == "active" and period and ctx.store.deliveries.heartbeat_due(sub.id, period) \
                    and not ctx.store.deliveries.pending(sub.id):
                ctx.store.deliveries.enqueue(sub.id, "heartbeat")

    def deliver(self, ctx: FhirContext, job: dict[str, Any]) -> None:
        stored = ctx.store.versions.read_current("Subscription", job["sub"])
        resource = loads(stored.text) if stored is not None and stored.text and not stored.deleted else None
        status = (resource or {}).get("status")
        if resource is None or status in ("off", "error") or (job["kind"] == "handshake") != (status == "requested"):
            if status == "requested":  # an event that came before the handshake: after it
                ctx.store.deliveries.retry(job["_id"], time.time() + self.settings.hook_retry_s, job["attempts"],
                                           "waiting for the handshake")
            else:
                ctx.store.deliveries.done(job["_id"])
            return
        try:
            sub = wanted(ctx, resource, self.subscriber_url)
        except FhirError as error:
            self.set_status(ctx, job["sub"], "error", "; ".join(i.diagnostics for i in error.issues)[:500])
            ctx.store.deliveries.drop(job["sub"])
            return
        failure = self._post(ctx, sub, job)
        if failure is None:
            ctx.store.deliveries.done(job["_id"])
            ctx.store.deliveries.sent(sub.id, sub.channel.heartbeat_s)
            if job["kind"] == "handshake":
                self.set_status(ctx, sub.id, "active", None)
            return
        attempts = int(job["attempts"]) + 1
        if attempts >= self.settings.hook_attempts:
            what = "the handshake" if job["kind"] == "handshake" else f"a {job['kind']} notification"
            self.set_status(ctx, sub.id, "error", f"{what} to {sub.channel.endpoint[:200]} failed {attempts} "
                                                  f"times; last: {failure}")
            ctx.store.deliveries.drop(sub.id)
            return
        ctx.store.deliveries.retry(job["_id"], time.time() + self.settings.hook_retry_s * 2 ** (attempts - 1),
                                   attempts, failure)

    def _post(self, ctx: FhirContext, sub: Wanted, job: dict[str, Any]) -> str | None:
        """Send one notification; None when the endpoint took it (2xx), else what went wrong, in a sentence."""
        headers = dict(sub.channel.headers)
        body: bytes | None = None
        if sub.channel.payload is not None:
            headers["Content-Type"] = CONTENT_TYPE if sub.channel.payload == CONTENT_TYPE else "application/json"
            body = json.dumps(self.bundle(ctx, sub, job), ensure_ascii=False).encode()
        try:
            answer = self._session.post(sub.channel.endpoint, data=body, headers=headers,
                                        timeout=self.settings.hook_timeout_s, allow_redirects=False)
        except requests.RequestException as error:
            return f"{type(error).__name__}: {str(error)[:200]}"
        if 200 <= answer.status_code < 300:
            return None
        return f"HTTP {answer.status_code}"

    def bundle(self, ctx: FhirContext, sub: Wanted, job: dict[str, Any]) -> dict[str, Any]:
        """The notification as the R4 Subscriptions Backport IG shapes it: a history Bundle whose first entry is
        the subscription status (Parameters), then the focus as asked (id-only: its URL; full-resource: it)."""
        base = self.settings.base_url or ""
        kind = {"handshake": "handshake", "heartbeat": "heartbeat"}.get(job["kind"], "event-notification")
        state = ctx.store.deliveries.state(sub.id)
        parameters: list[dict[str, Any]] = [
            {"name": "subscription", "valueReference": {"reference": f"{base}/Subscription/{sub.id}".lstrip("/")}},
            {"name": "status", "valueCode": "requested" if kind == "handshake" else "active"},
            {"name": "type", "valueCode": kind},
            {"name": "events-since-subscription-start", "valueString": str(state.get("events", 0))}]
        entries: list[dict[str, Any]] = []
        focus = job.get("focus")
        if kind == "event-notification" and focus:
            reference = focus.split("/_history/", 1)[0]
            parameters.append({"name": "notification-event", "part": [
                {"name": "event-number", "valueString": str(job.get("event") or 0)},
                {"name": "timestamp", "valueInstant": _now()},
                *([{"name": "focus", "valueReference": {"reference": reference}}] if sub.channel.content != "empty"
                  else [])]})
            if sub.channel.content != "empty":
                entry: dict[str, Any] = {"fullUrl": f"{base}/{reference}".lstrip("/")}
                if sub.channel.content == "full-resource":
                    version = ctx.store.versions.read_version(*_focus(focus))
                    if version is not None and version.text:
                        entry["resource"] = loads(version.text)
                entry["request"] = {"method": "PUT", "url": reference}
                entry["response"] = {"status": "200"}
                entries.append(entry)
        status = {"resourceType": "Parameters", "id": str(uuid.uuid4()), "meta": {"profile": [
            "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"]},
            "parameter": parameters}
        return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "history", "timestamp": _now(),
                "entry": [{"fullUrl": f"urn:uuid:{status['id']}", "resource": status,
                           "request": {"method": "GET", "url": f"Subscription/{sub.id}/$status"},
                           "response": {"status": "200"}}, *entries]}

    def set_status(self, ctx: FhirContext, sub_id: str, status: str, error: str | None) -> None:
        """The server's own change of a Subscription's status, as a new version (compare-and-set, retried when a
        client wrote in between: a client's `off` or new request wins over the server's change)."""
        for _ in range(3):
            stored = ctx.store.versions.read_current("Subscription", sub_id)
            if stored is None or stored.deleted or not stored.text:
                return
            resource = loads(stored.text)
            if resource.get("status") == "off" or (status == "active" and resource.get("status") != "requested"):
                return
            changed = {**resource, "status": status}
            changed.pop("error", None)
            if error:
                changed["error"] = error
            if changed == resource:
                return
            try:
                with acting_as_server():
                    update.update(ctx, "Subscription", sub_id, changed,
                                  RequestInfo(base_url="", if_match=f'W/"{stored.vid}"'))
                return
            except FhirError as failure:
                if failure.status != 412:
                    raise


def _as_subscriber(organization: str) -> Principal:
    """The subscriber as a caller: what it could read itself is what it is told of."""
    return Principal(subject=f"subscriber {organization}", organization=organization,
                     scopes=parse_scopes("user/*.rs"))


def _focus(text: str) -> tuple[str, str, int]:
    """(type, id, version) of a job's focus, Type/id/_history/vid."""
    rtype, rid, _, vid = text.split("/")
    return rtype, rid, int(vid)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

