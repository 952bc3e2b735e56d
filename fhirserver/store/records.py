"""What the store hands out and takes in: one stored version of a resource, a history page cursor, and the
store's own exceptions (so the layers above never import pymongo)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from .timestamps import instant_to_ms, ms_to_instant


class VersionConflict(Exception):
    """Another writer already claimed this version of the resource."""


class LockTimeout(Exception):
    """A conditional write on the same criteria held the lock for too long."""


def partition_key(patient_key: str) -> str:
    """The `pk` field: a stable hash of the patient a resource belongs to (its compartment owner), the shard
    key of patient-compartment collections. Hashed so a hospital's sequential ids spread over shards."""
    return hashlib.sha256(patient_key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class StoredVersion:
    """One version of one resource as stored. `text` is the exact JSON of the resource (None if deleted)."""

    resource_type: str
    id: str
    vid: int
    last_updated: str
    deleted: bool
    method: str
    text: str | None
    sp: dict[str, list[Any]] = field(default_factory=dict)
    so: dict[str, Any] = field(default_factory=dict)
    pk: str | None = None  # partition key (sharding); set once, with the first version, and kept

    def _doc(self) -> dict[str, Any]:
        doc = {"vid": self.vid, "ts": instant_to_ms(self.last_updated), "deleted": self.deleted,
               "method": self.method, "text": self.text, "sp": self.sp, "so": self.so}
        if self.pk is not None:
            doc["pk"] = self.pk
        return doc

    def history_doc(self) -> dict[str, Any]:
        return {"_id": f"{self.id}/{self.vid}", "rid": self.id, **self._doc()}

    def current_doc(self) -> dict[str, Any]:
        return {"_id": self.id, **self._doc()}

    @classmethod
    def from_doc(cls, resource_type: str, doc: dict[str, Any]) -> StoredVersion:
        return cls(resource_type=resource_type, id=doc.get("rid", doc["_id"]), vid=int(doc["vid"]),
                   last_updated=ms_to_instant(doc["ts"]), deleted=bool(doc["deleted"]), method=doc.get("method", "PUT"),
                   text=doc.get("text"), sp=doc.get("sp") or {}, so=doc.get("so") or {}, pk=doc.get("pk"))


@dataclass(frozen=True)
class HistoryCursor:
    """Position after the last entry of a history page: newest-first order is (ts, id/vid) descending."""

    ts: str
    key: str
