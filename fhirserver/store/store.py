"""The store as role-named parts over one MongoDB database: what the layers above are given.

Each part is small and has one job (versions, search, locks, change counters, notes, the audit log, DICOM
objects); all pymongo stays inside store/. See docs/decisions/0008-one-store-path.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.database import Database

from .audit_log import AuditLog
from .blobs import DicomStore
from .deliveries import Deliveries
from .locks import ChangeCounter, Locks
from .notes import Notes
from .outages import translating_outages
from .queries import SearchStore
from .versions import VersionStore


@translating_outages
class Health:
    def __init__(self, db: Database) -> None:
        self._db = db

    def ping(self) -> None:
        """Raise StoreUnavailable when the database does not answer (readiness)."""
        self._db.client.admin.command("ping")


@dataclass(frozen=True)
class Store:
    versions: VersionStore
    search: SearchStore
    locks: Locks
    changes: ChangeCounter
    notes: Notes
    audit: AuditLog
    dicom: DicomStore
    deliveries: Deliveries
    health: Health


def open_store(db: Database, counted: dict[str, frozenset[str]] | None = None, max_time_ms: int = 10_000,
               indexed: dict[str, frozenset[str]] | None = None) -> Store:
    """The parts over `db`. `counted`: per change-counter group, the resource types whose writes it counts;
    `indexed`: per collection, the fields that lead an index (indexes.indexed_fields)."""
    changes = ChangeCounter(db, counted or {}, max_time_ms)
    return Store(versions=VersionStore(db, changes, max_time_ms), search=SearchStore(db, max_time_ms, indexed),
                 locks=Locks(db), changes=changes, notes=Notes(db, max_time_ms), audit=AuditLog(db),
                 dicom=DicomStore(db, max_time_ms), deliveries=Deliveries(db, max_time_ms), health=Health(db))
