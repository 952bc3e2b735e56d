"""Fixtures: a real `fhirserver serve` process (gunicorn + the embedded engine, or the MongoDB named by
FHIRSERVER_MONGODB_URI) and a direct pymongo handle on the same store for storage-level assertions."""

from __future__ import annotations

import json
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
from network import FHIR_JSON, affiliation, alliance, day, organization, put_all, report, scope_codes


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
    def root(self) -> str:
        """Where the console, DICOMweb and CDS Hooks live beside /fhir."""
        return f"http://127.0.0.1:{self.port}"

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


@pytest.fixture(scope="module")
def net(http, base):
    """A small regional network: Chongqing hospitals of several levels, one that left, a Sichuan hospital."""
    t = unique("net")
    ids = {k: f"{t}-{k}" for k in ("network", "children", "yubei", "township", "left", "huaxi", "child", "adult")}
    outside = next(c for c in scope_codes("520000") if c.startswith(("CT-", "MR-")) and c not in scope_codes("chuanyu"))
    inside = next(c for c in scope_codes("chuanyu") if c in scope_codes("510000") and c.startswith("CT-"))
    resources = [
        {"resourceType": "Organization", "id": ids["network"], "name": "川渝互认网络"},
        organization(ids["children"], "重庆医科大学附属儿童医院", "3A", "500000"),
        organization(ids["yubei"], "重庆市渝北区人民医院", "2A", "500112"),
        organization(ids["township"], "渝北区某镇卫生院", "1", "500112"),
        organization(ids["left"], "已退出互认的医院", "3B", "500000"),
        organization(ids["huaxi"], "四川大学华西医院", "3A", "510100"),
        {
            "resourceType": "Patient",
            "id": ids["child"],
            "name": [{"text": "小明"}],
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": f"50011220200101{t[-4:]}"}],
        },
        {"resourceType": "Patient", "id": ids["adult"], "name": [{"text": "王芳"}]},
    ]
    for hospital in ("children", "yubei", "township", "huaxi"):
        resources.append(
            affiliation(f"{t}-m-{hospital}", ids["network"], ids[hospital], "network-member", "2020-01-01")
        )
        resources.append(affiliation(f"{t}-q-{hospital}", ids["network"], ids[hospital], "qc-accredited", "2020-01-01"))
    resources.append(
        affiliation(f"{t}-m-left", ids["network"], ids["left"], "network-member", "2020-01-01", "2026-10-01")
    )
    resources.append(affiliation(f"{t}-q-left", ids["network"], ids["left"], "qc-accredited", "2020-01-01"))
    results = {
        "dr5": report(f"{t}-dr5", ids["child"], ids["yubei"], "DX-CHEST", day(5)),
        "dr100": report(f"{t}-dr100", ids["adult"], ids["yubei"], "DX-CHEST", day(100)),
        "township_ct": report(f"{t}-tct", ids["child"], ids["township"], "CT-HEAD", day(3)),
        "sc_inside": report(f"{t}-sci", ids["adult"], ids["huaxi"], inside, day(10)),
        "sc_outside": report(f"{t}-sco", ids["adult"], ids["huaxi"], outside, day(10)),
        "left": report(f"{t}-left", ids["adult"], ids["left"], "DX-ABDOMEN", "2026-09-01T10:00:00+08:00"),
        "cancelled": report(f"{t}-can", ids["adult"], ids["yubei"], "DX-KNEE", day(4), status="cancelled"),
        "amended": report(f"{t}-amd", ids["adult"], ids["yubei"], "DX-SHOULDER", day(4), status="amended"),
        "older": report(f"{t}-old", ids["adult"], ids["yubei"], "DX-HIP", day(20)),
        "newer": report(f"{t}-new", ids["adult"], ids["yubei"], "DX-HIP", day(2)),
    }
    # The network registers its hospitals first; their results arrive afterwards (the mark is computed
    # from the performer's standing as stored when a result is ingested).
    for batch in (resources, list(results.values())):
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in batch
            ],
        }
        response = http.post(
            base, data=json.dumps(bundle, ensure_ascii=False).encode(), headers={"Content-Type": FHIR_JSON}
        )
        assert response.status_code == 200, response.text
    return {"t": t, "ids": ids, "results": results, "inside": inside, "outside": outside}


@pytest.fixture(scope="module")
def guizhou(http, base):
    """A Guizhou county medical community (county hospital + township health centre), a tertiary hospital outside
    it, and a "group" that is not stored as an alliance."""
    t = unique("gz")
    ids = {k: f"{t}-{k}" for k in ("network", "community", "fake", "county", "township", "tertiary", "city2",
                                   "patient")}
    resources = [
        {"resourceType": "Organization", "id": ids["network"], "name": "贵州互认网络"},
        alliance(ids["community"], "某县县域医共体"),
        {"resourceType": "Organization", "id": ids["fake"], "name": "自称医联体的普通组织"},
        organization(ids["county"], "某县人民医院", "2A", "520100"),
        organization(ids["township"], "某镇卫生院", "1", "520100"),
        organization(ids["tertiary"], "贵州省某三甲医院", "3A", "520100"),
        organization(ids["city2"], "贵阳市某二级医院", "2B", "520100"),
        {"resourceType": "Patient", "id": ids["patient"], "name": [{"text": "张三"}]},
    ]
    for hospital in ("county", "township", "tertiary", "city2"):
        resources.append(affiliation(f"{t}-m-{hospital}", ids["network"], ids[hospital], "network-member",
                                     "2020-01-01"))
        resources.append(affiliation(f"{t}-q-{hospital}", ids["network"], ids[hospital], "qc-accredited",
                                     "2020-01-01"))
    for hospital in ("county", "township"):
        resources.append(affiliation(f"{t}-a-{hospital}", ids["community"], ids[hospital], "alliance-member",
                                     "2024-01-01"))
    # The tertiary hospital and the township are both in a "group" that is not an alliance: it makes no scope.
    for hospital in ("tertiary", "township"):
        resources.append(affiliation(f"{t}-f-{hospital}", ids["fake"], ids[hospital], "alliance-member",
                                     "2024-01-01"))
    put_all(http, base, resources)
    results = {
        "township_ct": report(f"{t}-tct", ids["patient"], ids["township"], "CT-HEAD", day(3)),
        "township_dr": report(f"{t}-tdr", ids["patient"], ids["township"], "DX-CHEST", day(3)),
        "tertiary_ct": report(f"{t}-3ct", ids["patient"], ids["tertiary"], "CT-CHEST", day(3)),
        "city2_ct": report(f"{t}-2ct", ids["patient"], ids["city2"], "CT-ABDOMEN", day(3)),
    }
    put_all(http, base, list(results.values()))
    return {"ids": ids, "results": {k: v["id"] for k, v in results.items()}}


# -- a server with authentication on (HS256 development tokens) ---------------------------------------------------
ISSUER = "https://auth.test.example"
SECRET = "development-secret-of-at-least-32-chars"


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own per module with FHIRSERVER_AUTH=on, quick Subscription retries, no re-order rule."""
    handle = new_server(tmp_path_factory.mktemp("authed"))
    handle.extra_env.update({"FHIRSERVER_AUTH": "on", "FHIRSERVER_AUTH_ISSUER": ISSUER,
                             "FHIRSERVER_AUTH_HS256_SECRET": SECRET, "FHIRSERVER_REORDER_RULE": "off",
                             "FHIRSERVER_BASE_URL": f"http://127.0.0.1:{handle.port}/fhir",
                             "FHIRSERVER_HOOK_RETRY": "0.2", "FHIRSERVER_HOOK_ATTEMPTS": "3"})
    handle.start()
    yield handle
    handle.stop()


def dev_token(server: ServerProcess, organization: str | None, scope: str = "user/*.cruds") -> str:
    """An HS256 token for the server: a user of the organization, or (scope system/...) a platform backend."""
    import jwt

    now = int(time.time())
    claims = {"iss": ISSUER, "aud": server.base, "sub": f"user-{uuid.uuid4().hex[:6]}", "iat": now, "exp": now + 900,
              "scope": scope, **({"organization": organization} if organization else {})}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def call_as(server: ServerProcess, method: str, path: str, bearer: str, body: object = None) -> requests.Response:
    headers = {"Accept": FHIR_JSON, "Authorization": f"Bearer {bearer}"}
    if body is not None:
        headers["Content-Type"] = FHIR_JSON
    return requests.request(method, f"{server.base}{path}", headers=headers, timeout=30,
                            data=None if body is None else json.dumps(body, ensure_ascii=False).encode())


def wait_for(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("what the test waits for did not come in time")
