"""Crashes under load, as an outside tester would cause them (`make chaos`; `python -m bench.chaos --rounds 3`).

One server with the embedded engine; client threads keep writing single Observations and transaction Bundles of
20 while, in turn and `--rounds` times each: every worker is killed (SIGKILL), the engine is killed (SIGKILL),
and the whole process group is killed (SIGKILL) and the server started again. Afterwards it prints a table:
acknowledged writes lost, transactions stored partly (or acknowledged and missing), `audit verify`'s exit code,
and the slowest start-up after a whole-group kill.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pymongo
import requests

ROOT = Path(__file__).resolve().parents[1]
FHIR_JSON = "application/fhir+json"
TAG = "urn:chaos:bundle"
BUNDLE_SIZE = 20


class Server:
    """`fhirserver serve` in a session of its own, so the whole group can be killed without killing us."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.process: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}/fhir"

    def start(self) -> float:
        started = time.monotonic()
        env = {**os.environ, "FHIRSERVER_AUTH": "off", "FHIRSERVER_RATE_LIMIT": "0", "FHIRSERVER_MONGODB_DB": "chaos"}
        log = (self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "fhirserver", "serve", "--port", str(self.port),
                                         "--data-dir", str(self.data_dir), "--workers", "2"], env=env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        self.wait_ready(120)
        return time.monotonic() - started

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not become ready")

    def children(self) -> list[tuple[int, str]]:
        assert self.process is not None
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if int(stat[1]) == self.process.pid:
                out.append((int(entry.name), cmd))
        return out

    def kill_workers(self) -> None:
        for pid, cmd in self.children():
            if "secantus" not in cmd:
                os.kill(pid, signal.SIGKILL)

    def kill_engine(self) -> None:
        os.kill(int(json.loads((self.data_dir / "embedded-mongo.json").read_text())["pid"]), signal.SIGKILL)

    def kill_group(self) -> None:
        assert self.process is not None
        pids = [pid for pid, _ in self.children()]
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        for pid in pids:  # the engine too, before a new server opens its data
            _wait_gone(pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(60)


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


class Load:
    """Client threads writing until stopped; they remember what the server acknowledged."""

    def __init__(self, server: Server, threads: int) -> None:
        self.server, self.stopped = server, threading.Event()
        self.acknowledged: list[str] = []          # Observation ids answered 201
        self.bundles: dict[str, bool] = {}         # bundle tag -> acknowledged (200)
        self.errors: dict[int, int] = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def _run(self, n: int) -> None:
        session = requests.Session()
        while not self.stopped.is_set():
            try:
                if n % 2:
                    answer = session.post(f"{self.server.base}/Observation", timeout=30, headers={
                        "Content-Type": FHIR_JSON}, json={"resourceType": "Observation", "status": "final",
                                                         "code": {"text": "chaos"}})
                    if answer.status_code == 201:
                        with self.lock:
                            self.acknowledged.append(answer.json()["id"])
                else:
                    tag = uuid.uuid4().hex
                    with self.lock:
                        self.bundles[tag] = False
                    entry = {"resourceType": "Observation", "status": "final", "code": {"text": "chaos"},
                             "identifier": [{"system": TAG, "value": tag}]}
                    answer = session.post(self.server.base, timeout=60, headers={"Content-Type": FHIR_JSON}, json={
                        "resourceType": "Bundle", "type": "transaction", "entry": [
                            {"resource": entry, "request": {"method": "POST", "url": "Observation"}}
                            for _ in range(BUNDLE_SIZE)]})
                    if answer.status_code == 200:
                        with self.lock:
                            self.bundles[tag] = True
                status = answer.status_code
            except requests.RequestException:
                status = 0
            if status not in (200, 201):
                with self.lock:
                    self.errors[status] = self.errors.get(status, 0) + 1
                time.sleep(0.1)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--pause", type=float, default=3.0, help="seconds of load between faults")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import free_port

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), free_port())
        starts = [server.start()]
        with Load(server, args.threads) as load:
            time.sleep(args.pause)
            for _ in range(args.rounds):
                for fault in ("workers", "engine", "group"):
                    if fault == "workers":
                        server.kill_workers()
                    elif fault == "engine":
                        server.kill_engine()
                    else:
                        server.kill_group()
                        starts.append(server.start())
                    server.wait_ready(120)
                    time.sleep(args.pause)
        server.wait_ready(120)
        lost = [i for i in load.acknowledged
                if requests.get(f"{server.base}/Observation/{i}", timeout=30).status_code != 200]
        uri = json.loads((Path(tmp) / "embedded-mongo.json").read_text())["uri"]
        with pymongo.MongoClient(uri) as client:
            stored: dict[str, int] = {}
            for doc in client["chaos"]["Observation"].find({"sp.identifier": {"$exists": True}},
                                                           {"sp.identifier": 1}):
                for token in doc.get("sp", {}).get("identifier", []):
                    if isinstance(token, str) and token.startswith(TAG + "|"):
                        tag = token.split("|", 1)[1]
                        stored[tag] = stored.get(tag, 0) + 1
        partial = [t for t, n in stored.items() if n != BUNDLE_SIZE]
        missing = [t for t, acked in load.bundles.items() if acked and stored.get(t, 0) != BUNDLE_SIZE]
        requests.get(f"{server.base}/Observation?_count=1", timeout=30)  # its event is chained after the others
        time.sleep(2)
        verify = subprocess.run([sys.executable, "-m", "fhirserver", "audit", "verify", "--data-dir", tmp],
                                env={**os.environ, "FHIRSERVER_AUTH": "off", "FHIRSERVER_MONGODB_DB": "chaos"},
                                capture_output=True, text=True, timeout=300, cwd=ROOT)
        server.stop()
    print(f"\n## chaos: {args.rounds} rounds of (kill -9 workers, kill -9 engine, kill -9 group), "
          f"{args.threads} client threads\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| acknowledged single writes | {len(load.acknowledged)} |")
    print(f"| acknowledged writes lost | {len(lost)} |")
    print(f"| transaction Bundles acknowledged / stored whole | {sum(load.bundles.values())} / "
          f"{sum(1 for n in stored.values() if n == BUNDLE_SIZE)} |")
    print(f"| transactions stored partly | {len(partial)} |")
    print(f"| acknowledged transactions missing | {len(missing)} |")
    print(f"| failed requests by status (0 = connection) | {dict(sorted(load.errors.items()))} |")
    said = (verify.stdout.strip() or verify.stderr.strip() or "-").splitlines()
    print(f"| audit verify exit code | {verify.returncode} ({said[-1][:100]}) |")
    print(f"| start-up after a group kill, slowest | {max(starts[1:] or [0]):.1f} s |")
    if lost or partial or missing or verify.returncode != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
