"""`fhirserver load FILES...`: put Bundle, resource and NDJSON files into a running server over HTTP.

Going through the API (not the database) means loaded data is validated and indexed exactly like a
vendor's. transaction/batch Bundles are posted as they are; collection Bundles, single resources and
NDJSON lines are grouped into transactions of --batch-size entries (PUT when the resource has an id,
so loading twice does not duplicate, POST otherwise).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import requests

from .security.principal import bearer_header

FHIR_JSON = "application/fhir+json"


class LoadError(Exception):
    """A file could not be read or the server refused part of it; the message says which and why."""


@dataclass
class Progress:
    total: int = 0
    loaded: int = 0
    started: float = 0.0
    out: TextIO = sys.stderr

    def advance(self, count: int) -> None:
        self.loaded += count
        elapsed = max(time.monotonic() - self.started, 1e-6)
        width = 30
        done = int(width * self.loaded / self.total) if self.total else width
        self.out.write(f"\r[{'#' * done}{'.' * (width - done)}] {self.loaded}/{self.total} resources "
                       f"({self.loaded / elapsed:.0f}/s)")
        self.out.flush()

    def finish(self) -> None:
        self.out.write("\n")


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    rtype, rid = resource.get("resourceType"), resource.get("id")
    request = {"method": "PUT", "url": f"{rtype}/{rid}"} if rid else {"method": "POST", "url": str(rtype)}
    return {"resource": resource, "request": request}


def _units(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(description, Bundle to post) for each piece of a file; collections become transactions."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: cannot read the file ({exc.__class__.__name__})") from None
    if path.suffix in (".ndjson", ".jsonl"):
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield f"{path}:{number}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise LoadError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    yield str(path), data


def _bundles(units: Iterator[tuple[str, dict[str, Any]]], batch_size: int) -> Iterator[tuple[str, dict[str, Any]]]:
    pending: list[dict[str, Any]] = []
    first = ""
    for where, data in units:
        if data.get("resourceType") == "Bundle" and data.get("type") in ("transaction", "batch"):
            yield where, data
            continue
        resources = [e["resource"] for e in data.get("entry", []) if "resource" in e] \
            if data.get("resourceType") == "Bundle" else [data]
        for resource in resources:
            first = first or where
            pending.append(_entry(resource))
            if len(pending) >= batch_size:
                yield first, {"resourceType": "Bundle", "type": "transaction", "entry": pending}
                pending, first = [], ""
    if pending:
        yield first, {"resourceType": "Bundle", "type": "transaction", "entry": pending}


def load(url: str, files: list[Path], batch_size: int = 500, out: TextIO = sys.stderr) -> int:
    """Load every file; returns the number of resources written. Stops at the first refused Bundle."""
    base = url.rstrip("/")
    bundles = [b for path in files for b in _bundles(_units(path), batch_size)]
    progress = Progress(total=sum(len(b.get("entry", [])) for _, b in bundles), started=time.monotonic(), out=out)
    with requests.Session() as session:
        session.headers.update(bearer_header())
        for where, bundle in bundles:
            try:
                response = session.post(base, data=json.dumps(bundle, ensure_ascii=False).encode("utf-8"),
                                        headers={"Content-Type": FHIR_JSON, "Prefer": "return=minimal"}, timeout=600)
            except requests.RequestException as exc:
                raise LoadError(f"cannot reach the server at {base} ({exc.__class__.__name__}); "
                                "is it running?") from None
            if response.status_code != 200:
                raise LoadError(f"{where}: the server refused the Bundle (HTTP {response.status_code}): "
                                f"{_diagnostics(response)}")
            failed = [e["response"] for e in response.json().get("entry", [])
                      if not str(e.get("response", {}).get("status", "")).startswith(("200", "201", "204"))]
            if failed:
                raise LoadError(f"{where}: {len(failed)} batch entries failed, first: {failed[0]}")
            progress.advance(len(bundle.get("entry", [])))
    progress.finish()
    return progress.loaded


def _diagnostics(response: requests.Response) -> str:
    try:
        return "; ".join(i.get("diagnostics", "") for i in response.json().get("issue", []))[:500]
    except ValueError:
        return response.text[:200]
