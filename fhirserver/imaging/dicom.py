"""Reading one DICOM object safely with pydicom, and the facts the server keeps about it.

Hostile input must not crash or exhaust the server: the size is capped before parsing, and so is what a
deflated object inflates to (measured by streaming inflation in constant memory, before pydicom inflates it);
the DICM preamble is required, pydicom runs with a bounded recursion depth, every failure becomes a rejection
reason, uncompressed pixel data must be as long as the header says (a truncated file is refused), and the image
the header describes (Rows x Columns x samples x bits x frames) must fit the same budget.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

MAX_NESTING = 200
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class DicomRejected(Exception):
    """The object cannot be stored; `reason` says why in a sentence (and `code` as a DICOM failure reason)."""

    def __init__(self, reason: str, code: int = 0xC000) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class Instance:
    sop_uid: str
    sop_class: str
    study_uid: str
    series_uid: str
    transfer_syntax: str
    sha256: str
    size: int
    metadata: dict[str, Any]  # DICOM JSON (PS3.18 F.2) of the header, bulk data left out

    def value(self, keyword: str) -> Any:
        tag = f"{pydicom.datadict.tag_for_keyword(keyword):08X}"
        element = self.metadata.get(tag, {})
        values = element.get("Value")
        return values[0] if values else None


def _depth(dataset: pydicom.Dataset, level: int = 0) -> int:
    deepest = level
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                deepest = max(deepest, _depth(item, level + 1))
                if deepest > MAX_NESTING:
                    return deepest
    return deepest


def read_instance(data: bytes, max_bytes: int) -> Instance:
    if len(data) == 0:
        raise DicomRejected("The object is empty.")
    if len(data) > max_bytes:
        raise DicomRejected(f"The object is larger than the server accepts ({max_bytes} bytes).", 0xA700)
    if len(data) < 132 or data[128:132] != b"DICM":
        raise DicomRejected("Not a DICOM Part 10 file: the 'DICM' preamble is missing.", 0xC000)
    check_inflated_size(data, max_bytes)
    try:
        # Python's default recursion limit stays: a hostile nesting ends in RecursionError (rejected), never
        # in a C stack overflow, which a raised limit could cause in a worker thread.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns on odd-but-readable values; the checks below decide
            dataset = pydicom.dcmread(io.BytesIO(data), force=False)
            if _depth(dataset) > MAX_NESTING:
                raise DicomRejected(f"Sequences are nested deeper than {MAX_NESTING} levels.")
            metadata = dataset.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=lambda _e: "")
    except DicomRejected:
        raise
    except (InvalidDicomError, EOFError) as exc:
        raise DicomRejected(f"The DICOM file could not be read ({type(exc).__name__}); it may be truncated.") from None
    except RecursionError:
        raise DicomRejected("Sequences are nested too deeply to read.") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure on hostile input is a rejection, not a crash
        raise DicomRejected(f"The DICOM file could not be parsed ({type(exc).__name__}).") from None
    meta = dataset.file_meta
    syntax = str(meta.get("TransferSyntaxUID", ""))
    if not syntax or not UID(syntax).is_transfer_syntax:
        raise DicomRejected(f"The declared transfer syntax {syntax[:64] or '(none)'} is not a DICOM transfer syntax.",
                            0xA900)
    uids = {k: str(dataset.get(k, "")) for k in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID",
                                                 "SeriesInstanceUID")}
    missing = [k for k, v in uids.items() if not v or not _UID.match(v) or len(v) > 64]
    if missing:
        raise DicomRejected(f"Missing or malformed {', '.join(missing)}.", 0xA900)
    _check_pixel_length(dataset, syntax)
    check_image_size(dataset, max_bytes)
    _check_complete(data, syntax)
    return Instance(sop_uid=uids["SOPInstanceUID"], sop_class=uids["SOPClassUID"], study_uid=uids["StudyInstanceUID"],
                    series_uid=uids["SeriesInstanceUID"], transfer_syntax=syntax,
                    sha256=hashlib.sha256(data).hexdigest(), size=len(data), metadata=metadata)


def _check_complete(data: bytes, syntax: str) -> None:
    """Every top-level element's declared length must be present: a file cut short is corrupt, even when
    pydicom reads the shortened last value without complaint."""
    uid = UID(syntax)
    if uid.is_deflated:
        return
    fp = io.BytesIO(data)
    fp.seek(132)
    header = fp.read(12)
    if len(header) < 12 or header[:4] != b"\x02\x00\x00\x00":
        return  # no group length element: nothing reliable to walk from
    meta_length = int.from_bytes(header[8:12], "little")
    fp.seek(132 + 12 + meta_length)
    generator = pydicom.filereader.data_element_generator(fp, uid.is_implicit_VR, uid.is_little_endian,
                                                          defer_size=None)
    for raw in generator:
        length = getattr(raw, "length", None)  # parsed (undefined-length) sequences carry no raw length
        if length is not None and length != 0xFFFFFFFF and raw.value is not None and len(raw.value) < length:
            raise DicomRejected(f"The file is truncated: element ({raw.tag.group:04X},{raw.tag.element:04X}) "
                                f"declares {raw.length} bytes, {len(raw.value)} are present.")


def _check_pixel_length(dataset: pydicom.Dataset, syntax: str) -> None:
    if "PixelData" not in dataset or UID(syntax).is_compressed:
        return
    try:
        expected = (int(dataset.Rows) * int(dataset.Columns) * int(dataset.get("SamplesPerPixel", 1))
                    * int(dataset.BitsAllocated) // 8 * int(dataset.get("NumberOfFrames", 1) or 1))
    except (AttributeError, TypeError, ValueError):
        raise DicomRejected("Pixel data without a usable image description (Rows, Columns, BitsAllocated).") from None
    if len(dataset.PixelData) < expected:
        raise DicomRejected(f"The pixel data is truncated ({len(dataset.PixelData)} of {expected} bytes).")


def check_inflated_size(data: bytes, max_bytes: int) -> None:
    """A deflated object (Deflated Explicit VR Little Endian) may inflate to at most `max_bytes`: inflated here in
    1 MB steps and counted, never held, so a "deflate bomb" costs a bounded amount of memory and time."""
    fp = io.BytesIO(data)
    try:
        pydicom.filereader.read_preamble(fp, False)
        meta = pydicom.filereader._read_file_meta_info(fp)
    except Exception:  # noqa: BLE001 - an unreadable file meta is for the full parser to report
        return
    syntax = UID(str(meta.get("TransferSyntaxUID", "")))
    if not syntax.is_transfer_syntax or not syntax.is_deflated:
        return  # an unknown syntax is refused by the full parser, with its own reason
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pending, total = data[fp.tell():], 0
    try:
        while pending:
            total += len(inflater.decompress(pending, 1 << 20))
            if total > max_bytes:
                raise DicomRejected(f"The deflated object inflates to more than the server accepts ({max_bytes} "
                                    f"bytes).", 0xA700)
            pending = inflater.unconsumed_tail
    except zlib.error:
        raise DicomRejected("The deflated data set is not valid deflate data.") from None


def image_bytes(dataset: pydicom.Dataset) -> int:
    """What the header says the decoded image takes: Rows x Columns x samples x bytes per sample x frames."""
    try:
        return (int(dataset.Rows) * int(dataset.Columns) * int(dataset.get("SamplesPerPixel", 1) or 1)
                * max(int(dataset.BitsAllocated), 8) // 8 * int(dataset.get("NumberOfFrames", 1) or 1))
    except (AttributeError, TypeError, ValueError):
        return 0


def check_image_size(dataset: pydicom.Dataset, max_bytes: int) -> None:
    if "PixelData" in dataset and image_bytes(dataset) > max_bytes:
        raise DicomRejected(f"The image would decode to {image_bytes(dataset)} bytes, more than the server accepts "
                            f"({max_bytes} bytes).", 0xA700)
