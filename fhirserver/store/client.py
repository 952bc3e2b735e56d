"""Connecting to MongoDB (or the embedded engine) and creating collections and indexes at start-up.

Collections are created up front: the embedded engine fails on a collection that does not exist
yet where MongoDB would answer empty. Writes use w=majority on a replica set.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pymongo
from pymongo import monitoring
from pymongo.database import Database
from pymongo.errors import CollectionInvalid, OperationFailure
from pymongo.write_concern import WriteConcern

from .indexes import IndexSpec, collection_indexes


@dataclass
class StoreConnection:
    client: pymongo.MongoClient
    db: Database
    replica_set: bool

    def close(self) -> None:
        self.client.close()


def connect(uri: str, db_name: str, timeout_ms: int = 10_000,
            listeners: list[monitoring.CommandListener] | None = None) -> StoreConnection:
    client: pymongo.MongoClient = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, socketTimeoutMS=max(timeout_ms * 3, 30_000),
        connectTimeoutMS=timeout_ms, tz_aware=True, appname="fhirserver", event_listeners=listeners,
    )
    hello = client.admin.command("hello")
    replica_set = bool(hello.get("setName"))
    write_concern = WriteConcern(w="majority") if replica_set else WriteConcern(w=1)
    return StoreConnection(client=client, db=client.get_database(db_name, write_concern=write_concern),
                           replica_set=replica_set)


def ensure_schema(db: Database, resource_types: tuple[str, ...], indexed_parameters: dict[str, list[str]]) -> None:
    """Create every collection and index the server uses; idempotent and safe to run concurrently."""
    existing = set(db.list_collection_names())
    for name, specs in collection_indexes(resource_types, indexed_parameters).items():
        if name not in existing:
            with contextlib.suppress(CollectionInvalid, OperationFailure):
                db.create_collection(name)
        _create_indexes(db, name, specs)


def _create_indexes(db: Database, collection: str, specs: list[IndexSpec]) -> None:
    have = {tuple(info["key"]) for info in db[collection].list_indexes()}
    for spec in specs:
        if tuple(spec.keys) in have:
            continue
        with contextlib.suppress(OperationFailure):
            db[collection].create_index(list(spec.keys), unique=spec.unique, name=spec.name)
