"""What every interaction needs, wired once by the app factory; and the shape of its answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...config import Settings
from ...store.records import StoredVersion
from ...store.store import Store
from ...terminology.enrich import ItemCoder
from ...terminology.service import TerminologyService
from ..profiles import ProfileValidator
from ..search.compartments import Compartments
from ..search.elements import ElementFilter
from ..search.indexer import ResourceIndexer
from ..search.parameters import SearchParameterRegistry
from ..search.planner import Planner
from ..search.query import Criterion, QueryParser
from ..validation import ResourceValidator


class Access(Protocol):
    """Who may do what, asked by the interactions (the policy lives in security/access.py; fhir/ knows
    only this shape). Forbidden reads answer like missing resources (no existence oracle)."""

    def permit(self, permission: str, resource_type: str) -> None:
        """Raise 403 unless the caller's scopes grant permission (c, r, u, d, s) on the type."""

    def search_filter(self, resource_type: str, criteria: list[Criterion]) -> dict[str, Any] | None:
        """A MongoDB clause restricting a search to what the caller may see (None: no restriction); `criteria` are
        the search's own (resolved), which may name the patients it is about."""

    def disclose(self, versions: list[StoredVersion]) -> list[StoredVersion]:
        """The versions the caller may see, recorded for the audit; the rest are dropped."""

    def check_write(self, new: StoredVersion, current: StoredVersion | None) -> None:
        """Raise 403 (or 404 when the caller may not even see `current`) unless the caller may write."""

    def lacks_consent(self, patient: str) -> bool:
        """True when the caller sees other organizations' data of this person only with a consent it does not
        hold (False when it holds one, or when no consent is needed: unrestricted, break-glass, the patient)."""


class OpenAccess:
    """No restriction: the command line, start-up, and FHIRSERVER_AUTH=off."""

    def permit(self, permission: str, resource_type: str) -> None:
        return None

    def search_filter(self, resource_type: str, criteria: list[Criterion]) -> dict[str, Any] | None:
        return None

    def disclose(self, versions: list[StoredVersion]) -> list[StoredVersion]:
        return versions

    def check_write(self, new: StoredVersion, current: StoredVersion | None) -> None:
        return None

    def lacks_consent(self, patient: str) -> bool:
        return False


@dataclass(frozen=True)
class FhirContext:
    settings: Settings
    store: Store
    validator: ResourceValidator
    registry: SearchParameterRegistry
    indexer: ResourceIndexer
    parser: QueryParser
    planner: Planner
    elements: ElementFilter
    compartments: Compartments
    terminology: TerminologyService
    profiles: ProfileValidator
    conformance: dict[str, list[dict[str, Any]]]  # served read-only: type -> resources from the files
    item_coder: ItemCoder
    # Domain rules at named points of every write (single requests and Bundles alike):
    # before_write(ctx, resource) -> (resource, warnings); may raise FhirError (e.g. 422).
    # after_write(ctx, version, resource) runs once the version is stored.
    before_write: tuple[Callable[..., tuple[dict[str, Any], list[Any]]], ...] = ()
    # advise_write(ctx, resource) -> issues: advice on a write that is stored as sent (e.g. a resident ID that
    # cannot link records); shown with Prefer: return=OperationOutcome, never instead of the resource.
    advise_write: tuple[Callable[..., list[Any]], ...] = ()
    after_write: tuple[Callable[..., None], ...] = ()
    access: Access = field(default_factory=OpenAccess)
    # Search parameters resolved by a service (SearchParameter extension hr-resolved-by, e.g. "person-index"):
    # resolver(ctx, name, values) -> the references they stand for ("Patient/x", ...); FhirError for a bad value.
    resolvers: dict[str, Callable[..., list[str]]] = field(default_factory=dict)
    # Where server-made AuditEvents go (the hash-chained trail, security/audit.py); None: stored plainly.
    record_event: Callable[[dict[str, Any]], Any] | None = None
    settle_events: Callable[[], None] | None = None  # returns once the events recorded so far are searchable


@dataclass(frozen=True)
class RequestInfo:
    """The HTTP facts an interaction may depend on, already extracted by the REST layer."""

    base_url: str
    if_match: str | None = None
    if_none_exist: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    query: tuple[tuple[str, str], ...] = ()
    lenient: bool = False  # Prefer: handling=lenient


@dataclass
class Result:
    """An interaction's answer. `version` feeds ETag/Last-Modified; `body` is a resource or Bundle."""

    status: int
    version: StoredVersion | None = None
    body: dict[str, Any] | None = None
    location: str | None = None
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    warnings: list[Any] = field(default_factory=list)  # Issues to report with a successful write
    advisories: list[Any] = field(default_factory=list)  # Issues for Prefer: return=OperationOutcome only
