"""The audit trail: one AuditEvent per audited request (and per recognition event), chained by hashes.

Each event carries its position (extension hr-audit-sequence) and the SHA-256 of the previous event's hash
followed by its own canonical JSON (extension hr-audit-hash). A head document advanced by compare-and-set
orders events across worker processes; a link per position lets `fhirserver audit verify` walk the chain and
report an event that was changed, removed or re-ordered. The chain proves tampering inside the store; an
attacker able to rewrite every later event too is caught only by comparing with an exported head hash.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from ..fhir.interactions.context import FhirContext
from ..fhir.interactions.writing import store_trusted
from ..fhir.json_format import dumps, loads

log = logging.getLogger(__name__)

CHAIN = "audit_chain"
HEAD = "head"
GENESIS = "0" * 64
MAX_ATTEMPTS = 200


def canonical(event: dict[str, Any], hash_url: str) -> bytes:
    """The bytes that are hashed: the event without meta and without its own hash, keys sorted."""
    body = {k: v for k, v in event.items() if k != "meta"}
    body["extension"] = [e for e in body.get("extension", []) if e.get("url") != hash_url]
    if not body["extension"]:
        del body["extension"]
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=_decimal)


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(type(value).__name__)


def link_hash(previous: str, event: dict[str, Any], hash_url: str) -> str:
    return hashlib.sha256(previous.encode("ascii") + canonical(event, hash_url)).hexdigest()


@dataclass(frozen=True)
class Problem:
    sequence: int
    text: str


@dataclass
class _Pending:
    event: dict[str, Any]
    done: bool = False
    error: BaseException | None = None


class AuditTrail:
    """Appends events to the chain. Concurrent requests of a worker commit together (group commit): the
    first to take the lock writes every event waiting, in one head move and three bulk writes, while the
    others wait for it; each request still returns only once its own event is stored."""

    def __init__(self, ctx: FhirContext, canonical_base: str) -> None:
        self.ctx = ctx
        self.sequence_url = f"{canonical_base}/StructureDefinition/hr-audit-sequence"
        self.hash_url = f"{canonical_base}/StructureDefinition/hr-audit-hash"
        self.chain = ctx.repository.database[CHAIN]
        self._commit = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._head: dict[str, Any] | None = None  # the head as this process last wrote it (saves a read)

    def append(self, event: dict[str, Any]) -> None:
        """Store the event at the next position of the chain; returns once it is stored."""
        pending = _Pending(loads(dumps(event)))  # the exact JSON that will be stored (decimals as written)
        with self._queue_lock:
            self._queue.append(pending)
        with self._commit:
            if not pending.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    self._write(batch)
                except BaseException as exc:
                    for item in batch:
                        item.error = exc
                    raise
                finally:
                    for item in batch:
                        item.done = True
        if pending.error is not None:
            raise pending.error

    def _write(self, batch: list[_Pending]) -> None:
        for _ in range(MAX_ATTEMPTS):
            head = self._head or self.chain.find_one({"_id": HEAD}) or {"seq": 0, "hash": GENESIS}
            sequence, digest = int(head["seq"]), head["hash"]
            events = []
            for item in batch:
                sequence += 1
                base = [e for e in item.event.get("extension", [])
                        if e.get("url") not in (self.sequence_url, self.hash_url)]
                candidate = {**item.event, "extension": [*base, {"url": self.sequence_url, "valueInteger": sequence}]}
                digest = link_hash(digest, candidate, self.hash_url)
                candidate["extension"].append({"url": self.hash_url, "valueString": digest})
                events.append(candidate)
            if self._advance(head, sequence, digest):
                self._head = {"_id": HEAD, "seq": sequence, "hash": digest}
                store_trusted(self.ctx, events)
                return
            self._head = None  # another worker moved the head: read it again
        raise RuntimeError("the audit chain head is too contended")

    def _advance(self, head: dict[str, Any], sequence: int, digest: str) -> bool:
        """Move the head from where it was read to the batch's last link (compare-and-set across workers)."""
        try:
            if "_id" not in head:
                self.chain.insert_one({"_id": HEAD, "seq": sequence, "hash": digest})
                return True
            moved = self.chain.update_one({"_id": HEAD, "seq": head["seq"]},
                                          {"$set": {"seq": sequence, "hash": digest}})
        except DuplicateKeyError:
            return False
        return moved.modified_count == 1


def verify(db: Database, canonical_base: str) -> Iterator[Problem]:
    """Recompute the chain from the first event to the head; yield every break (an event changed, removed,
    duplicated or re-numbered, or the last ones cut off). Silence means the chain is intact."""
    sequence_url = f"{canonical_base}/StructureDefinition/hr-audit-sequence"
    hash_url = f"{canonical_base}/StructureDefinition/hr-audit-hash"
    head = db[CHAIN].find_one({"_id": HEAD})
    if head is None:
        return
    chained: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for doc in db["AuditEvent"].find({"text": {"$regex": "hr-audit-sequence"}}, {"text": 1}):
        event = loads(doc["text"])
        position = next((e.get("valueInteger") for e in event.get("extension", []) if e.get("url") == sequence_url),
                        None)
        if isinstance(position, int):
            chained.setdefault(position, []).append((doc["_id"], event))
    previous = GENESIS
    for sequence in range(1, int(head["seq"]) + 1):
        found = chained.pop(sequence, [])
        if not found:
            yield Problem(sequence, "no AuditEvent holds this position (removed, or a crash mid-write)")
            continue
        if len(found) > 1:
            yield Problem(sequence, f"{len(found)} AuditEvents claim this position: "
                                    f"{', '.join('AuditEvent/' + i for i, _ in found)}")
        event_id, event = found[0]
        claimed = next((e.get("valueString") for e in event.get("extension", []) if e.get("url") == hash_url), None)
        recomputed = link_hash(previous, event, hash_url)
        if recomputed != claimed:
            yield Problem(sequence, f"AuditEvent/{event_id} was modified (its hash no longer matches)")
        previous = claimed if isinstance(claimed, str) else recomputed
    for sequence in sorted(chained):
        yield Problem(sequence, "an AuditEvent claims a position after the head")
    if previous != head["hash"]:
        yield Problem(int(head["seq"]), "the head hash does not match the last event")
