"""Storing DICOM objects and keeping their ImagingStudy current (STOW-RS and `fhirserver ingest-dicom`)."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import pixel_array

from ..fhir.interactions.context import FhirContext
from ..store.blobs import DicomStore
from .dicom import DicomRejected, Instance, check_inflated_size, read_instance
from .studies import StudyBuilder

RENDER_MAX_PIXELS = 64 * 1024 * 1024  # one frame; larger ones are retrieved, not rendered
RENDER_CACHE_BYTES = 64 * 1024 * 1024  # rendered PNGs kept per process


@dataclass(frozen=True)
class Outcome:
    sop_uid: str | None
    sop_class: str | None
    study_uid: str | None
    stored: bool
    reason: str = ""
    code: int = 0
    new: bool = False  # stored by this upload (not the same bytes stored before)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class ByteBoundedCache:
    """Least recently used values, evicted once their bytes exceed the bound (thread-safe)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._size += len(value) - (len(old) if old is not None else 0)
            self._items[key] = value
            while self._size > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._size -= len(evicted)


class ImagingService:
    def __init__(self, store: DicomStore, builder: StudyBuilder, max_bytes: int) -> None:
        self.store = store
        self.builder = builder
        self.max_bytes = max_bytes
        self._rendered = ByteBoundedCache(RENDER_CACHE_BYTES)

    def ingest(self, data: bytes) -> Outcome:
        try:
            instance = read_instance(data, self.max_bytes)
        except DicomRejected as rejected:
            return Outcome(None, None, None, False, rejected.reason, rejected.code)
        existing = self.store.get(instance.sop_uid)
        new = existing is None
        if existing is None:
            existing = self.store.put(self._document(instance), data)  # None: stored now
            new = existing is None
        if existing is not None and existing["sha256"] != instance.sha256:
            return Outcome(instance.sop_uid, instance.sop_class, instance.study_uid, False,
                           "A different object with this SOP Instance UID is already stored.", 0x0111)
        return Outcome(instance.sop_uid, instance.sop_class, instance.study_uid, True, new=new)

    def _document(self, instance: Instance) -> dict[str, Any]:
        return {"_id": instance.sop_uid, "study": instance.study_uid, "series": instance.series_uid,
                "sop_class": instance.sop_class, "transfer_syntax": instance.transfer_syntax,
                "sha256": instance.sha256, "size": instance.size,
                "patient_id": str(instance.value("PatientID") or ""),
                "study_date": _int(str(instance.value("StudyDate") or "")[:8]) or 0,
                "modality": str(instance.value("Modality") or ""),
                "accession": str(instance.value("AccessionNumber") or ""),
                "series_number": _int(instance.value("SeriesNumber")),
                "instance_number": _int(instance.value("InstanceNumber")),
                "meta": instance.metadata}

    def refresh_study(self, ctx: FhirContext, study_uid: str, base_url: str) -> dict[str, Any]:
        return self.builder.write(ctx, self.store.find({"study": study_uid}), base_url)

    def frames(self, document: dict[str, Any], numbers: list[int]) -> list[bytes]:
        """The asked frames' pixel data as stored (PS3.18 frames, uncompressed transfer syntaxes); IndexError(n)
        for a frame the object does not have, ValueError when the pixel data is compressed."""
        dataset = pydicom.dcmread(io.BytesIO(self.store.read(document)))
        if "PixelData" not in dataset:
            raise ValueError("the object has no pixel data")
        if pydicom.uid.UID(dataset.file_meta.TransferSyntaxUID).is_compressed:
            raise ValueError("its pixel data is compressed; retrieve the instance")
        count = int(dataset.get("NumberOfFrames", 1) or 1)
        size = len(dataset.PixelData) // count
        for number in numbers:
            if not 1 <= number <= count:
                raise IndexError(number)
        return [bytes(dataset.PixelData[(n - 1) * size: n * size]) for n in numbers]

    def bulkdata(self, document: dict[str, Any], tag: int) -> bytes | None:
        """The raw value of a top-level element (the BulkDataURI of the metadata names it); None when absent."""
        dataset = pydicom.dcmread(io.BytesIO(self.store.read(document)))
        element = dataset.get(tag)
        if element is None or not isinstance(element.value, bytes | bytearray):
            return None
        return bytes(element.value)

    def render(self, document: dict[str, Any], frame: int = 1, window: Window | None = None) -> bytes:
        """A PNG of one frame, windowed as asked (PS3.18 `window=center,width,function`) or from the header
        (uncompressed transfer syntaxes). Bounded: the object was checked on the way in (its inflated and decoded
        size), only the asked frame is decoded, a frame larger than RENDER_MAX_PIXELS is refused, and answers are
        cached per process (RENDER_CACHE_BYTES)."""
        key = (str(document.get("_id")), frame, window)
        cached = self._rendered.get(key)
        if cached is not None:
            return cached
        data = self.store.read(document)
        try:
            check_inflated_size(data, self.max_bytes)  # also for objects stored before the check existed
        except DicomRejected as rejected:
            raise ValueError(rejected.reason) from None
        dataset = pydicom.dcmread(io.BytesIO(data))
        if pydicom.uid.UID(dataset.file_meta.TransferSyntaxUID).is_compressed:
            raise ValueError("rendering of compressed transfer syntaxes is not supported")
        if "PixelData" not in dataset:
            raise ValueError("the object has no pixel data")
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        if frame < 1 or frame > frames:
            raise IndexError(frame)
        if int(dataset.get("Rows", 0) or 0) * int(dataset.get("Columns", 0) or 0) > RENDER_MAX_PIXELS:
            raise ValueError(f"a frame of more than {RENDER_MAX_PIXELS} pixels is not rendered; retrieve the object")
        image = pixel_array(dataset, index=frame - 1) if frames > 1 else pixel_array(dataset)
        image = image.astype(np.float64) * float(dataset.get("RescaleSlope", 1) or 1) + float(
            dataset.get("RescaleIntercept", 0) or 0)
        center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
        function = "linear"
        if window is not None:
            center, width, function = window
        if center is not None and width is not None:
            center = float(center[0] if isinstance(center, pydicom.multival.MultiValue) else center)
            width = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
        else:
            center, width = (float(image.max()) + float(image.min())) / 2, float(image.max()) - float(image.min())
        scaled = _windowed(image, center, max(width, 1e-6), function)
        if image.ndim == 3:  # colour
            picture = Image.fromarray(scaled, "RGB")
        else:
            picture = Image.fromarray(scaled, "L")
            if str(dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1":
                picture = Image.eval(picture, lambda v: 255 - v)
        out = io.BytesIO()
        picture.save(out, format="PNG")
        self._rendered.put(key, out.getvalue())
        return out.getvalue()


Window = tuple[float, float, str]  # center, width, function (PS3.18 rendered `window` parameter)
WINDOW_FUNCTIONS = ("linear", "linear-exact", "sigmoid")


def parse_window(value: str) -> Window:
    """`center,width[,function]` as PS3.18 §8.3.5.1.3 writes it; ValueError with the reason otherwise."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError("window is center,width or center,width,function (e.g. 40,400,linear)")
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError("window's center and width are numbers (e.g. 40,400)") from None
    function = parts[2].lower() if len(parts) == 3 else "linear"
    if not (np.isfinite(center) and np.isfinite(width)) or width <= 0:
        raise ValueError("window's width is a positive number and its center a finite one")
    if function not in WINDOW_FUNCTIONS:
        raise ValueError(f"window's function is one of {', '.join(WINDOW_FUNCTIONS)}")
    return center, width, function


def _windowed(image: Any, center: float, width: float, function: str) -> Any:
    """Map stored values to 0..255 by the VOI LUT function of PS3.3 C.11.2.1.2 (linear, linear-exact, sigmoid)."""
    if function == "sigmoid":
        out = 255.0 / (1.0 + np.exp(-4.0 * (image - center) / width))
    elif function == "linear-exact":
        out = (image - (center - width / 2)) / width * 255.0
    else:  # linear: the DICOM formula with its half-unit offsets
        out = ((image - (center - 0.5)) / max(width - 1, 1e-6) + 0.5) * 255.0
    return np.clip(out, 0, 255).astype(np.uint8)
