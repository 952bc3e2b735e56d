"""Federated `$duplicate-check` against local-only on the same data (`make bench-federation`).

Two real nodes on 127.0.0.1: Chongqing holds the region's results; Sichuan holds only its requesting hospital,
the same patients (same national IDs) and an Endpoint for Chongqing. The same checks run on Chongqing
(local-only: the results are local, no peers) and on Sichuan (federated: every result comes from the peer).
Prints a markdown table and writes bench/federation.json.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from conftest import new_server  # noqa: E402

from bench import workload  # noqa: E402
from bench.run import arguments, session_call, thread_sessions, timed  # noqa: E402

FHIR_JSON = "application/fhir+json"


def load(base: str, resources: list[dict[str, object]]) -> None:
    for i in range(0, len(resources), 200):
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources[i:i + 200]]}
        response = requests.post(base, data=json.dumps(bundle, ensure_ascii=False).encode(), timeout=600,
                                 headers={"Content-Type": FHIR_JSON, "Prefer": "return=minimal"})
        response.raise_for_status()


def main() -> None:
    args = arguments(200, "federation.json")
    n_hosp, n_pat, n_res = workload.SCALES[args.scale]
    rng = random.Random(2026)
    hospitals, patients = workload.hospitals(rng, n_hosp), workload.patients(rng, n_pat)
    results = workload.results(rng, n_res, n_pat, n_hosp)
    session = thread_sessions()

    with tempfile.TemporaryDirectory() as tmp:
        cq = new_server(Path(tmp) / "cq", FHIRSERVER_NODE_ID="chongqing", FHIRSERVER_REGION="500000",
                        FHIRSERVER_RATE_LIMIT="0").start()
        sc = new_server(Path(tmp) / "sc", FHIRSERVER_NODE_ID="sichuan", FHIRSERVER_REGION="510000",
                        FHIRSERVER_RATE_LIMIT="0").start()
        try:
            load(cq.base, hospitals + patients + results)
            load(sc.base, [hospitals[0], *patients, {
                "resourceType": "Endpoint", "id": "peer-cq", "status": "active", "name": "chongqing",
                "address": cq.base, "payloadType": [{"text": "FHIR R4"}],
                "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                                   "code": "hl7-fhir-rest"}}])
            picks = [f"Patient/bench-p{rng.randrange(n_pat)}" for _ in range(args.requests)]
            bodies = [json.dumps({"resourceType": "Parameters", "parameter": [{"name": "request", "resource": {
                "resourceType": "ServiceRequest", "status": "draft", "intent": "order", "subject": {"reference": p},
                "code": {"coding": [{"system": workload.ITEM, "code": "DX-CHEST"}]},
                "requester": {"reference": "Organization/bench-h0"}}}]}).encode() for p in picks]
            rows = []
            for name, node in (("local-only (results on this node)", cq), ("federated (results on the peer)", sc)):
                calls = [session_call(session, "POST", f"{node.base}/ServiceRequest/$duplicate-check", data=b,
                                      headers={"Content-Type": FHIR_JSON}) for b in bodies]
                timed(calls[:10], args.clients)  # warm-up: connections, caches
                rows.append((name, timed(calls, args.clients)))
        finally:
            sc.stop()
            cq.stop()
    print(f"\n## federated $duplicate-check, scale {args.scale}: {len(results)} results on the peer, "
          f"{args.clients} concurrent clients, {os.cpu_count()} cores\n")
    print("| $duplicate-check | per second | median ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for name, m in rows:
        print(f"| {name} | {m['per_s']:.0f} | {m['median_ms']:.1f} | {m['p95_ms']:.1f} | {m['p99_ms']:.1f} |")
    ratio = rows[1][1]["median_ms"] / rows[0][1]["median_ms"]
    print(f"\nfederated / local-only median latency: {ratio:.1f}x")
    Path(args.out).write_text(json.dumps({"scale": args.scale, "clients": args.clients,
                                          "rows": [{"workload": n, "measured": m} for n, m in rows]}, indent=1))


if __name__ == "__main__":
    main()
