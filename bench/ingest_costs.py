"""Where the worker's time per ingested resource goes, in-process (no server, no store): the JSON schema pass,
the R4B model pass, the search index and the JSON text, over the benchmark's own synthetic resources.

    .venv/bin/python -m bench.ingest_costs [--scale small]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import workload  # noqa: E402
from fhirserver.fhir.json_format import dumps  # noqa: E402
from fhirserver.fhir.search.indexer import INDEXABLE_TYPES, ResourceIndexer  # noqa: E402
from fhirserver.fhir.search.parameters import SearchParameterRegistry  # noqa: E402
from fhirserver.fhir.search.values import parse_zone  # noqa: E402
from fhirserver.fhir.validation import ResourceValidator, json_rule_issues  # noqa: E402


def per_resource_ms(step: Callable[[dict[str, Any]], object], data: list[dict[str, Any]], rounds: int = 5) -> float:
    """Median over rounds of the mean time per resource."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for resource in data:
            step(resource)
        samples.append((time.perf_counter() - started) / len(data) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", choices=sorted(workload.SCALES), default="tiny")
    args = parser.parse_args()
    n_hosp, n_pat, n_res = workload.SCALES[args.scale]
    rng = random.Random(2026)
    data = workload.hospitals(rng, n_hosp) + workload.patients(rng, n_pat) + workload.results(rng, n_res, n_pat, n_hosp)
    validator = ResourceValidator(ROOT / "profiles" / "fhir.schema.v4.json")
    indexer = ResourceIndexer(SearchParameterRegistry(ROOT / "profiles", INDEXABLE_TYPES), parse_zone("+08:00"))
    for resource in data:  # compile validators, warm caches
        validator.validate(resource)
    steps = {
        "JSON rules + JSON schema (validation)": lambda r: json_rule_issues(r["resourceType"], r)
        or validator._schema_issues(r["resourceType"], r),
        "R4B model pass (validation)": lambda r: validator._model_issues(r["resourceType"], r),
        "search index (sp, so)": indexer.index,
        "JSON text": dumps,
    }
    print(f"\n## ingest costs per resource, in-process, {len(data)} resources ({args.scale})\n")
    print("| step | ms per resource |")
    print("|---|---|")
    for name, step in steps.items():
        print(f"| {name} | {per_resource_ms(step, data):.3f} |")


if __name__ == "__main__":
    main()
