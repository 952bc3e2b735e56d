"""A circuit breaker per peer: after `threshold` consecutive failures the peer is skipped for `cooldown`
seconds, then one probe request decides (half-open). State is per worker process."""

from __future__ import annotations

import threading
import time


class CircuitBreaker:
    def __init__(self, threshold: int = 3, cooldown_s: float = 30.0) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        self._probing: set[str] = set()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """May a request go to this peer now? While open: no; after the cooldown: one probe at a time."""
        with self._lock:
            until = self._open_until.get(key)
            if until is None:
                return True
            if time.monotonic() < until or key in self._probing:
                return False
            self._probing.add(key)
            return True

    def success(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
            self._open_until.pop(key, None)
            self._probing.discard(key)

    def failure(self, key: str) -> None:
        with self._lock:
            count = self._failures.get(key, 0) + 1
            self._failures[key] = count
            self._probing.discard(key)
            if count >= self.threshold:
                self._open_until[key] = time.monotonic() + self.cooldown_s

    def is_open(self, key: str) -> bool:
        with self._lock:
            return key in self._open_until
