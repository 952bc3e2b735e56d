"""What a Subscription asks for, read and checked once: its criteria as search pairs, its rest-hook channel
(endpoint, headers, payload and how much of the resource goes in it, heartbeat period), its subscriber.

R4 Subscription (http://hl7.org/fhir/R4/subscription.html), with the R4 Subscriptions Backport IG's channel
extensions for what R4 leaves open: payload content (empty, id-only, full-resource) and the heartbeat period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..fhir.errors import FhirError, Issue
from ..fhir.interactions.context import FhirContext
from ..fhir.resource_types import is_supported

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
CONTENT_URL = f"{BACKPORT}/backport-payload-content"
HEARTBEAT_URL = f"{BACKPORT}/backport-heartbeat-period"
CONTENTS = ("empty", "id-only", "full-resource")
PAYLOADS = ("application/fhir+json", "application/json")
CLIENT_STATUSES = ("requested", "off")


@dataclass(frozen=True)
class Channel:
    endpoint: str
    payload: str | None      # None: POST with no body (R4 "empty"); else the notification Bundle's media type
    content: str             # empty | id-only | full-resource (what the Bundle carries of the resource)
    headers: tuple[tuple[str, str], ...]
    heartbeat_s: int | None


@dataclass(frozen=True)
class Wanted:
    """A stored Subscription as the matcher and the sender use it."""

    id: str
    status: str
    resource_type: str
    pairs: tuple[tuple[str, str], ...]
    channel: Channel
    subscriber: str | None   # the organization that made it (hr-subscriber): notified only of what it may read


def _refused(text: str, where: str, code: str = "business-rule") -> FhirError:
    return FhirError(422, [Issue(code, text, expression=(where,))])


def criteria_pairs(ctx: FhirContext, criteria: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The criteria as (type, search pairs), parsed as the REST search would parse them, or a 422 naming why."""
    if not isinstance(criteria, str) or "?" not in criteria:
        raise _refused("criteria is a search such as DiagnosticReport?based-on:ServiceRequest.requester="
                       "Organization/x (a resource type, '?', and parameters).", "Subscription.criteria")
    rtype, _, query = criteria.partition("?")
    rtype = rtype.strip("/").rsplit("/", 1)[-1]
    if not is_supported(rtype):
        raise _refused(f"criteria names {rtype[:40]!r}, which this server does not store, so it could never "
                       "match.", "Subscription.criteria")
    pairs = tuple(parse_qsl(query, keep_blank_values=True))
    if not pairs:
        raise _refused("criteria has no search parameters: it would match every write of the type.",
                       "Subscription.criteria")
    try:
        ctx.parser.parse(rtype, list(pairs), criteria_only=True)
    except FhirError as error:
        said = "; ".join(i.diagnostics for i in error.issues)[:300]
        raise _refused(f"criteria cannot be searched, so the Subscription could never fire ({said}).",
                       "Subscription.criteria") from None
    return rtype, pairs


def channel_of(resource: dict[str, Any]) -> Channel:
    """The rest-hook channel, or a 422 naming the element that is wrong."""
    channel = resource.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise _refused("Only rest-hook channels are supported here (channel.type = rest-hook).",
                       "Subscription.channel.type", "not-supported")
    endpoint = channel.get("endpoint")
    parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise _refused("channel.endpoint must be an absolute http(s) URL the server can POST to.",
                       "Subscription.channel.endpoint")
    payload = channel.get("payload")
    if payload is not None and payload not in PAYLOADS:
        raise _refused(f"channel.payload is absent (no body) or one of {', '.join(PAYLOADS)}.",
                       "Subscription.channel.payload")
    content = next((e.get("valueCode") for e in (channel.get("_payload") or {}).get("extension", [])
                    if e.get("url") == CONTENT_URL), None)
    if content is not None and content not in CONTENTS:
        raise _refused(f"The payload content extension is one of {', '.join(CONTENTS)}.",
                       "Subscription.channel.payload")
    heartbeat = next((e.get("valueUnsignedInt") for e in channel.get("extension", [])
                      if e.get("url") == HEARTBEAT_URL), None)
    if heartbeat is not None and (not isinstance(heartbeat, int) or heartbeat < 1):
        raise _refused("The heartbeat period is a whole number of seconds, at least 1.", "Subscription.channel")
    headers = []
    for line in channel.get("header", []):
        name, sep, value = str(line).partition(":")
        if not sep or not name.strip() or "\n" in line or "\r" in line:
            raise _refused("Each channel.header is 'Name: value' on one line.", "Subscription.channel.header")
        headers.append((name.strip(), value.strip()))
    return Channel(endpoint=str(endpoint), payload=payload,
                   content="empty" if payload is None else (content or "id-only"), headers=tuple(headers),
                   heartbeat_s=heartbeat)


def wanted(ctx: FhirContext, resource: dict[str, Any], subscriber_url: str) -> Wanted:
    rtype, pairs = criteria_pairs(ctx, resource.get("criteria"))
    subscriber = next(((e.get("valueReference") or {}).get("reference") for e in resource.get("extension", [])
                       if e.get("url") == subscriber_url), None)
    return Wanted(id=str(resource.get("id", "")), status=str(resource.get("status", "")), resource_type=rtype,
                  pairs=pairs, channel=channel_of(resource), subscriber=subscriber)
