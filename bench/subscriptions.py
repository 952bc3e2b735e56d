"""`python -m bench.subscriptions`: what active Subscriptions cost a write.

Every create or update runs each active Subscription's criteria (with `_id` of the written resource) before it
answers (subscriptions/service.py). This starts a real `fhirserver serve` (embedded engine, authentication off),
a subscriber endpoint on 127.0.0.1, and measures the latency of POST DiagnosticReport with 0, 10 and 50 active
Subscriptions of that type (half matching every report, half matching none), then prints one markdown table
(median, p95, writes per second, ratio to no Subscription) and how long a notification took to arrive.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import free_port, new_server  # noqa: E402

FHIR = "application/fhir+json"
ITEM = "http://hr.example.org/fhir/CodeSystem/hr-item"


class Endpoint:
    def __init__(self) -> None:
        self.arrivals: list[float] = []
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrivals.append(time.perf_counter())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


def report(n: int) -> dict[str, object]:
    return {"resourceType": "DiagnosticReport", "status": "final", "code": {"coding": [{"system": ITEM,
                                                                                       "code": "DX-CHEST"}]},
            "subject": {"reference": f"Patient/bench-{n % 50}"}, "issued": "2026-11-30T10:00:00+08:00"}


def subscribe(session: requests.Session, base: str, endpoint: str, matching: bool) -> str:
    criteria = "DiagnosticReport?code=" + (f"{ITEM}|DX-CHEST" if matching else f"{ITEM}|NO-SUCH-ITEM")
    body = {"resourceType": "Subscription", "status": "requested", "reason": "bench", "criteria": criteria,
            "channel": {"type": "rest-hook", "endpoint": endpoint}}
    answer = session.post(f"{base}/Subscription", data=json.dumps(body), headers={"Content-Type": FHIR})
    answer.raise_for_status()
    return str(answer.json()["id"])


def wait_active(session: requests.Session, base: str, ids: list[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(session.get(f"{base}/Subscription/{i}").json()["status"] == "active" for i in ids):
            return
        time.sleep(0.2)
    raise SystemExit("the Subscriptions did not become active")


def writes(session: requests.Session, base: str, count: int) -> list[float]:
    latencies = []
    for n in range(count):
        start = time.perf_counter()
        session.post(f"{base}/DiagnosticReport", data=json.dumps(report(n)), headers={"Content-Type": FHIR,
                                                                                     "Prefer": "return=minimal"})
        latencies.append(time.perf_counter() - start)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200, help="writes measured per row (default 200)")
    args = parser.parse_args()
    endpoint = Endpoint()
    server = new_server(Path(tempfile.mkdtemp(prefix="bench-subs-")), FHIRSERVER_REORDER_RULE="off")
    server.start()
    session = requests.Session()
    session.headers["Accept"] = FHIR
    rows, baseline, made = [], None, []
    try:
        writes(session, server.base, 20)  # warm up
        for total in (0, 10, 50):
            while len(made) < total:
                made.append(subscribe(session, server.base, endpoint.url, matching=len(made) % 2 == 0))
            wait_active(session, server.base, made)
            latencies = writes(session, server.base, args.writes)
            median = statistics.median(latencies)
            p95 = sorted(latencies)[int(0.95 * (len(latencies) - 1))]
            baseline = baseline or median
            rows.append((total, median, p95, 1 / median, median / baseline))
        before = len(endpoint.arrivals)
        sent = time.perf_counter()
        writes(session, server.base, 1)
        deadline = time.monotonic() + 30
        while len(endpoint.arrivals) < before + len(made) // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        arrived = max(endpoint.arrivals[before:], default=sent) - sent
    finally:
        server.stop()
        endpoint.http.shutdown()
    print("| active Subscriptions (half matching) | median write (ms) | p95 (ms) | writes/s (1 client) | ratio |")
    print("|---|---|---|---|---|")
    for total, median, p95, rate, ratio in rows:
        print(f"| {total} | {median * 1000:.1f} | {p95 * 1000:.1f} | {rate:.0f} | {ratio:.2f} |")
    print(f"\nOne write with {len(made) // 2} matching Subscriptions: the last notification arrived "
          f"{arrived * 1000:.0f} ms after the write was sent.")


if __name__ == "__main__":
    main()
