"""Values derived from registry resources (Organization, OrganizationAffiliation, PractitionerRole, Endpoint),
cached per process and still never stale: the store counts every change to those types in one document,
and a cached value is used only while that count has not moved (one primary-key read instead of the searches
that built it). A maximum age bounds what a process could keep if a writer died between its write and its count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from .locks import REGISTRY, ChangeCounter

T = TypeVar("T")
MAX_ENTRIES = 10_000


class RegistryCache:
    def __init__(self, changes: ChangeCounter, max_age_s: float = 60.0, group: str = REGISTRY) -> None:
        self._changes = changes
        self._group = group
        self._max_age_s = max_age_s
        self._entries: dict[Hashable, tuple[int, float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        generation = self._changes.generation(self._group)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] == generation and now - hit[1] < self._max_age_s:
            return hit[2]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (generation, now, value)
        return value
