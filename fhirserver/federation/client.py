"""Concurrent FHIR searches on peers, each bounded: per-peer deadline, retries with backoff for these
idempotent GETs, a circuit breaker, paging up to a limit, a byte limit, and validation of every resource.
A broken peer becomes a warning in the answer, never an error of the answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter

from ..api.metrics import observe_peer
from ..fhir.errors import FhirError
from ..fhir.json_format import loads
from .breaker import CircuitBreaker
from .peers import Peer

log = logging.getLogger(__name__)

MAX_BYTES = 8 * 1024 * 1024      # per peer response
MAX_PAGES = 5
MAX_ENTRIES = 500                # per peer and query
RETRIES = 2
BACKOFF_S = 0.1
REFUSAL_MEMORY_S = 600.0  # how long a peer that refused a query form is asked the fallback form directly


class PeerFailure(Exception):
    """What went wrong with a peer, in a sentence for the warning."""


class PeerRefused(PeerFailure):
    """The peer answered the query with a 4xx: it does not take it as asked (e.g. a parameter it does not know)."""


@dataclass
class PeerAnswer:
    peer: Peer
    resources: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None
    dropped: int = 0  # resources that failed validation
    elapsed_ms: float = 0.0


Query = tuple[str, list[tuple[str, str]]]  # (resource type, search parameters)
# A query a peer refused (HTTP 4xx), asked again another way: None when there is no other way.
Fallback = Callable[[list[tuple[str, str]]], list[tuple[str, str]] | None]


class FederationClient:
    def __init__(self, timeout_s: float, validate: Callable[[dict[str, Any]], None],
                 breaker: CircuitBreaker | None = None, workers: int = 16) -> None:
        self.timeout_s = timeout_s
        self.validate = validate
        self.breaker = breaker or CircuitBreaker()
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=32, pool_maxsize=32, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="peer")
        self._refusing: dict[str, float] = {}  # peer address -> until when it is asked the fallback way at once

    def search_all(self, peers: list[Peer], queries: list[Query], correlation_id: str,
                   fallback: Fallback | None = None) -> list[PeerAnswer]:
        """Every query on every peer at once; one answer per peer, within the peer timeout. A query a peer refuses
        is asked once more as `fallback` rewrites it (a peer of another make that lacks one of our parameters)."""
        futures = [(peer, self.pool.submit(self._peer, peer, queries, correlation_id, fallback)) for peer in peers]
        answers = []
        for peer, future in futures:
            try:
                answers.append(future.result(timeout=self.timeout_s + 1.0))
            except Exception:  # noqa: BLE001 - a peer's trouble is reported, never raised
                answers.append(PeerAnswer(peer, problem=f"did not answer within {self.timeout_s:g} s"))
        return answers

    def get_json(self, peer: Peer, path: str, params: list[tuple[str, str]], correlation_id: str,
                 deadline: float) -> Any:
        """One GET on the peer (retried on connection errors and 5xx while time remains)."""
        url = f"{peer.address}/{path}" + (f"?{urlencode(params)}" if params else "")
        return self._get(peer, url, correlation_id, deadline)

    # -- internals ----------------------------------------------------------------------------------------
    def _peer(self, peer: Peer, queries: list[Query], correlation_id: str, fallback: Fallback | None) -> PeerAnswer:
        answer = PeerAnswer(peer)
        started = time.monotonic()
        if not self.breaker.allow(peer.address):
            answer.problem = "skipped: it failed repeatedly and is paused (circuit breaker open)"
            return answer
        deadline = started + self.timeout_s
        try:
            for resource_type, params in queries:
                other = fallback(params) if fallback is not None else None
                if other is not None and self._refusing.get(peer.address, 0.0) > time.monotonic():
                    params = other  # it refused this form a moment ago: not asked again for every query
                try:
                    self._search(peer, resource_type, params, correlation_id, deadline, answer)
                except PeerRefused:
                    if other is None or params is other:
                        raise
                    self._search(peer, resource_type, other, correlation_id, deadline, answer)
                    self._refusing[peer.address] = time.monotonic() + REFUSAL_MEMORY_S
            self.breaker.success(peer.address)
        except PeerFailure as failure:
            self.breaker.failure(peer.address)
            answer.problem = str(failure)
            answer.resources = []
        answer.elapsed_ms = (time.monotonic() - started) * 1000
        observe_peer(peer.name, answer.problem is None, answer.elapsed_ms / 1000)
        return answer

    def _search(self, peer: Peer, resource_type: str, params: list[tuple[str, str]], correlation_id: str,
                deadline: float, answer: PeerAnswer) -> None:
        url: str | None = f"{peer.address}/{resource_type}?{urlencode(params)}"
        taken = 0
        for _ in range(MAX_PAGES):
            if url is None or taken >= MAX_ENTRIES:
                return
            bundle = self._get(peer, url, correlation_id, deadline)
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                raise PeerFailure("answered with something other than a FHIR Bundle")
            for entry in bundle.get("entry", []) if isinstance(bundle.get("entry"), list) else []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                mode = (entry.get("search") or {}).get("mode", "match") if isinstance(entry, dict) else None
                if not isinstance(resource, dict) or mode != "match":
                    continue
                if resource.get("resourceType") != resource_type or not isinstance(resource.get("id"), str):
                    answer.dropped += 1
                    continue
                try:
                    self.validate(resource)
                except FhirError:
                    answer.dropped += 1
                    continue
                answer.resources.append(resource)
                taken += 1
            url = next((link.get("url") for link in bundle.get("link", []) if isinstance(link, dict)
                        and link.get("relation") == "next"), None)
            if isinstance(url, str) and not url.startswith(peer.address + "/"):
                url = None  # a next link elsewhere is never followed

    def _get(self, peer: Peer, url: str, correlation_id: str, deadline: float) -> Any:
        headers = {"Accept": "application/fhir+json", "X-Request-Id": correlation_id, **dict(peer.headers)}
        last = "did not answer"
        for attempt in range(RETRIES + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                raise PeerFailure(f"did not answer within {self.timeout_s:g} s ({last})")
            try:
                with self.session.get(url, headers=headers, timeout=(min(remaining, 3.0), remaining),
                                      stream=True, allow_redirects=False) as response:
                    if response.status_code >= 500 or response.status_code == 429:
                        last = f"HTTP {response.status_code}"
                        self._backoff(attempt, deadline)
                        continue
                    if response.status_code != 200:
                        raise PeerRefused(f"refused the query (HTTP {response.status_code})")
                    body = self._read(response, deadline)
            except requests.Timeout:
                raise PeerFailure(f"did not answer within {self.timeout_s:g} s") from None
            except requests.RequestException as exc:
                last = f"connection failed: {type(exc).__name__}"
                self._backoff(attempt, deadline)
                continue
            try:
                return loads(body)
            except FhirError:
                raise PeerFailure("answered with something that is not FHIR JSON") from None
        raise PeerFailure(last)

    def _read(self, response: requests.Response, deadline: float) -> bytes:
        chunks, size = [], 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > MAX_BYTES:
                raise PeerFailure(f"answered with more than {MAX_BYTES // (1024 * 1024)} MB")
            if time.monotonic() > deadline:
                raise PeerFailure(f"did not finish answering within {self.timeout_s:g} s")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _backoff(attempt: int, deadline: float) -> None:
        pause = min(BACKOFF_S * (2 ** attempt), max(0.0, deadline - time.monotonic() - 0.05))
        if attempt < RETRIES and pause > 0:
            time.sleep(pause)
