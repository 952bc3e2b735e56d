"""Writes examples/: the files the README's examples use (run from the repository root; the output is committed).

Everything here is made by this script (no third-party test data): a transaction Bundle and an NDJSON file of
a patient's laboratory results, one Observation for the conditional-create example, three CT slices of one study
(PatientID 12345678) for `fhirserver ingest-dicom examples/dicom`, and a STOW-RS body with one slice of a second
study. UIDs and values are fixed, so rerunning writes the same bytes.
"""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

OUT = Path("examples")
ROOT_UID = "1.2.826.0.1.3680043.10.1455"  # a UID root for examples; not a device's
RESIDENT = "510100198001010019"  # a valid GB 11643 resident ID (born 1980-01-01, male) of a made-up person
NATIONAL = "urn:oid:2.16.156.10011.1.3"
PATIENT = "Patient/example-zhangwei"


def _json(name: str, data: object) -> None:
    (OUT / name).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _observation(code: str, display: str, value: float, unit: str, when: str, subject: str) -> dict:
    return {"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code}], "text": display},
            "subject": {"reference": subject}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}


def fhir_examples() -> None:
    _json("observation.json", {
        "resourceType": "Observation", "status": "final",
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.99", "value": "LIS-2026-0001"}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}], "text": "血红蛋白"},
        "valueQuantity": {"value": 135, "unit": "g/L", "system": "http://unitsofmeasure.org", "code": "g/L"}})
    patient = "urn:uuid:3f0e0c4a-5d5e-4d8e-9b0a-000000000001"
    _json("bundle.json", {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": patient, "request": {"method": "PUT", "url": "Patient/example-zhangwei"},
         "resource": {"resourceType": "Patient", "id": "example-zhangwei",
                      "name": [{"text": "张伟", "family": "张", "given": ["伟"]}],
                      "gender": "male", "birthDate": "1980-01-01",
                      "identifier": [{"system": NATIONAL, "value": RESIDENT}]}},
        {"request": {"method": "POST", "url": "Observation"},
         "resource": {**_observation("718-7", "血红蛋白", 162, "g/L", "2026-11-20T09:30:00+08:00", patient),
                      "identifier": [{"system": "urn:oid:2.16.156.10011.1.99", "value": "LIS-2026-0002"}]}},
        {"request": {"method": "POST", "url": "Observation"},
         "resource": _observation("4548-4", "糖化血红蛋白", 6.1, "%", "2026-11-20T09:30:00+08:00", patient)},
    ]})
    lines = [_observation("26464-8", "白细胞计数（血常规）", 6.2, "10*9/L", "2026-11-21T08:00:00+08:00", PATIENT),
             _observation("26453-1", "红细胞计数（血常规）", 4.9, "10*12/L", "2026-11-21T08:00:00+08:00", PATIENT),
             _observation("777-3", "血小板计数（血常规）", 230, "10*9/L", "2026-11-21T08:00:00+08:00", PATIENT)]
    (OUT / "results.ndjson").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines),
                                        encoding="utf-8")


def ct_slice(study: int, number: int) -> bytes:
    """A 64×64 CT slice: a disc of soft tissue in air, the disc shifting with the slice."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"{ROOT_UID}.{study}.1.{number}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{ROOT_UID}.{study}", f"{ROOT_UID}.{study}.1"
    ds.PatientID, ds.PatientName = ("12345678", "Zhang^Wei") if study == 1 else ("87654321", "Li^Na")
    ds.PatientBirthDate, ds.PatientSex = ("19800101", "M") if study == 1 else ("19900202", "F")
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the descriptions are Chinese
    ds.StudyDate, ds.StudyTime, ds.Modality = "20261120", "093000", "CT"
    ds.StudyDescription, ds.SeriesDescription = "头颅CT平扫", "axial 5mm"
    ds.SeriesNumber, ds.InstanceNumber, ds.AccessionNumber = 1, number, f"ACC-{study:04d}"
    ds.InstitutionName = "Example Hospital"
    ds.SliceThickness, ds.ImagePositionPatient = 5, [0, 0, 5 * number]
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.WindowCenter, ds.WindowWidth = -1024, 1, 40, 400
    y, x = np.mgrid[0:64, 0:64]
    disc = (x - 32 - number) ** 2 + (y - 32) ** 2 < 20 ** 2
    ds.PixelData = np.where(disc, 1064, 24).astype(np.int16).tobytes()
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_examples() -> None:
    folder = OUT / "dicom"
    folder.mkdir(exist_ok=True)
    for number in (1, 2, 3):
        (folder / f"ct-{number}.dcm").write_bytes(ct_slice(1, number))
    boundary = b"b"
    body = b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n" + ct_slice(2, 1) + b"\r\n--" \
        + boundary + b"--\r\n"
    (OUT / "upload.multipart").write_bytes(body)


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    fhir_examples()
    dicom_examples()
    print(f"wrote {sorted(str(p) for p in OUT.rglob('*') if p.is_file())}")
