"""Connecting to MongoDB (or the embedded engine) and creating collections and indexes at start-up.

The store needs a replica set (transaction Bundles are MongoDB multi-document transactions); the embedded
engine is one (a single node). Writes use w=majority. Collections are created up front: a multi-document
transaction cannot always create one, and start-up is the one moment without concurrent writers.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pymongo
from pymongo import monitoring
from pymongo.database import Database
from pymongo.errors import CollectionInvalid, OperationFailure
from pymongo.write_concern import WriteConcern

from .indexes import IndexSpec


@dataclass
class StoreConnection:
    client: pymongo.MongoClient
    db: Database

    def close(self) -> None:
        self.client.close()


def connect(uri: str, db_name: str, timeout_ms: int = 10_000,
            listeners: list[monitoring.CommandListener] | None = None) -> StoreConnection:
    client: pymongo.MongoClient = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, socketTimeoutMS=max(timeout_ms * 3, 30_000),
        connectTimeoutMS=timeout_ms, tz_aware=True, appname="fhirserver", event_listeners=listeners,
    )
    hello = client.admin.command("hello")
    if not hello.get("setName") and hello.get("msg") != "isdbgrid":
        client.close()
        raise NotAReplicaSet("the MongoDB at FHIRSERVER_MONGODB_URI is a standalone server; fhirserver needs a "
                             "replica set (one member is enough) for its transactions: start mongod with "
                             "--replSet and run rs.initiate()")
    return StoreConnection(client=client, db=client.get_database(db_name, write_concern=DURABLE))


# Every write waits for a majority *and* the journal. On a MongoDB replica set w:majority already implies the
# journal (writeConcernMajorityJournalDefault); the embedded engine (SecantusDB 0.7) lost acknowledged w:majority
# writes when it was killed with SIGKILL (tests/test_persistence.py), and keeps them with j:true.
DURABLE = WriteConcern(w="majority", j=True)


class NotAReplicaSet(RuntimeError):
    """The configured MongoDB cannot run multi-document transactions."""


def ensure_schema(db: Database, specs: dict[str, list[IndexSpec]]) -> None:
    """Create every collection and index the server uses (`indexes.collection_indexes`); idempotent and safe
    to run concurrently."""
    existing = set(db.list_collection_names())
    for name, indexes in specs.items():
        if name not in existing:
            with contextlib.suppress(CollectionInvalid, OperationFailure):
                db.create_collection(name)
        _create_indexes(db, name, indexes)


def _create_indexes(db: Database, collection: str, specs: list[IndexSpec]) -> None:
    have = {tuple(info["key"]) for info in db[collection].list_indexes()}
    for spec in specs:
        if tuple(spec.keys) in have:
            continue
        with contextlib.suppress(OperationFailure):
            db[collection].create_index(list(spec.keys), unique=spec.unique, name=spec.name)


class Probe:
    """A quick look at the store for health checks: its own client that gives up within a second, so a dead
    store is reported at once instead of after the request timeout."""

    def __init__(self, uri: str, timeout_ms: int = 1000) -> None:
        self._client: pymongo.MongoClient = pymongo.MongoClient(
            uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, socketTimeoutMS=timeout_ms,
            appname="fhirserver-health")

    def answers(self) -> bool:
        try:
            self._client.admin.command("ping")
            return True
        except pymongo.errors.PyMongoError:
            return False
