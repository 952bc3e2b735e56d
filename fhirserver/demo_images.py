"""The demo's CT series: a head phantom (skull, brain, ventricles that change from slice to slice), written as real
DICOM CT objects with pydicom, so that the console's viewer has slices to scroll and a window to set. The study
belongs to the order its AccessionNumber names (no PatientID), as a township PACS sends it in 乡开县检."""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian

CST = timezone(timedelta(hours=8))
SLICES = 16
SIZE = 128
ACCESSION = "DEMO-ACC-CT-0001"


def uid(name: str) -> str:
    """A stable UID (2.25 form, from a name): loading the demo twice writes the same study."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, f'fhirserver-demo/{name}').int}"


STUDY_UID = uid("township-ct-head-xiaoming")
SERIES_UID = uid("township-ct-head-xiaoming/series-1")


def _slice(index: int) -> np.ndarray:
    """Hounsfield units of one axial slice: air, a skull ring, brain, and ventricles that grow then shrink."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    cy, cx = SIZE / 2, SIZE / 2
    t = index / (SLICES - 1)
    outer = ((x - cx) / (44 - 8 * abs(t - 0.5))) ** 2 + ((y - cy) / (54 - 10 * abs(t - 0.5))) ** 2
    inner = ((x - cx) / (38 - 8 * abs(t - 0.5))) ** 2 + ((y - cy) / (48 - 10 * abs(t - 0.5))) ** 2
    hu = np.full((SIZE, SIZE), -1000.0)
    hu[outer <= 1] = 1200.0
    hu[inner <= 1] = 35.0
    radius = 3 + 9 * np.sin(np.pi * t)
    for side in (-1, 1):
        ventricle = ((x - cx - side * 8) / radius) ** 2 + ((y - cy + 4) / (radius * 1.8)) ** 2
        hu[(ventricle <= 1) & (inner <= 1)] = 5.0
    hu[(inner <= 1) & (((x - cx - 14) ** 2 + (y - cy - 16) ** 2) <= 16) & (index == SLICES // 2)] = 70.0  # a focus
    return hu


def ct_series(days_ago: int = 2) -> list[bytes]:
    """The series as DICOM Part 10 files (CT Image Storage, explicit VR little endian, uncompressed)."""
    when = datetime.now(CST) - timedelta(days=days_ago)
    objects = []
    for index in range(SLICES):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = uid(f"township-ct-head-xiaoming/{index + 1}")
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = FileDataset(None, Dataset(), file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY_UID, SERIES_UID
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the descriptions are Chinese
        ds.Modality, ds.BodyPartExamined, ds.AccessionNumber = "CT", "HEAD", ACCESSION
        ds.StudyDate = ds.SeriesDate = when.strftime("%Y%m%d")
        ds.StudyTime = "100000"
        ds.TimezoneOffsetFromUTC = "+0800"
        ds.StudyDescription = ds.SeriesDescription = "头颅CT平扫 Head CT without contrast"
        ds.InstitutionName = "渝北区某镇卫生院"
        ds.SeriesNumber, ds.InstanceNumber = 1, index + 1
        ds.ImagePositionPatient = [-64.0, -64.0, float(index * 5)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.SliceThickness, ds.PixelSpacing = 5.0, [1.0, 1.0]
        ds.Rows = ds.Columns = SIZE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 80
        ds.PixelData = (_slice(index) + 1024).astype(np.int16).tobytes()
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        objects.append(out.getvalue())
    return objects


def multipart(objects: list[bytes]) -> tuple[bytes, str]:
    """A STOW-RS body (multipart/related; type="application/dicom") and its Content-Type."""
    boundary = f"demo-{uuid.uuid4().hex}"
    body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + o + b"\r\n"
                    for o in objects) + b"--" + boundary.encode() + b"--\r\n"
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'
