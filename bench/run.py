"""`make bench`: measure the server over HTTP against the floor measured in the same run.

Starts a real `fhirserver serve` (embedded engine) and a bare Flask app under the same gunicorn settings,
loads a synthetic region through transaction Bundles, then runs each lookup with concurrent clients and
prints one markdown table (throughput, median, p95, p99, ratio to the floor) and writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pymongo
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from conftest import free_port, new_server  # noqa: E402

from bench import workload  # noqa: E402

# The raw patient + code query scans on the embedded engine (seconds each at 100k): a few samples give its rate.
SLOW_FLOOR_SAMPLES = 40


def timed(calls: list[Callable[[], object]], clients: int) -> dict[str, float]:
    """Run the calls on `clients` threads; latency of each and overall throughput."""
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(calls)

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                call = queue.pop()
            start = time.perf_counter()
            call()
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {"n": len(latencies), "per_s": len(latencies) / wall, "median_ms": statistics.median(latencies) * 1000,
            "p95_ms": pct(0.95), "p99_ms": pct(0.99)}


def session_call(session_for: Callable[[], requests.Session], method: str, url: str, **kw: object) -> Callable[[], object]:
    def call() -> object:
        response = session_for().request(method, url, timeout=120, **kw)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {url}: HTTP {response.status_code} {response.text[:200]}")
        return response
    return call


def arguments(requests_default: int, out_name: str) -> argparse.Namespace:
    """The options every runner of bench/ takes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", choices=sorted(workload.SCALES), default="small")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=requests_default)
    parser.add_argument("--out", default=None, help=f"default bench/{out_name} at small scale (the published "
                                                    f"figures), bench/<name>-<scale>.json at any other")
    args = parser.parse_args()
    if args.out is None:
        stem, suffix = out_name.rsplit(".", 1)
        args.out = str(ROOT / "bench" / (out_name if args.scale == "small" else f"{stem}-{args.scale}.{suffix}"))
    return args


def thread_sessions() -> Callable[[], requests.Session]:
    """One keep-alive session per client thread."""
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s
    return session


def stored_documents(db: pymongo.database.Database, batch: list[dict[str, object]]) -> dict[str, list[dict[str, object]]]:
    """The history and current documents the server stored for a batch of resources, by collection (new _ids)."""
    by_type: dict[str, list[str]] = {}
    for resource in batch:
        by_type.setdefault(str(resource["resourceType"]), []).append(str(resource["id"]))
    out: dict[str, list[dict[str, object]]] = {}
    for rtype, ids in by_type.items():
        for name, keys in ((f"{rtype}_history", [f"{i}/1" for i in ids]), (rtype, ids)):
            out[name] = [{k: v for k, v in doc.items() if k != "_id"} for doc in db[name].find({"_id": {"$in": keys}})]
    return out


def main() -> None:
    args = arguments(400, "results.json")
    n_hosp, n_pat, n_res = workload.SCALES[args.scale]
    rng = random.Random(2026)
    data = (workload.hospitals(rng, n_hosp) + workload.patients(rng, n_pat)
            + workload.results(rng, n_res, n_pat, n_hosp))
    session = thread_sessions()

    with tempfile.TemporaryDirectory() as tmp:
        server = new_server(Path(tmp) / "node", FHIRSERVER_RATE_LIMIT="0").start()  # measure speed, not throttling
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "8",
                                 "-b", f"127.0.0.1:{bare_port}", "bench.bare_app:app"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows: list[tuple[str, dict[str, float], dict[str, float] | None]] = []
        try:
            base = server.base
            client = pymongo.MongoClient(server.mongo_uri())
            db = client[server.db_name]
            # ingest: transaction Bundles of 100 vs raw insert_many of 100
            batches = [data[i:i + 100] for i in range(0, len(data), 100)]
            bundles = [json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in b]},
                ensure_ascii=False).encode() for b in batches]
            started = time.perf_counter()
            ingest = timed([session_call(session, "POST", base, data=body, headers={
                "Content-Type": "application/fhir+json", "Prefer": "return=minimal"}) for body in bundles], args.clients)
            ingest["per_s"] = len(data) / (time.perf_counter() - started)
            # The floor: raw insert_many of exactly the documents the store wrote per resource (history and current
            # version, as stored, search fields included), in the same batches of 100.
            raw_docs = [stored_documents(db, b) for b in batches]
            started = time.perf_counter()
            floor_ingest = timed([lambda docs=docs: [db[f"floor_{name}"].insert_many(group)
                                                     for name, group in docs.items()] for docs in raw_docs], args.clients)
            floor_ingest["per_s"] = len(data) / (time.perf_counter() - started)
            rows.append(("ingest (transaction Bundles of 100, resources/s)", ingest, floor_ingest))
            ids = [r["id"] for r in data if r["resourceType"] == "Observation"]
            picks = [rng.choice(ids) for _ in range(args.requests)]
            # The floor of an audited read: one find_one plus one audit spool insert of an event's size, timed together.
            event = db["AuditEvent"].find_one({}, {"text": 1}) or {"text": "x" * 1500}
            rows.append(("read by id", timed([session_call(session, "GET", f"{base}/Observation/{i}") for i in picks],
                                             args.clients),
                         timed([lambda i=i: (db["Observation"].find_one({"_id": i}), db["floor_spool"].insert_one(
                             {"at": time.time(), "text": event["text"]})) for i in picks], args.clients)))
            patients_ = [f"Patient/bench-p{rng.randrange(n_pat)}" for _ in range(args.requests)]
            rows.append(("search patient + code", timed([session_call(
                session, "GET", f"{base}/Observation", params={"subject": p, "code": "http://loinc.org|718-7"})
                for p in patients_], args.clients), timed([lambda p=p: list(db["Observation"].find(
                    {"deleted": False, "sp.subject": {"$in": [p]}, "sp.code": {"$in": ["http://loinc.org|718-7"]}}).limit(51))
                    for p in patients_[:SLOW_FLOOR_SAMPLES]], args.clients)))
            rows.append(("search date range (one month, _count=50)", timed([session_call(
                session, "GET", f"{base}/DiagnosticReport", params={"date": [f"ge2025-{m:02d}-01", f"lt2025-{m % 12 + 1:02d}-01"],
                                                                    "_count": "50"})
                for m in [rng.randint(1, 11) for _ in range(args.requests // 4)]], args.clients), None))
            order = {"resourceType": "ServiceRequest", "status": "draft", "intent": "order",
                     "code": {"coding": [{"system": workload.ITEM, "code": "DX-CHEST"}]},
                     "requester": {"reference": "Organization/bench-h0"}}
            checks = [json.dumps({"resourceType": "Parameters", "parameter": [{"name": "request", "resource": {
                **order, "subject": {"reference": p}}}]}).encode() for p in patients_[: args.requests // 2]]
            rows.append(("$duplicate-check", timed([session_call(
                session, "POST", f"{base}/ServiceRequest/$duplicate-check", data=body,
                headers={"Content-Type": "application/fhir+json"}) for body in checks], args.clients), None))
            rows.append(("bare Flask endpoint (the HTTP floor)", timed([session_call(
                session, "GET", f"http://127.0.0.1:{bare_port}/ping") for _ in range(args.requests)], args.clients), None))
        finally:
            bare.terminate()
            server.stop()
    print(f"\n## fhirserver bench, scale {args.scale}: {len(data)} resources, {args.clients} concurrent clients, "
          f"{os.cpu_count()} cores\n")
    print("| workload | per second | median ms | p95 ms | p99 ms | floor per second | ratio to floor |")
    print("|---|---|---|---|---|---|---|")
    results = []
    for name, measured, floor in rows:
        ratio = f"{measured['per_s'] / floor['per_s']:.0%}" if floor else "-"
        floor_text = f"{floor['per_s']:.0f}" if floor else "-"
        print(f"| {name} | {measured['per_s']:.0f} | {measured['median_ms']:.1f} | {measured['p95_ms']:.1f} | "
              f"{measured['p99_ms']:.1f} | {floor_text} | {ratio} |")
        results.append({"workload": name, "measured": measured, "floor": floor})
    Path(args.out).write_text(json.dumps({"scale": args.scale, "resources": len(data), "clients": args.clients,
                                          "rows": results}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
