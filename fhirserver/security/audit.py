"""The audit trail: one AuditEvent per audited request (and per recognition event), chained by hashes.

Each event carries its position (extension hr-audit-sequence) and the SHA-256 of the previous event's hash
followed by its own canonical JSON (extension hr-audit-hash). A head document advanced by compare-and-set
orders events across processes and nodes; `fhirserver audit verify` walks the positions and reports an event that
was changed, removed or re-ordered. The chain proves tampering inside the store; an attacker able to rewrite
every later event too is caught only by comparing with an exported head hash.

Every event (the access record of each request, and recognition events) is first durably inserted in the
store, in the `audit_spool` collection, before the response leaves (one insert, shared by concurrent
requests). A shipper chains spooled events in batches moments later; `settle` waits for that (`$statistics`
settles before it counts). One shipper at a time holds a lease, kept in the head document itself, and the
head moves only by compare-and-set on its position *and* its holder: a shipper whose lease lapsed cannot
move it, so no event is chained twice. A crashed process leaves its events in the spool for the next
holder, on any node. This is what makes the chain affordable on every request (decision 0007): chaining
costs five store commands per batch instead of per request.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from ..fhir.interactions.context import FhirContext
from ..fhir.interactions.writing import trusted_versions
from ..fhir.json_format import dumps, loads
from ..store.audit_log import GENESIS, AuditLog

log = logging.getLogger(__name__)

SHIP_BATCH = 500
LEASE_SECONDS = 10.0
IDLE_LOOK_S = 1.0


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


class _GroupCommit:
    """Concurrent callers of a worker commit together: the first to take the lock writes every item waiting,
    while the others wait for it; each caller returns only once its own item is written (or raises its error)."""

    def __init__(self, write: Callable[[list[_Pending]], None]) -> None:
        self._write = write
        self._commit = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []

    def submit(self, event: dict[str, Any]) -> None:
        pending = _Pending(event)
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


class AuditTrail:
    """Records events through the spool and chains them under the lease (see the module doc)."""

    def __init__(self, ctx: FhirContext, canonical_base: str, ship_interval_s: float = 0.2) -> None:
        self.ctx = ctx
        self.sequence_url = f"{canonical_base}/StructureDefinition/hr-audit-sequence"
        self.hash_url = f"{canonical_base}/StructureDefinition/hr-audit-hash"
        self.log: AuditLog = ctx.store.audit
        self.ship_interval_s = ship_interval_s
        self._ship_lock = threading.Lock()  # the shipper thread and a settling request share the process's lease
        self._spool = _GroupCommit(self._spool_pending)
        self._head: dict[str, Any] | None = None  # the head as this process last moved it (saves a read)
        self._wake = threading.Event()
        self._shipper_pid: int | None = None
        self._token = uuid.uuid4().hex[:8]

    @property
    def _holder(self) -> str:
        """This process's name on the lease (per pid: a forked copy of this object is another holder)."""
        return f"{socket.gethostname()}:{os.getpid()}:{self._token}"

    def spool(self, event: dict[str, Any]) -> None:
        """Store the event durably in the spool; returns once it is stored. The shipper chains it moments later."""
        self._spool.submit(event if event.get("id") else {**event, "id": str(uuid.uuid4())})
        self._start_shipper()
        self._wake.set()

    def _spool_pending(self, batch: list[_Pending]) -> None:
        self.log.spool([(item.event["id"], dumps(item.event).decode("utf-8")) for item in batch])

    # -- shipping: the lease holder chains the spool ---------------------------------------------------------
    def ship(self, known_waiting: bool = False) -> int:
        """One shipping round: chain up to SHIP_BATCH spooled events, oldest first, under the lease. Returns how
        many left the spool (0 when the spool is empty, -1 when another process holds the lease)."""
        if not known_waiting and not self._waiting():
            return 0
        with self._ship_lock:
            if not self._acquire():
                return -1
            waiting = self.log.oldest(SHIP_BATCH)
            if not waiting:
                return 0
            ids = [doc["_id"] for doc in waiting]
            chained: set[str] = set()
            if waiting[0]["at"] < time.time() - LEASE_SECONDS:
                # old enough to be a batch that a crashed holder stored before it could empty the spool
                chained, claimed_only = self.log.stored(ids)
                for event_id in claimed_only:  # its shipper died between the claim and the current document
                    self.ctx.store.versions.roll_forward("AuditEvent", event_id)
                chained |= claimed_only
            fresh = [loads(doc["text"]) for doc in waiting if doc["_id"] not in chained]
            if fresh:
                if not self._chain(fresh, ids):
                    return -1  # the lease passed to another process while this one stalled: it ships them
            else:
                self.log.unspool(ids)
            return len(ids)

    def _chain(self, batch: list[dict[str, Any]], spooled: list[str]) -> bool:
        """Link the batch after the head and store it, in one transaction with the head's move and the spool's
        release: a crash at any point leaves either all of it or none (then the next round ships the batch
        again). False when this process no longer holds the lease."""
        for _ in range(2):  # the head as this process last moved it, then as stored (another holder moved it)
            head = self._head or self.log.head() or {}
            if head.get("holder") != self._holder:
                return False
            sequence, digest = int(head.get("seq", 0)), head.get("hash", GENESIS)
            events = []
            for event in batch:
                sequence += 1
                base = [e for e in event.get("extension", []) if e.get("url") not in (self.sequence_url, self.hash_url)]
                candidate = {**event, "extension": [*base, {"url": self.sequence_url, "valueInteger": sequence}]}
                digest = link_hash(digest, candidate, self.hash_url)
                candidate["extension"].append({"url": self.hash_url, "valueString": digest})
                events.append(candidate)
            # compare-and-set on the position *and* the holder: a holder whose lease lapsed cannot move the head
            def move(session: Any, start: int = head.get("seq", 0), end: int = sequence, tip: str = digest) -> bool:
                if not self.log.advance(self._holder, start, end, tip, session=session):
                    return False
                self.log.unspool(spooled, session=session)
                return True

            if self.ctx.store.versions.write_all(trusted_versions(self.ctx, events), also=move,
                                                 checkpoint=_fault_point):
                self._head = {**head, "seq": sequence, "hash": digest}
                return True
            self._head = None
        return False

    def _waiting(self) -> bool:
        return self.log.waiting()

    def _acquire(self) -> bool:
        """Take (or renew) the lease kept in the head document."""
        return self.log.acquire(self._holder, LEASE_SECONDS)

    def release(self) -> None:
        """Give the lease back (at exit), so another process ships without waiting for it to expire."""
        with contextlib.suppress(Exception):
            self.log.release(self._holder)

    def _start_shipper(self) -> None:
        """One shipper thread per process, started by the first spooled event (after a fork, anew)."""
        if self._shipper_pid == os.getpid():
            return
        with self._ship_lock:
            if self._shipper_pid == os.getpid():
                return
            self._shipper_pid = os.getpid()
            threading.Thread(target=self._ship_forever, name="audit-shipper", daemon=True).start()
            atexit.register(self.release)

    def _ship_forever(self) -> None:
        """The lease holder ships every interval while events come; the others look once a second (the holder
        ships their events too, since the spool is shared) and take over when the holder's lease lapses."""
        while True:
            woken = self._wake.wait(timeout=IDLE_LOOK_S)  # a timeout also picks up what a crashed process left
            self._wake.clear()
            time.sleep(self.ship_interval_s)  # let a batch gather
            try:
                shipped = self.ship(known_waiting=woken)
                while shipped == SHIP_BATCH:
                    shipped = self.ship(known_waiting=True)
                if shipped < 0:
                    time.sleep(IDLE_LOOK_S)  # another process ships
            except Exception:
                log.exception("audit shipping failed; the events stay in the spool and are retried")
                time.sleep(1.0)

    def settle(self, timeout_s: float = 5.0) -> None:
        """Return once every event spooled before the call is chained (and searchable): ship them here, or wait
        for the process holding the lease to. After the timeout, return anyway (a report is then a little behind)."""
        cutoff = time.time()
        deadline = time.monotonic() + timeout_s
        while self.log.waiting(spooled_by=cutoff):
            if time.monotonic() > deadline:
                log.warning("audit events spooled before %s are not chained yet", cutoff)
                return
            if self.ship(known_waiting=True) <= 0:
                time.sleep(0.05)


def verify(audit_log: AuditLog, canonical_base: str) -> Iterator[Problem]:
    """Recompute the chain from the first event to the head; yield every break (an event changed, removed,
    duplicated or re-numbered, or the last ones cut off). Silence means the chain is intact."""
    sequence_url = f"{canonical_base}/StructureDefinition/hr-audit-sequence"
    hash_url = f"{canonical_base}/StructureDefinition/hr-audit-hash"
    head = audit_log.head()
    if head is None:
        return
    chained: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for event_id, text in audit_log.chained("hr-audit-sequence"):
        event = loads(text)
        position = next((e.get("valueInteger") for e in event.get("extension", []) if e.get("url") == sequence_url),
                        None)
        if isinstance(position, int):
            chained.setdefault(position, []).append((event_id, event))
    previous = GENESIS
    for sequence in range(1, int(head["seq"]) + 1):
        found = chained.pop(sequence, [])
        if not found:
            yield Problem(sequence, "no AuditEvent holds this position: it was removed (a crash cannot leave a gap: "
                                    "the head moves in one transaction with the events it chains)")
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


def _fault_point(step: str) -> None:
    """Fault injection for the crash tests (tests/test_audit_faults.py): FHIRSERVER_FAULT_INJECT=audit:<step>:<file>
    kills this process right after <step> of the chaining transaction (head, history, current), leaving <file>."""
    wanted = os.environ.get("FHIRSERVER_FAULT_INJECT", "")
    if not wanted.startswith("audit:"):
        return
    _, point, marker = [*wanted.split(":", 2), ""][:3]
    if point == step:
        if marker:
            with open(marker, "w", encoding="utf-8") as handle:
                handle.write(step)
        os._exit(137)
