"""Fixtures: a real `fhirserver serve` process (gunicorn + the embedded engine, or the MongoDB named by
FHIRSERVER_MONGODB_URI) and a direct pymongo handle on the same store for storage-level assertions."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pymongo
import pytest
import requests

FHIR_JSON = "application/fhir+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """One running server; `base` is its FHIR base URL."""

    data_dir: Path
    port: int
    db_name: str
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    workers: int = 2

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def start(self, timeout: float = 90.0) -> ServerProcess:
        env = {**os.environ, "FHIRSERVER_AUTH": "off", "FHIRSERVER_MONGODB_DB": self.db_name, **self.extra_env}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fhirserver", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir),
             "--workers", str(self.workers), "--threads", "8"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                if requests.get(f"{self.base}/metadata", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not become ready:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def mongo_uri(self) -> str:
        external = os.environ.get("FHIRSERVER_MONGODB_URI")
        if external:
            return external
        from fhirserver.store.embedded import running_engine_uri

        uri = running_engine_uri(self.data_dir)
        assert uri, "the server did not record its embedded engine"
        return uri


def new_server(tmp: Path, **extra_env: str) -> ServerProcess:
    return ServerProcess(data_dir=tmp, port=free_port(), db_name=f"fhirtest_{uuid.uuid4().hex[:10]}",
                         extra_env=extra_env)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    handle = new_server(tmp_path_factory.mktemp("server")).start()
    yield handle
    handle.stop()
    _drop_external_db(handle.db_name)


def _drop_external_db(name: str) -> None:
    external = os.environ.get("FHIRSERVER_MONGODB_URI")
    if external:
        with pymongo.MongoClient(external) as client:
            client.drop_database(name)


@pytest.fixture(scope="session")
def base(server: ServerProcess) -> str:
    return server.base


@pytest.fixture(scope="session")
def store(server: ServerProcess) -> Iterator[pymongo.database.Database]:
    """The server's own database over a real connection, to check what was (not) stored."""
    client: pymongo.MongoClient = pymongo.MongoClient(server.mongo_uri())
    yield client[server.db_name]
    client.close()


# Every FHIR body the server answers through the `http` fixture (most of the suite's requests) is validated with an
# independent model of FHIR (fhir.resources R4B); any that fails makes the whole run fail at its end (issue 17).
INVALID_BODIES: list[str] = []


def _validate_fhir_body(response: requests.Response, *_args: object, **_kwargs: object) -> None:
    if not response.headers.get("Content-Type", "").startswith(FHIR_JSON) or not response.content:
        return
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    where = f"{response.request.method} {response.url[:200]} -> {response.status_code}"
    try:
        body = response.json()
        get_fhir_model_class(body["resourceType"]).model_validate(body)
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        INVALID_BODIES.append(f"{where}: {str(exc)[:600]}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if INVALID_BODIES:
        print(f"\n{len(INVALID_BODIES)} FHIR response bodies do not validate with fhir.resources (R4B):")
        for line in INVALID_BODIES[:20]:
            print("  " + line)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update({"Accept": FHIR_JSON})
        session.hooks["response"].append(_validate_fhir_body)
        yield session


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def observation(identifier: str | None = None, **extra: object) -> dict[str, object]:
    """A valid lab Observation: haemoglobin in g/L, as a Chinese LIS would send it."""
    resource: dict[str, object] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"}],
                 "text": "血红蛋白"},
        "valueQuantity": {"value": 135, "unit": "g/L", "system": "http://unitsofmeasure.org", "code": "g/L"},
    }
    if identifier:
        resource["identifier"] = [{"system": "urn:oid:2.16.156.10011.1.99", "value": identifier}]
    resource.update(extra)
    return resource


def post(http: requests.Session, base: str, resource: dict[str, object], **headers: str) -> requests.Response:
    return http.post(f"{base}/{resource['resourceType']}", json=resource,
                     headers={"Content-Type": FHIR_JSON, **headers})


def stored_counts(store: pymongo.database.Database, resource_type: str) -> tuple[int, int]:
    """(current documents, history documents) for a type: what a refused write must leave unchanged."""
    return (len(list(store[resource_type].find({}, {"_id": 1}))),
            len(list(store[f"{resource_type}_history"].find({}, {"_id": 1}))))


def spooled_audit(store: pymongo.database.Database) -> int:
    """Access events stored but not chained yet (the audit spool)."""
    return len(list(store["audit_spool"].find({}, {"_id": 1})))


def audit_settled(store: pymongo.database.Database, timeout: float = 15.0) -> None:
    """Wait until the server's audit shipper has chained every spooled event."""
    deadline = time.monotonic() + timeout
    while spooled_audit(store):
        if time.monotonic() > deadline:
            raise AssertionError(f"{spooled_audit(store)} audit events still in the spool after {timeout} s")
        time.sleep(0.05)
