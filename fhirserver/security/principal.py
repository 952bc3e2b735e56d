"""The caller of the current request, held in a context variable for the layers below the HTTP one.

When no request is running (the command line, start-up), there is no principal and access is unrestricted:
only code of this server runs then. Every HTTP request sets one before any interaction runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from .scopes import Scope


@dataclass
class Principal:
    subject: str                          # the token's `sub`, or "anonymous"
    client_id: str | None = None
    organization: str | None = None       # Organization/<id>
    practitioner: str | None = None       # Practitioner/<id> (fhirUser), for user tokens
    patient: str | None = None            # Patient/<id> for patient-context tokens
    scopes: tuple[Scope, ...] = ()
    unrestricted: bool = False            # FHIRSERVER_AUTH=off: every request may do everything
    break_glass: str | None = None        # the reason given for emergency access
    region: str | None = None             # the organization's region (filled lazily)
    correlation_id: str = ""
    touched: list[str] = field(default_factory=list)      # resources disclosed or written, for the audit
    patients: set[str] = field(default_factory=set)       # patients those resources belong to
    consent_cache: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "patient type" -> permitting consents
    holds_cache: dict[str, bool] = field(default_factory=dict)  # patient -> the caller keeps a record of the person
    grounds: set[str] = field(default_factory=set)      # Consents that let the disclosures happen, for the audit
    custodians: set[str] = field(default_factory=set)   # the other organizations whose data was disclosed
    orders: set[str] = field(default_factory=set)       # the caller's orders that let results be disclosed
    orders_cache: list[str] | None = None                # the caller's orders, for the order rule's search

    @property
    def owners(self) -> list[str]:
        """The references that make a resource "ours": the organization, and the practitioner."""
        return [r for r in (self.organization, self.practitioner) if r]


# The hospital whose data an event concerns (v3 ParticipationType CST): an agent of the event, so the event is its
# to search too (an access under another hospital's consent, an evaluation of its result).
CUSTODIAN = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "CST",
                         "display": "custodian"}]}

_current: ContextVar[Principal | None] = ContextVar("fhirserver_principal", default=None)


def current() -> Principal | None:
    return _current.get()


def set_current(principal: Principal | None) -> object:
    return _current.set(principal)


def reset(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


@contextmanager
def acting_as_server() -> Iterator[None]:
    """Run a write the server makes on its own account (a finding it records), outside the caller's rights."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def bearer_header() -> dict[str, str]:
    """The Authorization header the command-line clients send: FHIRSERVER_TOKEN, when set."""
    import os

    token = os.environ.get("FHIRSERVER_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}
