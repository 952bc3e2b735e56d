"""What every interaction needs, wired once by the app factory; and the shape of its answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...config import Settings
from ...store.repository import ResourceRepository, StoredVersion
from ..search.indexer import ResourceIndexer
from ..search.parameters import SearchParameterRegistry
from ..validation import ResourceValidator


@dataclass(frozen=True)
class FhirContext:
    settings: Settings
    repository: ResourceRepository
    validator: ResourceValidator
    registry: SearchParameterRegistry
    indexer: ResourceIndexer


@dataclass(frozen=True)
class RequestInfo:
    """The HTTP facts an interaction may depend on, already extracted by the REST layer."""

    base_url: str
    if_match: str | None = None
    if_none_exist: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    query: tuple[tuple[str, str], ...] = ()


@dataclass
class Result:
    """An interaction's answer. `version` feeds ETag/Last-Modified; `body` is a resource or Bundle."""

    status: int
    version: StoredVersion | None = None
    body: dict[str, Any] | None = None
    location: str | None = None
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
