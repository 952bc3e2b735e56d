"""`fhirserver ingest-dicom PATH...`: files and folders (recursive) sent to a running server's STOW-RS.

Files without the DICOM 'DICM' preamble are skipped here; the server rejects, with a reason, anything
it cannot store. The summary counts studies, series and instances stored, skipped and rejected.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import requests

from ..security.principal import bearer_header

BATCH_BYTES = 8 * 1024 * 1024
DICOMDIR_CLASS = b"1.2.840.10008.1.3.10"  # Media Storage Directory Storage, in the file meta header


@dataclass
class Summary:
    stored: int = 0
    skipped: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    studies: set[str] = field(default_factory=set)
    series: set[str] = field(default_factory=set)
    interrupted: bool = False  # Ctrl-C: what is counted is stored; the batch in flight may or may not be


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            yield path


def _batches(files: list[Path], summary: Summary) -> Iterator[list[tuple[Path, bytes]]]:
    batch: list[tuple[Path, bytes]] = []
    size = 0
    for path in files:
        data = path.read_bytes()
        if len(data) < 132 or data[128:132] != b"DICM" or DICOMDIR_CLASS in data[132:600]:
            summary.skipped.append(str(path))  # not DICOM, or a DICOMDIR (an index of a media set, not an image)
            continue
        if batch and size + len(data) > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append((path, data))
        size += len(data)
    if batch:
        yield batch


def ingest(url: str, paths: list[Path], out: TextIO = sys.stderr) -> Summary:
    """Send every DICOM file under `paths` to {url}/studies (url: the server's DICOMweb base)."""
    summary = Summary()
    files = list(_files(paths))
    started = time.monotonic()
    try:
        _send(url, files, summary, out, started)
    except KeyboardInterrupt:
        summary.interrupted = True
    out.write("\n")
    return summary


def _send(url: str, files: list[Path], summary: Summary, out: TextIO, started: float) -> None:
    import pydicom

    done = 0
    with requests.Session() as session:
        session.headers.update(bearer_header())
        for batch in _batches(files, summary):
            boundary = uuid.uuid4().hex
            body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n"
                            for _, data in batch) + b"--" + boundary.encode() + b"--\r\n"
            try:
                response = session.post(f"{url.rstrip('/')}/studies", data=body, timeout=600, headers={
                    "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                    "Accept": "application/dicom+json"})
            except requests.RequestException as exc:
                raise OSError(f"cannot reach {url} ({exc.__class__.__name__}); is the server running?") from None
            if response.status_code not in (200, 202, 409):
                raise OSError(f"the server refused the upload (HTTP {response.status_code}): {response.text[:300]}")
            answer = response.json()
            # Count from the per-instance answers: each ReferencedSOPSequence item is one stored file, each
            # FailedSOPSequence item one refused file (a file reusing a stored UID is refused, not counted stored)
            stored: dict[str, int] = {}
            for item in answer.get("00081199", {}).get("Value", []):
                sop = item["00081155"]["Value"][0]
                stored[sop] = stored.get(sop, 0) + 1
            failed: dict[str | None, list[str]] = {}
            for item in answer.get("00081198", {}).get("Value", []):
                failed.setdefault(item.get("00081155", {}).get("Value", [None])[0], []).append(
                    item.get("00000902", {}).get("Value", ["rejected"])[0])
            for path, _data in batch:
                header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
                sop = str(header.get("SOPInstanceUID", ""))
                if stored.get(sop):
                    stored[sop] -= 1
                    summary.stored += 1
                    summary.studies.add(str(header.get("StudyInstanceUID", "")))
                    summary.series.add(str(header.get("SeriesInstanceUID", "")))
                else:
                    reasons = failed.get(sop) or failed.get(None) or ["rejected"]
                    summary.rejected.append((str(path), reasons.pop(0) if len(reasons) > 1 else reasons[0]))
            done += len(batch)
            out.write(f"\r{done}/{len(files)} files ({done / max(time.monotonic() - started, 1e-6):.0f}/s)")
            out.flush()


def report(summary: Summary) -> str:
    lines = [f"stored {summary.stored} instances in {len(summary.series)} series of {len(summary.studies)} studies; "
             f"skipped {len(summary.skipped)} files (not DICOM, or DICOMDIR); rejected {len(summary.rejected)}"]
    lines += [f"  rejected {path}: {reason}" for path, reason in summary.rejected[:50]]
    if summary.interrupted:
        lines.append("interrupted (Ctrl-C): the instances counted above are stored; the batch in flight may or may "
                     "not be. Running the same ingest again is safe: an instance already stored byte for byte is "
                     "accepted again without a copy")
    return "\n".join(lines) + ("\n" + json.dumps({"skipped": summary.skipped[:20]}) if summary.skipped else "")
