"""DICOMweb (PS3.18): STOW-RS store, WADO-RS retrieve / metadata / rendered, QIDO-RS search, at /dicomweb.

Objects come back byte for byte as stored. Errors are FHIR OperationOutcomes like everywhere else.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from flask import Blueprint, Response, request

from ..fhir.errors import FhirError, bad_request, not_found
from ..fhir.interactions.context import FhirContext
from ..fhir.json_format import dumps
from ..imaging.service import ImagingService, parse_window
from .origin import fhir_base
from .responses import render_error

DICOM_JSON = "application/dicom+json"
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
QIDO_FIELDS = {"PatientID": "patient_id", "PatientName": "patient_name", "AccessionNumber": "accession",
               "StudyInstanceUID": "study", "ModalitiesInStudy": "modality", "StudyDate": "study_date",
               "Modality": "series_modality", "SeriesInstanceUID": "series", "SOPInstanceUID": "_id"}
STUDY_TAGS = ("00080020", "00080030", "00080050", "00080061", "00080090", "00081030", "00100010", "00100020",
              "00100030", "00100040", "0020000D", "00200010")
SERIES_TAGS = ("00080060", "0008103E", "0020000E", "00200011", "00180015")
INSTANCE_TAGS = ("00080016", "00080018", "00200013", "00280010", "00280011", "00280008")


def parse_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """multipart/related parts as (headers, bytes); the body of each part is kept exactly."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/related") or match is None:
        raise FhirError.of(415, "not-supported", 'STOW-RS takes multipart/related; type="application/dicom" '
                                                 "with a boundary.")
    delimiter = b"--" + match.group(1).encode("latin1")
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, separator, data = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            continue
        headers = {}
        for line in head.decode("latin1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, data[:-2] if data.endswith(b"\r\n") else data))
    return parts


def _multipart(objects: list[bytes]) -> Response:
    boundary = uuid.uuid4().hex
    body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n"
                    for data in objects) + b"--" + boundary.encode() + b"--\r\n"
    return Response(body, status=200, content_type=f'multipart/related; type="application/dicom"; boundary={boundary}')


def _uid(value: str, name: str) -> str:
    if not _UID.match(value) or len(value) > 64:
        raise bad_request(f"{name} must be a DICOM UID.")
    return value


def blueprint(ctx: FhirContext, imaging: ImagingService) -> Blueprint:
    bp = Blueprint("dicomweb", __name__)

    @bp.before_request
    def allow_large_objects() -> Response | None:
        # DICOM objects are larger than FHIR resources: STOW bodies get their own limit.
        request.max_content_length = ctx.settings.max_dicom_bytes * 4
        try:  # images are ImagingStudy data: STOW needs ImagingStudy.c, retrieval ImagingStudy.r
            ctx.access.permit("c" if request.method == "POST" else "r", "ImagingStudy")
            study = (request.view_args or {}).get("study")
            if study is not None and not study_visible(study):
                raise not_found(f"Study {study[:64]} does not exist.")
        except FhirError as error:
            return render_error(error, request)
        return None

    def study_visible(study_uid: str) -> bool:
        """A study is visible as its ImagingStudy is (owner, consent, break-the-glass: security/access.py)."""
        version = ctx.store.versions.read_current("ImagingStudy", study_uid)
        if version is None:  # instances without a study record: only for callers who see everything
            return ctx.access.search_filter("ImagingStudy", []) is None
        return bool(ctx.access.disclose([version]))

    def wado_base() -> str:
        return fhir_base(ctx.settings).rsplit("/fhir", 1)[0] + "/dicomweb"

    def guarded(produce: Any) -> Response:
        try:
            return produce()
        except FhirError as error:
            return render_error(error, request)

    def instances(study: str, series: str | None = None, sop: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"study": _uid(study, "StudyInstanceUID")}
        if series:
            query["series"] = _uid(series, "SeriesInstanceUID")
        if sop:
            query["_id"] = _uid(sop, "SOPInstanceUID")
        found = imaging.store.find(query)
        if not found:
            raise not_found("No such DICOM object stored here.")
        return found

    @bp.post("/studies")
    def stow() -> Response:
        def produce() -> Response:
            parts = parse_multipart(request.get_data(cache=False), request.headers.get("Content-Type", ""))
            if not parts:
                raise bad_request("The multipart body holds no parts.")
            referenced: list[tuple[str, dict[str, Any]]] = []  # (SOP Instance UID, ReferencedSOPSequence item)
            failed: list[dict[str, Any]] = []
            fresh: dict[str, list[str]] = {}  # study -> the instances this request stored (removed on failure)
            study_of: dict[str, str] = {}
            for headers, data in parts:
                if headers.get("content-type", "application/dicom").split(";")[0] != "application/dicom":
                    failed.append({"00081197": {"vr": "US", "Value": [0xC000]}})
                    continue
                outcome = imaging.ingest(data)
                if outcome.stored and outcome.sop_uid and outcome.study_uid:
                    referenced.append((outcome.sop_uid, {
                        "00081150": {"vr": "UI", "Value": [outcome.sop_class]},
                        "00081155": {"vr": "UI", "Value": [outcome.sop_uid]},
                        "00081190": {"vr": "UR", "Value": [f"{wado_base()}/studies/{outcome.study_uid}"]}}))
                    fresh.setdefault(outcome.study_uid, [])
                    study_of[outcome.sop_uid] = outcome.study_uid
                    if outcome.new:
                        fresh[outcome.study_uid].append(outcome.sop_uid)
                else:
                    failed.append(_failure(outcome.code, outcome.reason, outcome.sop_uid, outcome.sop_class))
            for study, stored_now in fresh.items():
                try:
                    imaging.refresh_study(ctx, study, fhir_base(ctx.settings))
                except FhirError as error:  # the study cannot be recorded: what this request stored is removed
                    reason = error.issues[0].diagnostics if error.issues else "the study cannot be recorded"
                    for sop in stored_now:
                        imaging.store.delete(sop)
                    for sop, item in [r for r in referenced if study_of[r[0]] == study]:
                        referenced.remove((sop, item))
                        failed.append(_failure(0x0110, reason, sop, item["00081150"]["Value"][0]))
            answer: dict[str, Any] = {}
            if referenced:
                answer["00081199"] = {"vr": "SQ", "Value": [item for _, item in referenced]}
            if failed:
                answer["00081198"] = {"vr": "SQ", "Value": failed}  # FailedSOPSequence
            status = 200 if not failed else (409 if not referenced else 202)
            return Response(json.dumps(answer), status=status, content_type=DICOM_JSON)
        return guarded(produce)

    @bp.get("/studies/<study>")
    @bp.get("/studies/<study>/series/<series>")
    @bp.get("/studies/<study>/series/<series>/instances/<sop>")
    def retrieve(study: str, series: str | None = None, sop: str | None = None) -> Response:
        return guarded(lambda: _multipart([imaging.store.read(d) for d in instances(study, series, sop)]))

    @bp.get("/studies/<study>/metadata")
    @bp.get("/studies/<study>/series/<series>/metadata")
    @bp.get("/studies/<study>/series/<series>/instances/<sop>/metadata")
    def metadata(study: str, series: str | None = None, sop: str | None = None) -> Response:
        return guarded(lambda: Response(dumps([_with_bulk_uris(d, wado_base()) for d in instances(study, series, sop)]),
                                        content_type=DICOM_JSON))

    @bp.get("/studies/<study>/series/<series>/instances/<sop>/frames/<frames>")
    def frames(study: str, series: str, sop: str, frames: str) -> Response:
        def produce() -> Response:
            numbers = [int(n) for n in frames.split(",") if n.isdigit()]
            if not numbers or len(numbers) != len(frames.split(",")):
                raise bad_request("frames is a comma-separated list of frame numbers, e.g. frames/1,2.", "frames")
            try:
                return _octets(imaging.frames(instances(study, series, sop)[0], numbers))
            except IndexError as exc:
                raise not_found(f"Frame {exc.args[0]} does not exist in this object.") from None
            except ValueError as exc:
                raise FhirError.of(406, "not-supported", f"Cannot give the frames of this object: {exc}.") from None
        return guarded(produce)

    @bp.get("/studies/<study>/series/<series>/instances/<sop>/bulkdata/<tag>")
    def bulkdata(study: str, series: str, sop: str, tag: str) -> Response:
        def produce() -> Response:
            if not re.match(r"^[0-9A-Fa-f]{8}$", tag):
                raise bad_request("bulkdata is named by its tag, 8 hexadecimal digits (e.g. 60003000).", "tag")
            value = imaging.bulkdata(instances(study, series, sop)[0], int(tag, 16))
            if value is None:
                raise not_found(f"The object has no bulk data at tag {tag.upper()}.")
            return _octets([value])
        return guarded(produce)

    @bp.get("/studies/<study>/series/<series>/instances/<sop>/rendered")
    @bp.get("/studies/<study>/series/<series>/instances/<sop>/frames/<int:frame>/rendered")
    def rendered(study: str, series: str, sop: str, frame: int = 1) -> Response:
        def produce() -> Response:
            window = None
            if request.args.get("window"):
                try:
                    window = parse_window(request.args["window"])
                except ValueError as exc:
                    raise FhirError.of(400, "value", f"{exc}.", "window") from None
            document = instances(study, series, sop)[0]
            try:
                return Response(imaging.render(document, frame, window), content_type="image/png")
            except IndexError:
                raise not_found(f"Frame {frame} does not exist in this object.") from None
            except ValueError as exc:
                raise FhirError.of(406, "not-supported", f"Cannot render this object: {exc}.") from None
        return guarded(produce)

    @bp.get("/studies")
    def search_studies() -> Response:
        return guarded(lambda: _qido(imaging, "study", {}, STUDY_TAGS, visible=study_visible))

    @bp.get("/series")
    @bp.get("/studies/<study>/series")
    def search_series(study: str | None = None) -> Response:
        base = {"study": _uid(study, "StudyInstanceUID")} if study else {}
        return guarded(lambda: _qido(imaging, "series", base, STUDY_TAGS + SERIES_TAGS, visible=study_visible))

    @bp.get("/instances")
    @bp.get("/studies/<study>/instances")
    @bp.get("/studies/<study>/series/<series>/instances")
    def search_instances(study: str | None = None, series: str | None = None) -> Response:
        base = {"study": _uid(study, "StudyInstanceUID")} if study else {}
        if series:
            base["series"] = _uid(series, "SeriesInstanceUID")
        return guarded(lambda: _qido(imaging, "_id", base, STUDY_TAGS + SERIES_TAGS + INSTANCE_TAGS,
                                     visible=study_visible))

    return bp


def _qido(imaging: ImagingService, level: str, base: dict[str, Any], tags: tuple[str, ...],
          visible: Any = None) -> Response:
    """QIDO-RS (PS3.18 10.6): the attributes of QIDO_FIELDS (PatientName with * and ? wildcards, and with
    fuzzymatching=true any name component's start), StudyDate (YYYYMMDD or a range A-B), limit, offset,
    includefield (tags, or all); one DICOM JSON object per study, series or instance."""
    query = dict(base)
    in_study = False  # ModalitiesInStudy at the study level: studies with any instance of the modality
    fuzzy = request.args.get("fuzzymatching", "false").lower() == "true"
    extra: set[str] = set()
    for name, value in request.args.items(multi=True):
        if name in ("limit", "offset", "fuzzymatching"):
            continue
        if name == "includefield":
            extra |= {"all"} if value == "all" else {_tag(v) for v in value.split(",") if v}
            continue
        field = QIDO_FIELDS.get(name)
        if field is None:
            raise bad_request(f"QIDO-RS parameter {name[:40]} is not supported; supported: "
                              f"{', '.join(QIDO_FIELDS)}, limit, offset, fuzzymatching, includefield.")
        if field == "study_date":
            low, _, high = value.partition("-")
            if not re.match(r"^\d{8}$", low or "00000000") or not re.match(r"^\d{8}$", high or "99991231"):
                raise bad_request("StudyDate is YYYYMMDD or a range YYYYMMDD-YYYYMMDD.")
            query["study_date"] = {"$gte": int(low or 0), "$lte": int(high or 99991231)} if "-" in value \
                else {"$in": [int(low)]}
        elif field == "patient_name":
            query["meta.00100010.Value.Alphabetic"] = {"$regex": _name_pattern(value, fuzzy), "$options": "i"}
        elif field in ("modality", "series_modality"):
            query["modality"] = {"$in": [v for v in value.split(",") if v]}
            in_study = in_study or (field == "modality" and level == "study")
        else:
            query[field] = {"$in": [value]}
    limit, offset = request.args.get("limit", "100"), request.args.get("offset", "0")
    if not limit.isdigit() or not offset.isdigit() or int(limit) > 1000:
        raise bad_request("limit and offset are whole numbers; limit at most 1000.")
    if in_study:
        studies = sorted({d["study"] for d in imaging.store.find(query)})
        query = {"study": {"$in": studies}} if studies else {"study": {"$in": []}}
    found = imaging.store.find(query)
    groups: dict[str, list[dict[str, Any]]] = {}
    for document in found:
        if visible is None or visible(document["study"]):
            groups.setdefault(document[level], []).append(document)
    rows = []
    for members in list(groups.values())[int(offset): int(offset) + int(limit)]:
        meta = members[0]["meta"]
        wanted = [t for t in meta if "BulkDataURI" not in meta[t]] if "all" in extra else [*tags, *sorted(extra)]
        row = {tag: meta[tag] for tag in wanted if tag in meta}
        if level == "study":
            row["00080061"] = {"vr": "CS", "Value": sorted({m["modality"] for m in members if m["modality"]})}
            row["00201206"] = {"vr": "IS", "Value": [len({m["series"] for m in members})]}
            row["00201208"] = {"vr": "IS", "Value": [len(members)]}
        elif level == "series":
            row["00201209"] = {"vr": "IS", "Value": [len(members)]}
        rows.append(row)
    return Response(dumps(rows), content_type=DICOM_JSON)


def _name_pattern(value: str, fuzzy: bool) -> str:
    """A PatientName match (PS3.4 C.2.2.2.4) as an anchored regex of the escaped value: * any, ? one character;
    fuzzy: the value may start any component (family, given... after ^ or a space)."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
    return f"(^|[\\^ ]){body}" if fuzzy else f"^{body}$"


def _tag(value: str) -> str:
    if not re.match(r"^[0-9A-Fa-f]{8}$", value):
        raise bad_request(f"includefield takes tags of 8 hexadecimal digits (or all), got {value[:20]!r}.",
                          "includefield")
    return value.upper()


def _failure(code: int, reason: str, sop: str | None, sop_class: str | None) -> dict[str, Any]:
    """A FailedSOPSequence item: FailureReason, the instance, and why in words (ErrorComment, at most 64)."""
    item: dict[str, Any] = {"00081197": {"vr": "US", "Value": [code]}, "00000902": {"vr": "LO", "Value": [reason[:64]]}}
    if sop:
        item["00081155"] = {"vr": "UI", "Value": [sop]}
    if sop_class:
        item["00081150"] = {"vr": "UI", "Value": [sop_class]}
    return item


def _with_bulk_uris(document: dict[str, Any], wado: str) -> dict[str, Any]:
    """The stored metadata with each top-level bulk value's BulkDataURI pointing where it is retrieved (the frames
    for pixel data, /bulkdata/<tag> otherwise); a nested one, which this server does not serve, keeps only its VR."""
    instance = f"{wado}/studies/{document['study']}/series/{document['series']}/instances/{document['_id']}"
    frames = int(((document["meta"].get("00280008") or {}).get("Value") or [1])[0] or 1)

    def nested(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: nested(v) for k, v in value.items() if not (k == "BulkDataURI" and v == "")}
        return [nested(v) for v in value] if isinstance(value, list) else value

    out = {}
    for tag, element in document["meta"].items():
        if isinstance(element, dict) and element.get("BulkDataURI") == "":
            uri = f"{instance}/frames/{','.join(str(n) for n in range(1, frames + 1))}" if tag == "7FE00010" \
                else f"{instance}/bulkdata/{tag}"
            out[tag] = {**element, "BulkDataURI": uri}
        else:
            out[tag] = nested(element)
    return out


def _octets(values: list[bytes]) -> Response:
    boundary = uuid.uuid4().hex
    body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/octet-stream\r\n\r\n" + v + b"\r\n"
                    for v in values) + b"--" + boundary.encode() + b"--\r\n"
    return Response(body, status=200,
                    content_type=f'multipart/related; type="application/octet-stream"; boundary={boundary}')
