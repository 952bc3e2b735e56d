"""The bases this server answers to, so that a reference to it written absolutely is the same identity as the
relative one (docs/decisions/0010-references-as-identities.md): the configured FHIRSERVER_BASE_URL, and the base
the current request was addressed to (what the client calls this server), set by the HTTP layer per request."""

from __future__ import annotations

from contextvars import ContextVar, Token

_served: ContextVar[str | None] = ContextVar("served_base", default=None)


def serve(base: str) -> Token[str | None]:
    """Mark `base` (e.g. "http://10.1.2.3:8080/fhir") as this request's base; reset with `done(token)`."""
    return _served.set(base.rstrip("/"))


def done(token: Token[str | None]) -> None:
    _served.reset(token)


def local_bases(configured: str | None) -> tuple[str, ...]:
    """The configured base and this request's base, without duplicates."""
    return tuple(dict.fromkeys(b for b in (configured, _served.get()) if b))
