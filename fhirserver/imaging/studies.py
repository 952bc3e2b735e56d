"""DICOM instances -> ImagingStudy (grouped by StudyInstanceUID, never by folder), its Patient and Endpoint.

Field conventions follow the usual DICOM-to-FHIR mapping (identifier urn:dicom:uid, series/instance
structure, modality codes from DCM). The study is written through the normal update interaction, so it
is validated, indexed, coded with its recognized item and marked like any other result.
"""

from __future__ import annotations

import re
from typing import Any

from ..fhir.errors import FhirError
from ..fhir.interactions import create, update
from ..fhir.interactions.context import FhirContext, RequestInfo
from ..fhir.interactions.search import find
from ..fhir.json_format import loads
from ..security.principal import acting_as_server, current
from ..terminology.service import TerminologyService

DCM = "http://dicom.nema.org/resources/ontology/DCM"
NATIONAL_ID = "urn:oid:2.16.156.10011.1.3"
_NATIONAL = re.compile(r"^\d{17}[\dXx]$")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


PERFORMER_ROLE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRF",
                              "display": "performer"}]}

def is_national_id(value: str) -> bool:
    """GB 11643: 18 characters, MOD 11-2 check digit."""
    if not _NATIONAL.match(value):
        return False
    check = "10X98765432"[sum(int(d) * w for d, w in zip(value[:17], _WEIGHTS, strict=True)) % 11]
    return value[17].upper() == check


def _v(meta: dict[str, Any], tag: str) -> Any:
    values = meta.get(tag, {}).get("Value")
    return values[0] if values else None


def _person_name(meta: dict[str, Any], tag: str) -> str | None:
    value = _v(meta, tag)
    return value.get("Alphabetic") if isinstance(value, dict) else None


def _when(date: str | None, time: str | None, offset: str | None, zone: str) -> str | None:
    if not date or len(date) < 8 or not date[:8].isdigit():
        return None
    text = f"{date[:4]}-{date[4:6]}-{date[6:8]}"
    if time and len(time) >= 4 and time[:4].isdigit():
        seconds = time[4:6] if len(time) >= 6 and time[4:6].isdigit() else "00"
        tz = f"{offset[:3]}:{offset[3:5]}" if offset and re.match(r"^[+-]\d{4}$", offset) else zone
        text += f"T{time[:2]}:{time[2:4]}:{seconds}{tz}"
    return text


class StudyBuilder:
    def __init__(self, terminology: TerminologyService, canonical: str) -> None:
        self._terminology = terminology
        self._dicom_map = f"{canonical}/ConceptMap/hr-dicom-to-item"
        self._snomed_map = f"{canonical}/ConceptMap/hr-dicom-bodypart-to-snomed"
        self._dicom = f"{canonical}/dicom#"
        self._item_system = f"{canonical}/CodeSystem/hr-item"

    def write(self, ctx: FhirContext, instances: list[dict[str, Any]], base_url: str) -> dict[str, Any]:
        """Create or update ImagingStudy/<StudyInstanceUID> from all stored instances of the study."""
        study_uid = instances[0]["study"]
        first = instances[0]["meta"]
        uploader = current()
        owner = uploader.organization if uploader is not None else None
        patient = self._patient(ctx, first, base_url, owner)
        with acting_as_server():  # the DICOMweb Endpoint is the server's own record
            endpoint = self._endpoint(ctx, base_url)
        study = self.study(instances, patient, endpoint, ctx.settings.timezone)
        if owner:  # the authenticated uploader (a hospital's PACS) performed the study: it owns it
            for series in study["series"]:
                series["performer"] = [{"function": PERFORMER_ROLE, "actor": {"reference": owner}}]
        result = update.update(ctx, "ImagingStudy", study_uid, study, RequestInfo(base_url=base_url))
        assert result.version is not None
        return study

    def study(self, instances: list[dict[str, Any]], patient: str, endpoint: str, zone: str) -> dict[str, Any]:
        first = instances[0]["meta"]
        series_map: dict[str, list[dict[str, Any]]] = {}
        for instance in instances:
            series_map.setdefault(instance["series"], []).append(instance)
        series, modalities, item = [], [], None
        for series_uid, members in sorted(series_map.items(), key=lambda kv: kv[1][0].get("series_number") or 0):
            meta = members[0]["meta"]
            modality = _v(meta, "00080060") or "OT"
            if modality not in modalities:
                modalities.append(modality)
            entry: dict[str, Any] = {"uid": series_uid, "modality": {"system": DCM, "code": modality},
                                     "numberOfInstances": len(members)}
            if _v(meta, "00200011") is not None:
                entry["number"] = int(_v(meta, "00200011"))
            if _v(meta, "0008103E"):
                entry["description"] = str(_v(meta, "0008103E"))
            part = _v(meta, "00180015")
            if part:
                entry["bodySite"] = self._body_site(str(part))
                contrast = bool(_v(meta, "00180010"))
                item = item or self._item(modality, str(part), contrast)
            if _v(meta, "00200060") in ("L", "R"):
                entry["laterality"] = {"system": "http://snomed.info/sct",
                                       "code": {"L": "7771000", "R": "24028007"}[_v(meta, "00200060")],
                                       "display": {"L": "Left", "R": "Right"}[_v(meta, "00200060")]}
            ordered = sorted(members, key=lambda m: m.get("instance_number") or 0)
            entry["instance"] = [self._instance(m) for m in ordered]
            series.append(entry)
        study: dict[str, Any] = {
            "resourceType": "ImagingStudy", "id": instances[0]["study"], "status": "available",
            "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{instances[0]['study']}"}],
            "subject": {"reference": patient},
            "modality": [{"system": DCM, "code": m} for m in modalities],
            "numberOfSeries": len(series), "numberOfInstances": len(instances),
            "endpoint": [{"reference": endpoint}], "series": series}
        accession = _v(first, "00080050")
        if accession:
            study["identifier"].append({"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                             "code": "ACSN"}]}, "value": str(accession)})
        started = _when(_v(first, "00080020"), _v(first, "00080030"), _v(first, "00080201"), zone)
        if started:
            study["started"] = started
        if _v(first, "00081030"):
            study["description"] = str(_v(first, "00081030"))
        referrer = _person_name(first, "00080090")
        if referrer:
            study["referrer"] = {"display": referrer}
        if item:
            study["procedureCode"] = [{"coding": [item]}]
        return study

    def _instance(self, document: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"uid": document["_id"], "sopClass": {"system": "urn:ietf:rfc:3986",
                                                                   "code": f"urn:oid:{document['sop_class']}"}}
        if document.get("instance_number") is not None:
            out["number"] = document["instance_number"]
        return out

    def _body_site(self, part: str) -> dict[str, Any]:
        for match in self._terminology.translate(self._snomed_map, DCM, part.upper(), False, {}):
            return match["concept"]
        return {"system": DCM, "code": part.upper()}

    def _item(self, modality: str, part: str, contrast: bool) -> dict[str, Any] | None:
        dependencies = {self._dicom + "BodyPartExamined": part.upper(), self._dicom + "contrast": str(contrast).lower()}
        for match in self._terminology.translate(self._dicom_map, DCM, modality, False, dependencies):
            return match["concept"]
        return None

    def _patient(self, ctx: FhirContext, meta: dict[str, Any], base_url: str, owner: str | None = None) -> str:
        """Match the Patient by national ID, else by PatientID + issuer; create it when absent."""
        patient_id = str(_v(meta, "00100020") or "").strip()
        issuer = str(_v(meta, "00100021") or "").strip()
        if not patient_id:
            return self._patient_of_order(ctx, meta)
        identifiers = [{"system": f"urn:dicom:issuer:{issuer}" if issuer else "urn:dicom:patient-id",
                        "value": patient_id}]
        if is_national_id(patient_id):
            identifiers.insert(0, {"system": NATIONAL_ID, "value": patient_id.upper()})
        for identifier in identifiers:
            found = find(ctx, "Patient", [("identifier", f"{identifier['system']}|{identifier['value']}")], 2)
            if len(found) == 1:
                return f"Patient/{found[0].id}"
        patient: dict[str, Any] = {"resourceType": "Patient", "identifier": identifiers}
        if owner:
            patient["managingOrganization"] = {"reference": owner}
        name = _person_name(meta, "00100010")
        if name:
            family, _, given = name.partition("^")
            patient["name"] = [{"text": name.replace("^", " ").strip(), **({"family": family} if family else {}),
                                **({"given": [g for g in given.split("^") if g]} if given else {})}]
        gender = {"M": "male", "F": "female", "O": "other"}.get(str(_v(meta, "00100040") or ""))
        if gender:
            patient["gender"] = gender
        born = _when(_v(meta, "00100030"), None, None, "")
        if born:
            patient["birthDate"] = born
        first = identifiers[0]
        result = create.create(ctx, "Patient", patient, RequestInfo(
            base_url=base_url, if_none_exist=f"identifier={first['system']}|{first['value']}"))
        assert result.version is not None
        return f"Patient/{result.version.id}"

    @staticmethod
    def _patient_of_order(ctx: FhirContext, meta: dict[str, Any]) -> str:
        """An object without PatientID belongs to the patient of the order its AccessionNumber names (a
        ServiceRequest whose identifier or requisition is that number, one order, subject a Patient); else it cannot
        be attached to anyone and is refused: a result nobody can find would never be recognized."""
        accession = str(_v(meta, "00080050") or "").strip()
        orders = []
        if accession:
            value = accession.replace("\\", "\\\\").replace(",", "\\,").replace("$", "\\$")
            orders = find(ctx, "ServiceRequest", [("identifier", value)], 2) or \
                find(ctx, "ServiceRequest", [("requisition", value)], 2)
        subjects = {(loads(o.text).get("subject") or {}).get("reference") for o in orders if o.text}
        if len(orders) == 1 and len(subjects) == 1:
            subject = subjects.pop()
            if isinstance(subject, str) and subject.startswith("Patient/"):
                return subject
        raise FhirError.of(422, "required", "No PatientID, and no single order has its AccessionNumber.")

    def _endpoint(self, ctx: FhirContext, base_url: str) -> str:
        endpoint = {"resourceType": "Endpoint", "id": "dicomweb", "status": "active",
                    "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                                       "code": "dicom-wado-rs"},
                    "payloadType": [{"text": "DICOM"}], "payloadMimeType": ["application/dicom"],
                    "address": base_url.rsplit("/fhir", 1)[0] + "/dicomweb"}
        current = ctx.store.versions.read_current("Endpoint", "dicomweb")
        if current is None or current.deleted:
            update.update(ctx, "Endpoint", "dicomweb", endpoint, RequestInfo(base_url=base_url))
        return "Endpoint/dicomweb"
