"""`make bench` keeps working: a tiny run of both runners prints the table and writes every row, with its floor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_runs_at_tiny_scale(tmp_path: Path) -> None:
    out = tmp_path / "tiny.json"
    run = subprocess.run([sys.executable, "-m", "bench.run", "--scale", "tiny", "--requests", "20", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "| workload | per second | median ms |" in run.stdout
    result = json.loads(out.read_text(encoding="utf-8"))
    rows = {row["workload"]: row for row in result["rows"]}
    assert result["resources"] == 355 and len(rows) == 6
    for name in ("read by id", "search patient + code", "ingest (transaction Bundles of 100, resources/s)"):
        assert rows[name]["floor"]["per_s"] > 0, name  # measured against the floor in the same run
    assert all(row["measured"]["n"] > 0 and row["measured"]["per_s"] > 0 for row in rows.values())


def test_federation_bench_runs_at_tiny_scale(tmp_path: Path) -> None:
    out = tmp_path / "federation.json"
    run = subprocess.run([sys.executable, "-m", "bench.federation", "--scale", "tiny", "--requests", "10",
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    rows = json.loads(out.read_text(encoding="utf-8"))["rows"]
    assert len(rows) == 2 and all(row["measured"]["n"] == 10 for row in rows)
