"""DICOM in, ImagingStudy out, the original objects back over DICOMweb, byte for byte.

Files are the DICOM test files shipped inside pydicom's wheel (nothing is downloaded). Retrieval uses an
independent DICOMweb client (dicomweb-client) and the standard library's MIME parser, not our parser."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest
import requests
from conftest import FHIR_JSON
from dicomweb_client.api import DICOMwebClient
from PIL import Image

FILES = Path(pydicom.__file__).parent / "data" / "test_files"
TREE = FILES / "dicomdirtests"


def dicom_files(folder: Path) -> list[Path]:
    out = []
    for path in sorted(folder.rglob("*")):
        data = path.read_bytes() if path.is_file() else b""
        if data[128:132] == b"DICM" and b"1.2.840.10008.1.3.10" not in data[132:600]:
            out.append(path)
    return out


def stow(base: str, *objects: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    boundary = uuid.uuid4().hex
    body = (
        b"".join(
            b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + o + b"\r\n" for o in objects
        )
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )
    return requests.post(
        f"{dicomweb(base)}/studies",
        data=body,
        timeout=120,
        headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                 **(headers or {})},
    )


def dicomweb(base: str) -> str:
    return base.rsplit("/fhir", 1)[0] + "/dicomweb"


def stored_objects(store) -> tuple[int, int]:
    return len(list(store["_dicom_instances"].find({}, {"_id": 1}))), len(
        list(store["_dicom_chunks"].find({}, {"_id": 1}))
    )


@pytest.fixture(scope="module")
def ingested(base):
    result = subprocess.run(
        [sys.executable, "-m", "fhirserver", "ingest-dicom", "--url", base, str(TREE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def expected_studies() -> dict[str, list[pydicom.Dataset]]:
    studies: dict[str, list[pydicom.Dataset]] = defaultdict(list)
    for path in dicom_files(TREE):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        studies[str(ds.StudyInstanceUID)].append(ds)
    return studies


def test_ingest_groups_by_study_and_reports_a_summary(ingested):
    studies = expected_studies()
    instances = sum(len(v) for v in studies.values())
    series = len({str(d.SeriesInstanceUID) for v in studies.values() for d in v})
    assert f"stored {instances} instances in {series} series of {len(studies)} studies" in ingested
    assert len(studies) == 7


def test_imaging_study_fields_match_the_files(http, base, ingested):
    for study_uid, datasets in expected_studies().items():
        study = http.get(f"{base}/ImagingStudy/{study_uid}").json()
        assert study["identifier"][0] == {"system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}"}
        assert study["numberOfInstances"] == len(datasets)
        assert study["numberOfSeries"] == len({str(d.SeriesInstanceUID) for d in datasets})
        assert {m["code"] for m in study["modality"]} == {str(d.Modality) for d in datasets}
        assert {s["uid"] for s in study["series"]} == {str(d.SeriesInstanceUID) for d in datasets}
        uids = {i["uid"] for s in study["series"] for i in s["instance"]}
        assert uids == {str(d.SOPInstanceUID) for d in datasets}
        date = str(datasets[0].StudyDate)
        assert study["started"].startswith(f"{date[:4]}-{date[4:6]}-{date[6:8]}")
        patient = http.get(f"{base}/{study['subject']['reference']}").json()
        assert {i["value"] for i in patient["identifier"]} >= {str(datasets[0].PatientID)}
        assert study["endpoint"] == [{"reference": "Endpoint/dicomweb"}]


def test_two_patients_each_have_their_studies(http, base, ingested):
    by_patient = defaultdict(set)
    for study_uid, datasets in expected_studies().items():
        by_patient[str(datasets[0].PatientID)].add(study_uid)
    assert len(by_patient) >= 2  # computed from the files: each patient has exactly their own studies
    for patient_id, studies in by_patient.items():
        found = http.get(f"{base}/ImagingStudy", params={"patient.identifier": patient_id, "_count": "50"}).json()
        assert {e["resource"]["id"] for e in found["entry"]} == studies


def test_retrieved_objects_are_byte_for_byte_the_originals(base, ingested):
    client = DICOMwebClient(url=dicomweb(base))
    for path in dicom_files(TREE)[:12]:
        original = path.read_bytes()
        ds = pydicom.dcmread(io.BytesIO(original), stop_before_pixels=True)
        retrieved = client.retrieve_instance(
            str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
        )
        assert retrieved.SOPInstanceUID == ds.SOPInstanceUID and retrieved.PatientID == ds.PatientID
        url = (
            f"{dicomweb(base)}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}"
        )
        response = requests.get(url, timeout=60)
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + response.headers["Content-Type"].encode() + b"\r\n\r\n" + response.content
        )
        parts = [p.get_payload(decode=True) for p in message.iter_parts()]
        assert len(parts) == 1 and hashlib.sha256(parts[0]).hexdigest() == hashlib.sha256(original).hexdigest()


def test_study_retrieve_metadata_and_qido(base, ingested):
    client = DICOMwebClient(url=dicomweb(base))
    study_uid, datasets = max(expected_studies().items(), key=lambda kv: len(kv[1]))
    assert len(client.retrieve_study(study_uid)) == len(datasets)
    metadata = client.retrieve_study_metadata(study_uid)
    assert {m["00080018"]["Value"][0] for m in metadata} == {str(d.SOPInstanceUID) for d in datasets}
    patient = str(datasets[0].PatientID)
    studies = client.search_for_studies(search_filters={"PatientID": patient})
    assert study_uid in {s["0020000D"]["Value"][0] for s in studies}
    assert all(s["00100020"]["Value"][0] == patient for s in studies)
    first_page = client.search_for_studies(limit=3)
    second_page = client.search_for_studies(limit=3, offset=3)
    assert len(first_page) == 3 and not {s["0020000D"]["Value"][0] for s in first_page} & {
        s["0020000D"]["Value"][0] for s in second_page
    }
    date = str(datasets[0].StudyDate)
    dated = requests.get(f"{dicomweb(base)}/studies", params={"StudyDate": f"{date}-{date}"}, timeout=30).json()
    assert study_uid in {s["0020000D"]["Value"][0] for s in dated}
    modality = str(datasets[0].Modality)
    by_modality = requests.get(f"{dicomweb(base)}/studies", params={"ModalitiesInStudy": modality}, timeout=30).json()
    assert all(modality in s["00080061"]["Value"] for s in by_modality) and by_modality
    series = client.search_for_series(study_uid)
    assert {s["0020000E"]["Value"][0] for s in series} == {str(d.SeriesInstanceUID) for d in datasets}
    assert requests.get(f"{dicomweb(base)}/studies", params={"Colour": "red"}, timeout=30).status_code == 400


def test_rendered_frame_is_a_windowed_png(base):
    original = (FILES / "CT_small.dcm").read_bytes()
    assert stow(base, original).status_code == 200
    ds = pydicom.dcmread(io.BytesIO(original))
    url = (
        f"{dicomweb(base)}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
        f"{ds.SOPInstanceUID}/rendered"
    )
    response = requests.get(url, timeout=60)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (ds.Columns, ds.Rows)
    assert requests.get(url.replace("/rendered", "/frames/9/rendered"), timeout=30).status_code == 404


def test_rendered_window_follows_the_asked_center_and_width(base):
    """`window=center,width,function` (PS3.18): a narrow window around the disc's value makes the disc white and the
    air black; a window far above both makes everything black; a malformed window is a 400 naming it."""
    from tools_examples import example_slice  # the README's own example slice: a disc of 40 HU in air

    data = example_slice(3, 1)
    assert stow(base, data).status_code == 200
    ds = pydicom.dcmread(io.BytesIO(data))
    url = (f"{dicomweb(base)}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
           f"{ds.SOPInstanceUID}/rendered")

    def pixels(window: str) -> tuple[int, int]:
        response = requests.get(url, params={"window": window}, timeout=60)
        assert response.status_code == 200, response.text
        image = Image.open(io.BytesIO(response.content))
        return image.getpixel((32, 32)), image.getpixel((1, 1))  # the disc's centre, a corner in air

    assert pixels("0,20") == (255, 0)  # the disc (40) is above the window, the air (-1000) below
    assert pixels("40,20,sigmoid") == (127, 0)  # the centre value maps to the middle of the sigmoid
    assert pixels("3000,10,linear-exact") == (0, 0)
    bad = requests.get(url, params={"window": "wide"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["window"], bad.text


def _nested(depth: int) -> bytes:
    ct = (FILES / "CT_small.dcm").read_bytes()[:-138]  # without the trailing padding, PixelData is last

    def seq(tag: bytes) -> bytes:
        return tag + b"SQ\x00\x00\xff\xff\xff\xff"

    item, item_end, seq_end = (
        b"\xfe\xff\x00\xe0\xff\xff\xff\xff",
        b"\xfe\xff\x0d\xe0\x00\x00\x00\x00",
        b"\xfe\xff\xdd\xe0\x00\x00\x00\x00",
    )
    return (
        ct
        + seq(b"\xfa\xff\xfa\xff")
        + (item + seq(b"\x08\x00\x40\x11")) * depth
        + seq_end
        + (item_end + seq_end) * depth
    )


def _wrong_syntax() -> bytes:
    ds = pydicom.dcmread(FILES / "MR_small.dcm")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    syntax = str(ds.file_meta.TransferSyntaxUID).encode()
    return data.replace(syntax, b"1.2.3.4" + b"\x00" * (len(syntax) - 7), 1)


@pytest.mark.parametrize(
    ("name", "make", "words"),
    [
        ("not DICOM", lambda: b"%PDF-1.4 not an image" * 20, "DICM"),
        ("truncated", lambda: (FILES / "MR_small.dcm").read_bytes()[:-2000], "truncated"),
        ("wrong transfer syntax", _wrong_syntax, "transfer syntax"),
        ("hostile nesting", lambda: _nested(5000), "nested"),
    ],
)
def test_bad_objects_are_rejected_with_a_reason_and_nothing_is_stored(base, store, name, make, words):
    before = stored_objects(store)
    response = stow(base, make())
    assert response.status_code == 409, response.text
    failed = response.json()["00081198"]["Value"][0]
    assert words in failed["00000902"]["Value"][0]
    assert stored_objects(store) == before


def test_duplicate_upload_is_idempotent_and_a_different_object_with_the_same_uid_is_refused(base, store):
    original = (FILES / "MR_small.dcm").read_bytes()
    assert stow(base, original).status_code == 200
    before = stored_objects(store)
    assert stow(base, original).status_code == 200
    assert stored_objects(store) == before
    ds = pydicom.dcmread(io.BytesIO(original))
    ds.PatientName = "Other^Person"
    other = io.BytesIO()
    ds.save_as(other, enforce_file_format=True)
    refused = stow(base, other.getvalue())
    assert refused.status_code == 409 and refused.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0x0111]
    assert stored_objects(store) == before


def test_mixed_upload_stores_the_good_and_reports_the_bad(base):
    good = (
        (FILES / "US1_UNCR.dcm").read_bytes()
        if (FILES / "US1_UNCR.dcm").exists()
        else (FILES / "CT_small.dcm").read_bytes()
    )
    response = stow(base, good, b"not dicom at all" * 20)
    assert response.status_code == 202
    assert response.json()["00081199"]["Value"] and response.json()["00081198"]["Value"]


def test_stow_needs_multipart_and_errors_are_operation_outcomes(base):
    response = requests.post(
        f"{dicomweb(base)}/studies", data=b"x", headers={"Content-Type": "application/dicom"}, timeout=30
    )
    assert response.status_code == 415 and response.json()["resourceType"] == "OperationOutcome"
    missing = requests.get(f"{dicomweb(base)}/studies/1.2.3.4.5", timeout=30)
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
    assert requests.get(f"{dicomweb(base)}/studies/not-a-uid", timeout=30).status_code == 400


def test_a_report_references_its_imaging_study(http, base, ingested):
    study_uid = next(iter(expected_studies()))
    study = http.get(f"{base}/ImagingStudy/{study_uid}").json()
    report = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "CT 报告"},
        "subject": study["subject"],
        "imagingStudy": [{"reference": f"ImagingStudy/{study_uid}"}],
    }
    created = http.post(f"{base}/DiagnosticReport", json=report, headers={"Content-Type": FHIR_JSON})
    assert created.status_code == 201
    found = http.get(
        f"{base}/DiagnosticReport", params={"_id": created.json()["id"], "_include": "DiagnosticReport:subject"}
    ).json()
    assert {e["resource"]["resourceType"] for e in found["entry"]} == {"DiagnosticReport", "Patient"}


def test_ctrl_c_in_ingest_dicom_says_what_is_stored_and_a_rerun_is_safe(tmp_path, base):
    """Ctrl-C after the first batch (8 MB) of a folder of 2,500 slices: exit 130, the summary of what is stored and
    that a rerun is safe, no traceback; the rerun stores every slice (those already stored are accepted again)."""
    import signal
    import subprocess
    import sys
    import time

    from tools_examples import example_slice

    study = 100 + int(uuid.uuid4().int % 10_000)
    for number in range(1, 2501):
        (tmp_path / f"{number:04d}.dcm").write_bytes(example_slice(study, number))
    command = [sys.executable, "-m", "fhirserver", "ingest-dicom", "--url", base, str(tmp_path)]
    log = tmp_path / "progress.txt"
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while "files (" not in log.read_text():  # the progress line: the first batch is answered
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        code = process.wait(60)
    said = log.read_text()
    assert code == 130, said
    assert "interrupted (Ctrl-C)" in said and "again is safe" in said and "Traceback" not in said, said
    stored = int(said.split("\nstored ", 1)[1].split(" instances")[0])
    assert 0 < stored < 2500
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "stored 2500 instances in 1 series of 1 studies" in again.stdout


def test_the_same_object_uploaded_six_times_at_once_is_stored_once(base, store):
    """Six STOW-RS uploads of one instance at the same moment (a PACS retrying while its first upload is still being
    stored): every answer is a success, one object is stored, and it is the original byte for byte."""
    from concurrent.futures import ThreadPoolExecutor

    from tools_examples import example_slice

    data = example_slice(200 + int(uuid.uuid4().int % 10_000), 1)
    ds = pydicom.dcmread(io.BytesIO(data))
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: stow(base, data).status_code, range(6)))
    assert statuses == [200] * 6
    assert store["_dicom_instances"].count_documents({"_id": str(ds.SOPInstanceUID)}) == 1
    client = DICOMwebClient(dicomweb(base))
    retrieved = client.retrieve_instance(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                                         str(ds.SOPInstanceUID))
    buffer = io.BytesIO()
    retrieved.save_as(buffer, enforce_file_format=True)
    assert pydicom.dcmread(io.BytesIO(buffer.getvalue())).PixelData == ds.PixelData
    chunks = store["_dicom_chunks"].count_documents({"sop": str(ds.SOPInstanceUID)})
    assert chunks == 1  # the losers removed their own chunks


def _slice_with(study: int, **attributes: object) -> tuple[bytes, pydicom.Dataset]:
    from tools_examples import example_slice

    ds = pydicom.dcmread(io.BytesIO(example_slice(study, 1)))
    for name, value in attributes.items():
        if value is None:
            delattr(ds, name)
        else:
            setattr(ds, name, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue(), ds


def test_an_object_without_patient_id_joins_its_orders_patient_or_leaves_nothing(http, base, store):
    """No PatientID and no order with its AccessionNumber: STOW answers 409 with a FailedSOPSequence item
    (FailureReason, the SOP Instance UID, why) and nothing is stored, not even for WADO/QIDO. With a ServiceRequest
    carrying that accession number, the same object is stored and its ImagingStudy's subject is the order's
    patient."""
    study = 30_000 + int(uuid.uuid4().int % 10_000)
    accession = f"ACC-{uuid.uuid4().hex[:8]}"
    data, ds = _slice_with(study, PatientID=None, AccessionNumber=accession)
    refused = stow(base, data)
    assert refused.status_code == 409, refused.text
    item = refused.json()["00081198"]["Value"][0]
    assert item["00081155"]["Value"] == [str(ds.SOPInstanceUID)] and item["00081197"]["Value"] == [0x0110]
    assert "AccessionNumber" in item["00000902"]["Value"][0]
    assert store["_dicom_instances"].count_documents({"_id": str(ds.SOPInstanceUID)}) == 0
    assert requests.get(f"{dicomweb(base)}/studies/{ds.StudyInstanceUID}/metadata", timeout=30).status_code == 404
    patient = http.post(f"{base}/Patient", json={"resourceType": "Patient", "name": [{"text": "无号患者"}]},
                        headers={"Content-Type": FHIR_JSON}).json()
    order = {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "code": {"text": "头颅CT"},
             "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                  "code": "ACSN"}]}, "value": accession}],
             "subject": {"reference": f"Patient/{patient['id']}"}}
    assert http.post(f"{base}/ServiceRequest", json=order, headers={"Content-Type": FHIR_JSON}).status_code == 201
    stored = stow(base, data)
    assert stored.status_code == 200, stored.text
    assert http.get(f"{base}/ImagingStudy/{ds.StudyInstanceUID}").json()["subject"] == {
        "reference": f"Patient/{patient['id']}"}


def test_metadata_bulk_uris_frames_and_qido_filters_through_dicomweb_client(base):
    """The metadata's pixel-data BulkDataURI is retrievable (frames); dicomweb-client retrieves frames; QIDO finds
    by PatientName with wildcards and fuzzy matching, by series Modality, at the /series and /instances roots, and
    includefield=all gives the header's attributes."""
    study = 40_000 + int(uuid.uuid4().int % 10_000)
    name = f"Qido{uuid.uuid4().hex[:6]}^Mei"
    data, ds = _slice_with(study, PatientName=name)
    assert stow(base, data).status_code == 200
    client = DICOMwebClient(dicomweb(base))
    meta = client.retrieve_instance_metadata(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                                             str(ds.SOPInstanceUID))
    uri = meta["7FE00010"]["BulkDataURI"]
    assert uri.endswith("/frames/1")
    frames = client.retrieve_instance_frames(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                                             str(ds.SOPInstanceUID), frame_numbers=[1])
    assert frames[0] == ds.PixelData
    assert requests.get(uri, timeout=30).status_code == 200
    family = name.split("^")[0]

    def studies(**params: str) -> set[str]:
        return {s["0020000D"]["Value"][0] for s in client.search_for_studies(search_filters=params)}

    assert str(ds.StudyInstanceUID) in studies(PatientName=f"{family[:6]}*")
    assert str(ds.StudyInstanceUID) in studies(PatientName=f"{family.lower()}^me?")
    assert str(ds.StudyInstanceUID) not in studies(PatientName="Mei*")
    fuzzy = client.search_for_studies(search_filters={"PatientName": "Mei"}, fuzzymatching=True)
    assert str(ds.StudyInstanceUID) in {s["0020000D"]["Value"][0] for s in fuzzy}
    series = client.search_for_series(search_filters={"Modality": "CT", "PatientName": name})
    assert [s["0020000E"]["Value"][0] for s in series] == [str(ds.SeriesInstanceUID)]
    assert client.search_for_series(search_filters={"Modality": "MR", "PatientName": name}) == []
    instances = client.search_for_instances(search_filters={"PatientName": name}, get_remaining=False)
    assert [i["00080018"]["Value"][0] for i in instances] == [str(ds.SOPInstanceUID)]
    full = client.search_for_studies(search_filters={"PatientName": name}, fields=["all"])
    assert "00180050" in full[0]  # SliceThickness: not a default QIDO attribute
