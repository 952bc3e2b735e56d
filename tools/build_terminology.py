"""Build terminology/ and our profiles/ artifacts from tools/catalog_tables.py.

    python tools/build_terminology.py
The JSON it writes is the data the server loads (and what vendors download); this script only exists so
that 300+ concepts, their maps and scopes stay consistent. All canonical URLs start with
DEFAULT_CANONICAL; the server rewrites them when FHIRSERVER_CANONICAL_BASE is set.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

import catalog_tables as t  # noqa: E402

from fhirserver.config import DEFAULT_CANONICAL  # noqa: E402

C = DEFAULT_CANONICAL
ITEM = f"{C}/CodeSystem/hr-item"
DATE = "2026-11-23"
ILLUSTRATIVE = ("Validity windows not published by a region, minimum institution levels and reference prices "
                "(CNY) are illustrative defaults that each region replaces in its scope ValueSet or its copy of "
                "this file. LOINC codes are those checked in the project's domain notes plus other widely used "
                "codes; verify them against your LOINC release before production use.")


def write(folder: str, resource: dict[str, Any]) -> None:
    path = ROOT / folder / f"{resource['resourceType']}-{resource['id']}.json"
    path.write_text(json.dumps(resource, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def base(resource_type: str, rid: str, name: str, title: str, description: str) -> dict[str, Any]:
    return {"resourceType": resource_type, "id": rid, "url": f"{C}/{resource_type}/{rid}", "version": "2026.1",
            "name": name, "title": title, "status": "active", "date": DATE, "publisher": "fhirserver project",
            "description": description}


def prop(code: str, kind: str, value: Any) -> dict[str, Any]:
    key = {"code": "valueCode", "integer": "valueInteger", "decimal": "valueDecimal", "boolean": "valueBoolean",
           "string": "valueString", "dateTime": "valueDateTime", "Coding": "valueCoding"}[kind]
    return {"code": code, key: value}


ITEM_PROPERTIES = [
    ("category", "code", "lab, imaging, ecg or pathology"),
    ("modality", "code", "DICOM modality of an imaging item (DX, CT, MR, US, MG)"),
    ("body-site", "code", "Body site of an imaging item (DICOM BodyPartExamined)"),
    ("specimen", "string", "Specimen of a laboratory item"),
    ("contrast", "boolean", "Whether the imaging item uses contrast"),
    ("validity-days", "integer", "Recognition validity window in days, counted from the report date (default)"),
    ("min-level", "integer", "Minimum institution level (1-3) whose result is recognized (default)"),
    ("price", "decimal", "Reference price in CNY, for savings statistics (illustrative)"),
    ("loinc", "Coding", "LOINC code of the item, where one exists"),
    ("status", "code", "active or retired"),
    ("effective-from", "dateTime", "Date the item was admitted to the catalog"),
    ("effective-to", "dateTime", "Date the item was retired from the catalog"),
]


SYNONYM = {"system": "http://snomed.info/sct", "code": "900000000000013009", "display": "Synonym"}


def item_concept(code: str, zh: str, en: str, props: list[dict[str, Any]], definition: str,
                 synonyms: tuple[str, ...] = ()) -> dict[str, Any]:
    """An item with its Chinese and English names and the other words doctors type for it (designation use
    Synonym), so that $expand filter=MRI or 胸片 finds it."""
    designations = [{"language": "en", "value": en}, {"language": "zh", "value": zh}]
    for word in dict.fromkeys((*synonyms, *t.ITEM_SYNONYMS.get(code, ()))):
        if word not in (zh, en):
            language = "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in word) else "en"
            designations.append({"language": language, "use": SYNONYM, "value": word})
    return {"code": code, "display": zh, "definition": definition, "designation": designations, "property": props}


def build_items() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The hr-item CodeSystem and a flat list of (code, info) rows for scopes and maps."""
    rows: list[dict[str, Any]] = []
    lab_children = []
    for group, zh, en, specimen in t.LAB_GROUPS:
        items = []
        for n, (kind, izh, ien, loinc, days, level, price) in enumerate(t.LAB_ITEMS[group], 1):
            code = f"{group}-{n:03d}"
            props = [prop("category", "code", "lab"), prop("specimen", "string", specimen),
                     prop("validity-days", "integer", days), prop("min-level", "integer", level),
                     prop("price", "decimal", price), prop("status", "code", "active"),
                     prop("effective-from", "dateTime", "2022-07-01")]
            if loinc:
                props.append(prop("loinc", "Coding", {"system": "http://loinc.org", "code": loinc}))
            panel = "panel" if kind == "P" else "test"
            items.append(item_concept(code, izh, ien, props, f"Laboratory {panel}: {ien} ({izh})."))
            rows.append({"code": code, "zh": izh, "category": "lab", "group": group, "loinc": loinc, "days": days,
                         "panel": kind == "P"})
        lab_children.append({"code": group, "display": zh, "definition": f"{en} ({zh}).",
                             "designation": [{"language": "en", "value": en}],
                             "property": [prop("category", "code", "lab")], "concept": items})
    img_children = []
    for mod, group, zh, en, _dicom, days, level, price, price_c in t.MODALITIES:
        items = []
        for site, part, szh, sen, offered in t.BODY_SITES:
            if mod not in offered.split():
                continue
            variants = [(False, price)] + ([(True, price_c)] if price_c else [])
            for contrast, cost in variants:
                code = f"{mod}-{site}" + ("-C" if contrast else "")
                izh = _imaging_name(mod, szh, contrast)
                ien = f"{sen} {en}" + (" with contrast" if contrast else "")
                items.append(_imaging_concept(code, izh, ien, mod, part, contrast, days, level, cost,
                                              t.IMAGING_LOINC.get((mod, site, contrast)), sen))
                rows.append({"code": code, "zh": izh, "category": "imaging", "group": group, "modality": mod,
                             "part": part, "contrast": contrast, "days": days, "loinc": ""})
        for code, sgroup, izh, ien, dmod, part, contrast, sdays, slevel, cost in t.SPECIAL_IMAGING:
            if sgroup == group:
                items.append(_imaging_concept(code, izh, ien, dmod, part, contrast, sdays, slevel, cost,
                                              t.SPECIAL_LOINC.get(code)))
                rows.append({"code": code, "zh": izh, "category": "imaging", "group": group, "modality": dmod,
                             "part": part, "contrast": contrast, "days": sdays, "loinc": "", "special": True})
        img_children.append({"code": group, "display": zh, "definition": f"{en} ({zh}).",
                             "designation": [{"language": "en", "value": en}],
                             "property": [prop("category", "code", "imaging")], "concept": items})
    others: dict[str, list[dict[str, Any]]] = {"ECG": [], "PATH": []}
    for category, code, izh, ien, loinc, days, level, price in t.OTHER_ITEMS:
        props = [prop("category", "code", category.lower() if category == "ECG" else "pathology"),
                 prop("validity-days", "integer", days), prop("min-level", "integer", level),
                 prop("price", "decimal", price), prop("status", "code", "active"),
                 prop("effective-from", "dateTime", "2024-01-01")]
        others[category].append(item_concept(code, izh, ien, props, f"{ien} ({izh})."))
        rows.append({"code": code, "zh": izh, "category": category.lower(), "group": category, "days": days,
                     "loinc": loinc})
    # A retired item: the list changes over time (admission and exit of items).
    retired = item_concept("DX-SKULL-OLD", "头颅正侧位(旧编码)", "Skull PA and lateral (retired code)", [
        prop("category", "code", "imaging"), prop("modality", "code", "DX"), prop("body-site", "code", "SKULL"),
        prop("validity-days", "integer", 30), prop("min-level", "integer", 1), prop("price", "decimal", 80),
        prop("status", "code", "retired"), prop("effective-from", "dateTime", "2022-07-01"),
        prop("effective-to", "dateTime", "2025-01-01")], "Retired 2025-01-01; replaced by DX-SKULL.")
    img_children[0]["concept"].append(retired)
    concepts = [
        {"code": "LAB", "display": "检验", "definition": "Laboratory tests (检验).",
         "designation": [{"language": "en", "value": "Laboratory"}], "concept": lab_children},
        {"code": "IMG", "display": "检查-影像", "definition": "Imaging examinations (影像检查).",
         "designation": [{"language": "en", "value": "Imaging"}], "concept": img_children},
        {"code": "ECG", "display": "心电图", "definition": "Electrocardiography.",
         "designation": [{"language": "en", "value": "ECG"}], "concept": others["ECG"]},
        {"code": "PATH", "display": "病理", "definition": "Pathology.",
         "designation": [{"language": "en", "value": "Pathology"}], "concept": others["PATH"]},
    ]
    count = sum(1 for r in rows) + 1  # the retired item too
    cs = base("CodeSystem", "hr-item", "HRRecognizedItem", "互认项目 Recognized items",
              f"Platform item codes (互认编码) of results recognized between hospitals: {count} items in a "
              f"hierarchy category -> sub-category -> item, with properties used by the recognition rules. "
              f"{ILLUSTRATIVE}")
    cs.update({"caseSensitive": True, "hierarchyMeaning": "is-a", "valueSet": f"{C}/ValueSet/hr-item",
               "content": "complete", "count": _count(concepts),
               "property": [{"code": c, "uri": f"{C}/CodeSystem/hr-item#{c}", "type": k, "description": d}
                            for c, k, d in ITEM_PROPERTIES],
               "concept": concepts})
    return cs, rows


_MOD_ZH = {"DX": "DR", "CT": "CT", "MR": "MR", "US": "超声", "MG": "钼靶"}


def _imaging_name(mod: str, site_zh: str, contrast: bool) -> str:
    if mod in ("CT", "MR"):
        return f"{site_zh}{_MOD_ZH[mod]}{'增强' if contrast else '平扫'}"
    return f"{site_zh}{_MOD_ZH[mod]}"


def _imaging_synonyms(mod: str, zh: str, site_en: str, contrast: bool) -> tuple[str, ...]:
    """The item's name with each of the modality's other words: 胸部MR平扫 -> 胸部核磁平扫, 胸部磁共振平扫; Chest MRI."""
    chinese, english = t.MODALITY_SYNONYMS.get(mod, ((), ()))
    own = _MOD_ZH[mod]
    words = [zh.replace(own, word, 1) for word in chinese if own in zh]
    words += [f"{site_en} {word}" + (" with contrast" if contrast else "") for word in english]
    return tuple(words)


def _imaging_concept(code: str, zh: str, en: str, mod: str, part: str, contrast: bool, days: int, level: int,
                     price: int, loinc: str | None, site_en: str | None = None) -> dict[str, Any]:
    props = [prop("category", "code", "imaging"), prop("modality", "code", mod), prop("body-site", "code", part),
             prop("contrast", "boolean", contrast), prop("validity-days", "integer", days),
             prop("min-level", "integer", level), prop("price", "decimal", price), prop("status", "code", "active"),
             prop("effective-from", "dateTime", "2022-07-01")]
    if loinc:
        props.append(prop("loinc", "Coding", {"system": "http://loinc.org", "code": loinc}))
    synonyms = _imaging_synonyms(mod, zh, site_en, contrast) if site_en else ()
    return item_concept(code, zh, en, props, f"Imaging examination: {en} ({zh}).", synonyms)


def simple_codesystem(rid: str, name: str, title: str, description: str, concepts: list[dict[str, Any]],
                      properties: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    cs = base("CodeSystem", rid, name, title, description)
    cs.update({"caseSensitive": True, "content": "complete", "hierarchyMeaning": "is-a",
               "count": _count(concepts), "concept": concepts})
    if properties:
        cs["property"] = properties
    return cs


def _count(concepts: list[dict[str, Any]]) -> int:
    return sum(1 + _count(c.get("concept", [])) for c in concepts)


def valueset(rid: str, name: str, title: str, description: str, includes: list[dict[str, Any]]) -> dict[str, Any]:
    vs = base("ValueSet", rid, name, title, description)
    vs["compose"] = {"include": includes}
    return vs


EFFECTIVE = "http://hl7.org/fhir/StructureDefinition/resource-effectivePeriod"


def effective(vs: dict[str, Any], start: str | None, end: str | None = None, version: str | None = None,
              rid: str | None = None) -> dict[str, Any]:
    """The list version's effective period (R4 has no ValueSet.effectivePeriod: the core extension carries it)."""
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    vs = {**vs, **({"version": version} if version else {}), **({"id": rid} if rid else {})}
    keys = list(vs)
    vs["extension"] = [*vs.get("extension", []), {"url": EFFECTIVE, "valuePeriod": period}]
    return {k: vs[k] for k in ["resourceType", "id", "extension", *keys[2:]] if k in vs}


def level_direction(pairs: dict[int, tuple[int, ...]]) -> list[dict[str, Any]]:
    """A region's level-direction rule: for each requesting level, the performer levels whose results it recognizes."""
    return [{"url": f"{C}/StructureDefinition/hr-level-direction", "extension": [
        {"url": "requester", "valueInteger": requester}, {"url": "performer", "valueInteger": performer}]}
        for requester, performers in pairs.items() for performer in performers]


def scope(rid: str, region: str, title: str, codes: list[str], description: str,
          overrides: dict[str, int] | None = None, regions: tuple[str, ...] = ()) -> dict[str, Any]:
    concepts = []
    for code in codes:
        concept: dict[str, Any] = {"code": code}
        if overrides and code in overrides:
            concept["extension"] = [{"url": f"{C}/StructureDefinition/hr-validity-days",
                                     "valueInteger": overrides[code]}]
        concepts.append(concept)
    vs = valueset(rid, f"HRScope{region}", title, description, [{"system": ITEM, "concept": concepts}])
    vs["useContext"] = [{"code": {"system": "http://terminology.hl7.org/CodeSystem/usage-context-type",
                                  "code": "focus"},
                         "valueCodeableConcept": {"coding": [{"system": f"{C}/CodeSystem/hr-region", "code": r}]}}
                        for r in (regions or (region,))]
    return vs


def _with(vs: dict[str, Any], extensions: list[dict[str, Any]]) -> dict[str, Any]:
    return {**vs, "extension": [*vs.get("extension", []), *extensions]}


def main() -> None:
    (ROOT / "terminology").mkdir(exist_ok=True)
    items, rows = build_items()
    write("terminology", items)
    active = [r for r in rows]
    lab = [r["code"] for r in active if r["category"] == "lab"]
    imaging = [r["code"] for r in active if r["category"] == "imaging"]
    write("terminology", valueset("hr-scope-national", "HRScopeNational", "全国互认项目 National scope",
                                  "Every active recognized item.",
                                  [{"system": ITEM, "filter": [{"property": "status", "op": "=", "value": "active"}]}]))
    sichuan = lab[:16] + imaging[:53]
    write("terminology", effective(scope("hr-scope-510000", "510000", "四川省互认项目 Sichuan scope", sichuan,
                                         "Sichuan (July 2022 work plan): 16 laboratory and 53 imaging items. The item "
                                         "choice is illustrative; the counts follow the published plan."),
                                   "2022-07-01"))
    chongqing = lab[:20] + imaging[:80]
    chongqing_2025 = lab[:20] + imaging[:60]
    write("terminology", effective(scope(
        "hr-scope-500000", "500000", "重庆市互认项目 Chongqing scope", chongqing_2025,
        "Chongqing, the 2025 list: 60 imaging items and 20 laboratory items (illustrative choice), replaced on "
        "2026-01-01 by version 2026.1. Chongqing reminds doctors of a repeat within 3 months, so radiography (DR) "
        "results are recognized for 90 days here, overriding the 30-day default.",
        {c: 90 for c in chongqing_2025 if c.startswith("DX-")}), None, "2025-12-31", "2025.1", "hr-scope-500000-2025.1"))
    write("terminology", effective(scope(
        "hr-scope-500000", "500000", "重庆市互认项目 Chongqing scope", chongqing,
        "Chongqing: 80 standardised imaging items and 20 laboratory items (illustrative choice), in force from "
        "2026-01-01 (the 2025 list, version 2025.1, had 60 imaging items). Chongqing reminds doctors of a repeat "
        "within 3 months, so radiography (DR) results are recognized for 90 days here, overriding the 30-day default.",
        {c: 90 for c in chongqing if c.startswith("DX-")}), "2026-01-01"))
    guizhou = lab[:79] + imaging
    write("terminology", effective(_with(scope(
        "hr-scope-520000", "520000", "贵州省互认项目 Guizhou scope", guizhou,
        "Guizhou: 79 laboratory items and every imaging item of the catalog (the province reports 397 imaging "
        "items; the catalog holds fewer). Level direction: level 2 and level 3 institutions recognize each "
        "other and level 1 recognizes every level; a level-2 or level-3 hospital recognizes a level-1 result "
        "only inside a close medical alliance (the alliance scope)."),
        level_direction({1: (1, 2, 3), 2: (2, 3), 3: (2, 3)})), "2022-01-01"))
    hunan = (lab + imaging)[:213]
    write("terminology", effective(scope("hr-scope-430000", "430000", "湖南省互认项目 Hunan scope", hunan,
                                         "Hunan (Changde 2025 list size): 213 items, illustrative choice."),
                                   "2025-01-01"))
    chuanyu = list(dict.fromkeys(sichuan + chongqing + lab[20:60] + imaging[80:120]))[:161]
    write("terminology", effective(scope("hr-scope-chuanyu", "510000", "川渝互认项目 Sichuan-Chongqing agreement",
                                         chuanyu, "Sichuan-Chongqing cross-province agreement: 161 items recognized "
                                         "in 935 hospitals. Applies to results used in one province and performed "
                                         "in the other.", regions=("510000", "500000")), "2022-01-01"))
    alliance = valueset("hr-scope-alliance", "HRScopeAlliance", "医联体内互认 Close medical alliance",
                        "Inside a close medical alliance (紧密型医联体: 城市医疗集团, 县域医共体) every active item is "
                        "recognized among the members (national target by the end of 2025), whatever their levels: "
                        "the item's minimum level and the region's level direction do not apply (基层检查、上级诊断). "
                        "Network membership, quality control and the validity window still do. Applies when the "
                        "performer and the requester are members of the same alliance (OrganizationAffiliation "
                        "code alliance-member).",
                        [{"system": ITEM, "filter": [{"property": "status", "op": "=", "value": "active"}]}])
    alliance["useContext"] = [{"code": {"system": "http://terminology.hl7.org/CodeSystem/usage-context-type",
                                        "code": "focus"},
                               "valueCodeableConcept": {"coding": [{"system": f"{C}/CodeSystem/hr-affiliation",
                                                                    "code": "alliance-member"}]}}]
    alliance["extension"] = [{"url": f"{C}/StructureDefinition/hr-min-level-applies", "valueBoolean": False}]
    write("terminology", effective(alliance, "2025-01-01"))
    write("terminology", valueset("hr-item", "HRItem", "全部互认项目编码 All item codes",
                                  "Every code of CodeSystem hr-item: categories, sub-categories, active and retired "
                                  "items (the CodeSystem's all-codes value set).", [{"system": ITEM}]))
    for category, zh in (("lab", "检验"), ("imaging", "影像检查"), ("ecg", "心电图"), ("pathology", "病理")):
        write("terminology", valueset(f"hr-category-{category}", f"HRCategory{category.title()}",
                                      f"{zh}项目 {category} items", f"Every {category} item.",
                                      [{"system": ITEM, "filter": [{"property": "category", "op": "=",
                                                                   "value": category}]}]))
    build_small_codesystems()
    build_conceptmaps(rows)
    build_bodypart_map()
    build_profiles()
    print(f"{len(rows)} items; scopes: sichuan {len(sichuan)}, chongqing {len(chongqing)}, guizhou {len(guizhou)}, "
          f"hunan {len(hunan)}, chuanyu {len(chuanyu)}")


def build_small_codesystems() -> None:
    national = [
        ("condition-changed", "病情变化", "The condition changed; the earlier result no longer matches symptoms or diagnosis.",
         "您的病情有了变化，之前的结果已不能反映您现在的情况"),
        ("fast-changing", "变化较快", "The item changes quickly as the disease evolves.",
         "这项指标变化较快，医生需要知道它现在的数值"),
        ("before-major-intervention", "重大措施前", "Before surgery, transfusion or another major intervention.",
         "在手术、输血等重要治疗之前，需要最新的结果来保证安全"),
        ("emergency", "急诊急救", "Emergency or rescue.", "急诊抢救时，医生需要马上掌握您此刻的情况"),
        ("appraisal", "司法/伤残/病退鉴定", "Forensic, disability or retirement appraisal.", "鉴定按规定需要重新检查"),
        ("other", "其他确需复查", "Other cases that genuinely need a repeat; a free-text explanation is required.",
         "医生认为确实需要重新检查，会当面向您说明原因"),
    ]
    regional = [
        ("patient-request", "患者要求复查", "The patient asks for a repeat after explanation.", "500000",
         "您在听取说明后要求重新检查"),
        ("qc-failed", "质控不合格", "The earlier result failed quality assessment.", "520000",
         "之前那份结果没有通过质量评估"),
        ("result-outdated", "结果过期", "The earlier result is considered outdated by the region.", "510000",
         "之前的结果时间较久，已不适合作为参考"),
    ]
    not_recognized = [
        ("outside-window", "超出有效期", "The result is older than the item's validity window.",
         "之前的结果已超过可以直接使用的时间"),
        ("not-in-scope", "不在互认范围", "The item is not on the recognized list of the scope where it is used.",
         "这项检查目前不在本地可以直接使用的项目清单里"),
        ("performer-not-admitted", "机构未纳入互认", "The performing institution was not admitted to the network on the result date.",
         "做这项检查的医院当时没有加入（或已经退出）结果互认"),
        ("performer-not-qc", "机构质控未通过", "The performing institution is not quality-control accredited for the category.",
         "做这项检查的医院在这类检查上还没有通过质量评估"),
        ("performer-level-too-low", "机构级别不足", "The performing institution's level is below the item's minimum.",
         "这项检查需要由更高级别的医院来做，结果才能直接使用"),
        ("level-direction", "机构等级方向不符", "Under the region's level-direction rule the requesting institution's level "
         "does not recognize results of the performer's level (outside a close medical alliance).",
         "按本地规定，本院不能直接采用这家医院这一级别的结果"),
        ("status-not-final", "结果非终审", "Preliminary, cancelled or entered-in-error results are never recognized.",
         "之前的结果还不是正式报告（或已经作废）"),
        ("superseded", "已被更新", "A later version or result supersedes this one.",
         "您有一份更新的同类结果，医生会参考最新的那份"),
        ("no-consent", "未获患者同意", "The patient's consent to share the result is missing.",
         "您还没有同意本院查看其他医院的结果"),
    ]
    scope_property = [{"code": "scope", "type": "code",
                       "description": "national, or the GB/T 2260 code of the region that added the code"},
                      {"code": "free-text-required", "type": "boolean",
                       "description": "The doctor must explain the reason in text"},
                      {"code": "patient-text", "type": "string",
                       "description": "The reason in plain Chinese for the patient (no codes, no jargon): what the "
                                      "doctor's explanation to the patient starts from"}]
    def patient(text: str) -> dict[str, str]:
        return {"code": "patient-text", "valueString": text}

    exception_concepts = [
        {"code": "exception", "display": "可不互认情形", "definition": "Situations in which the doctor may repeat a "
         "test (国卫医发〔2022〕6号); the doctor explains to the patient and the reason is recorded.",
         "concept": [{"code": c, "display": d, "definition": e, "property": [
             {"code": "scope", "valueCode": "national"},
             {"code": "free-text-required", "valueBoolean": c == "other"}, patient(pt)]} for c, d, e, pt in national]
         + [{"code": c, "display": d, "definition": e + " Region-specific addition, not a national code.",
             "property": [{"code": "scope", "valueCode": r}, patient(pt)]} for c, d, e, r, pt in regional]},
        {"code": "not-recognized", "display": "不予互认原因", "definition": "Why a prior result is not recognizable.",
         "concept": [{"code": c, "display": d, "definition": e, "property": [patient(pt)]}
                     for c, d, e, pt in not_recognized]},
    ]
    write("terminology", simple_codesystem(
        "hr-exception", "HRException", "互认例外与不予互认原因 Exceptions and non-recognition reasons",
        "The six national situations that justify a repeat (with region-specific additions marked by their "
        "scope) and the reasons a result is not recognized.", exception_concepts, scope_property))
    write("terminology", valueset("hr-exception-reasons", "HRExceptionReasons", "复查理由 Re-order reasons",
                                  "Reasons a doctor may give for re-ordering despite a recognizable result.",
                                  [{"system": f"{C}/CodeSystem/hr-exception",
                                    "filter": [{"property": "concept", "op": "descendent-of", "value": "exception"}]}]))
    levels = [{"code": str(n), "display": zh, "definition": f"Level {n} institution ({zh}).",
               "concept": [{"code": f"{n}{g}", "display": f"{zh}{gz}", "definition": f"Level {n}, grade {g}."}
                           for g, gz in (("A", "甲等"), ("B", "乙等"), ("C", "丙等"))]}
              for n, zh in ((1, "一级"), (2, "二级"), (3, "三级"))]
    write("terminology", simple_codesystem("hr-institution-level", "HRInstitutionLevel", "医疗机构级别 Institution level",
                                           "Tiers 一级/二级/三级 with grades 甲/乙/丙 below them.", levels))
    write("terminology", valueset("hr-institution-level", "HRInstitutionLevel", "医疗机构级别 Institution level",
                                  "All institution levels and grades.",
                                  [{"system": f"{C}/CodeSystem/hr-institution-level"}]))
    write("terminology", simple_codesystem("hr-detected-issue", "HRDetectedIssue", "互认提示 Recognition prompt",
                                           "Codes of the DetectedIssue raised when an ordered test has a prior result.", [
        {"code": "recognizable", "display": "有可互认结果", "definition": "A recognizable prior result exists."},
        {"code": "not-recognizable", "display": "有结果但不可互认",
         "definition": "A prior result exists but is not recognizable (see the reasons)."}]))
    write("terminology", simple_codesystem("hr-affiliation", "HRAffiliation", "互认网络关系 Network affiliation",
                                           "OrganizationAffiliation.code values of the recognition network.", [
        {"code": "network-member", "display": "互认网络成员", "definition": "Admitted to the recognition network."},
        {"code": "qc-accredited", "display": "质控认证", "definition":
         "Passed quality control for the category given in OrganizationAffiliation.specialty."},
        {"code": "alliance-member", "display": "医联体成员", "definition":
         "Member of the close medical alliance named by OrganizationAffiliation.organization (an Organization of "
         "type alliance in hr-organization-type), for the period given."}]))
    write("terminology", simple_codesystem("hr-organization-type", "HROrganizationType", "组织类型 Organization type",
                                           "Organization.type of the organizations that are not institutions: a close "
                                           "medical alliance and its kinds.", [
        {"code": "alliance", "display": "紧密型医联体", "definition": "A close medical alliance: its members recognize "
         "every item among themselves.", "concept": [
            {"code": "urban-medical-group", "display": "城市医疗集团", "definition": "An urban medical group."},
            {"code": "county-medical-community", "display": "县域医共体",
             "definition": "A county medical community (county hospital with township health centres)."}]}]))
    write("terminology", valueset("hr-organization-type", "HROrganizationType", "组织类型 Organization type",
                                  "All organization type codes.", [{"system": f"{C}/CodeSystem/hr-organization-type"}]))
    write("terminology", simple_codesystem("hr-evaluation", "HREvaluation", "外院结果评价 Evaluation of outside results",
                                           "A doctor's coded evaluation of another institution's result that they "
                                           "looked at (Sichuan: doctors evaluate the results they use, and the "
                                           "platform counts it). Poor evaluations go to the quality-control centre; "
                                           "they never exclude a result by themselves.", [
        {"code": "acceptable", "display": "质量合格", "definition": "The result's quality is acceptable."},
        {"code": "poor", "display": "质量存疑", "definition": "A problem with the result (the codes below).", "concept": [
            {"code": "image-quality-insufficient", "display": "图像质量不足",
             "definition": "The images are not good enough to diagnose from."},
            {"code": "report-incomplete", "display": "报告不完整", "definition": "The report lacks required content."},
            {"code": "inconsistent-with-condition", "display": "结果与病情不符",
             "definition": "The result is inconsistent with the patient's condition."},
            {"code": "other", "display": "其他问题", "definition": "Another problem; the doctor explains it in text."}]}]))
    write("terminology", valueset("hr-evaluation", "HREvaluation", "外院结果评价 Evaluation of outside results",
                                  "Every evaluation code.", [{"system": f"{C}/CodeSystem/hr-evaluation"}]))
    write("terminology", valueset("hr-affiliation", "HRAffiliation", "互认网络关系 Network affiliation",
                                  "All affiliation codes.", [{"system": f"{C}/CodeSystem/hr-affiliation"}]))
    write("terminology", simple_codesystem("hr-qc-status", "HRQcStatus", "质控状态 Quality-control status",
                                           "Quality-control evaluation status of an institution for a category.", [
        {"code": c, "display": d, "definition": e} for c, d, e in (
            ("passed", "质控合格", "Passed the evaluation."), ("failed", "质控不合格", "Failed the evaluation."),
            ("pending", "待评估", "Not evaluated yet."), ("suspended", "暂停互认", "Recognition suspended."))]))
    write("terminology", simple_codesystem("hr-identity", "HRIdentity", "身份核验 Identity check",
                                           "Server-computed tags (meta.tag) of Patient records whose national "
                                           "resident ID cannot link them to the person's other records.", [
        {"code": c, "display": d, "definition": e} for c, d, e in (
            ("invalid-id", "身份证号无效", "The resident ID fails GB 11643 (shape, check character or birth date)."),
            ("contradicted-id", "身份证号与记录矛盾",
             "The record's birthDate or gender contradicts what its resident ID encodes."))]))
    write("terminology", simple_codesystem("hr-decision", "HRDecision", "互认决定 Recognition decision",
                                           "Outcome of a recognition decision for one prior result.", [
        {"code": c, "display": d, "definition": e} for c, d, e in (
            ("recognized", "予以互认", "The prior result is recognized; no repeat."),
            ("not-recognized", "不予互认", "The prior result is not recognizable."),
            ("repeat-justified", "有理由复查", "Recognizable, but the doctor repeats for a recorded exception."))]))
    provinces = [r for r in t.REGIONS if r[0].endswith("0000")]
    regions = []
    for code, zh, en in provinces:
        children = [{"code": c, "display": z, "designation": [{"language": "en", "value": e}]}
                    for c, z, e in t.REGIONS if c != code and c[:2] == code[:2]]
        concept: dict[str, Any] = {"code": code, "display": zh, "designation": [{"language": "en", "value": en}]}
        if children:
            concept["concept"] = children
        regions.append(concept)
    write("terminology", simple_codesystem("hr-event", "HREvent", "互认事件 Recognition events",
                                           "AuditEvent.type of the events the statistics count.", [
        {"code": c, "display": d, "definition": e} for c, d, e in (
            ("view", "跨机构调阅", "A result of another institution was looked up for a patient."),
            ("duplicate-prompt", "重复检查提示", "The doctor was told at ordering that a recognizable result exists."),
            ("recognition", "结果互认", "A doctor used a prior result instead of a new test (a repeat avoided)."),
            ("override", "复查(有理由)", "A doctor re-ordered despite a recognizable result, giving a reason."),
            ("evaluation", "外院结果评价", "A doctor evaluated another institution's result (code in hr-evaluation)."))]))
    marks = [("hr-scope-national", "HR", "National recognition mark"), ("hr-scope-510000", "川HR", "Sichuan"),
             ("hr-scope-500000", "渝HR", "Chongqing"), ("hr-scope-520000", "黔HR", "Guizhou"),
             ("hr-scope-430000", "湘HR", "Hunan"), ("hr-scope-chuanyu", "川渝HR", "Sichuan-Chongqing"),
             ("hr-scope-alliance", "医联体HR", "Close medical alliance")]
    write("terminology", simple_codesystem("hr-mark", "HRMark", "互认标识 Recognition mark",
                                           "The mark printed on recognized reports (2022 Measures: 'HR'), one code per "
                                           "scope; computed by the server, never taken from the sender.", [
        {"code": c, "display": d, "definition": f"{e}: the report's item is recognized in {c}."} for c, d, e in marks]))
    write("terminology", simple_codesystem("hr-region", "HRRegion", "行政区划 Administrative regions (GB/T 2260)",
                                           "GB/T 2260 administrative division codes of the regions used here.", regions))
    write("terminology", valueset("hr-region", "HRRegion", "行政区划 Administrative regions",
                                  "All regions.", [{"system": f"{C}/CodeSystem/hr-region"}]))


def build_conceptmaps(rows: list[dict[str, Any]]) -> None:
    loinc = base("ConceptMap", "hr-loinc-to-item", "HRLoincToItem", "LOINC -> 互认项目",
                 "LOINC codes to recognized items (from the items' loinc property).")
    loinc.update({"sourceUri": "http://loinc.org", "targetUri": f"{C}/ValueSet/hr-scope-national",
                  "group": [{"source": "http://loinc.org", "target": ITEM, "element": [
                      {"code": r["loinc"], "target": [{"code": r["code"], "display": r["zh"], "equivalence": "equivalent",
                                                       "comment": _loinc_source(r["loinc"])}]}
                      for r in rows if r.get("loinc")] + _imaging_loinc()}]})
    write("terminology", loinc)
    for index, (hid, zh, en, _region, lab_prefix, img_prefix) in enumerate(t.HOSPITALS):
        lab_rows = [r for r in rows if r["category"] == "lab"][index::1][: 60 + 10 * index]
        img_rows = [r for r in rows if r["category"] == "imaging"][: 80 + 20 * index]
        cm = base("ConceptMap", f"hr-local-{hid}-to-item", f"HRLocal{hid.title().replace('-', '')}",
                  f"{zh}本地编码 -> 互认项目", f"Local LIS/PACS codes of {en} ({zh}, demo) to recognized items.")
        cm.update({"sourceUri": f"http://{hid}.example.cn/fhir/ValueSet/local-codes",
                   "targetUri": f"{C}/ValueSet/hr-scope-national", "group": [
            {"source": f"http://{hid}.example.cn/CodeSystem/lis", "target": ITEM, "element": [
                {"code": f"{lab_prefix}{n:04d}", "display": r["zh"],
                 "target": [{"code": r["code"], "equivalence": "equivalent"}]} for n, r in enumerate(lab_rows, 1)]},
            {"source": f"http://{hid}.example.cn/CodeSystem/pacs", "target": ITEM, "element": [
                {"code": f"{img_prefix}{n:04d}", "display": r["zh"],
                 "target": [{"code": r["code"], "equivalence": "equivalent"}]} for n, r in enumerate(img_rows, 1)]}]})
        write("terminology", cm)
    dicom = base("ConceptMap", "hr-dicom-to-item", "HRDicomToItem", "DICOM -> 互认项目",
                 "DICOM Modality with BodyPartExamined and contrast to imaging items, for studies ingested from DICOM.")
    by_modality: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["category"] != "imaging" or r.get("special"):
            continue
        dicom_codes = next(m[4] for m in t.MODALITIES if m[0] == r["modality"])
        for dicom_code in dicom_codes:
            by_modality.setdefault(dicom_code, []).append({
                "code": r["code"], "display": r["zh"], "equivalence": "equivalent",
                "dependsOn": [{"property": f"{C}/dicom#BodyPartExamined", "value": r["part"]},
                              {"property": f"{C}/dicom#contrast", "value": "true" if r["contrast"] else "false"}]})
    dicom.update({"sourceUri": "http://dicom.nema.org/resources/ontology/DCM",
                  "targetUri": f"{C}/ValueSet/hr-category-imaging",
                  "group": [{"source": "http://dicom.nema.org/resources/ontology/DCM", "target": ITEM,
                             "element": [{"code": m, "target": targets} for m, targets in by_modality.items()]}]})
    write("terminology", dicom)


# DICOM BodyPartExamined -> SNOMED CT body structure, for ImagingStudy.series.bodySite (only codes we are sure of).
BODY_PART_SNOMED = {"HEAD": ("69536005", "Head structure"), "BRAIN": ("12738006", "Brain structure"),
                    "NECK": ("45048000", "Neck structure"), "CHEST": ("51185008", "Thoracic structure"),
                    "ABDOMEN": ("113345001", "Abdominal structure"), "PELVIS": ("12921003", "Pelvic structure"),
                    "HEART": ("80891009", "Heart structure"), "LIVER": ("10200004", "Liver structure"),
                    "KIDNEY": ("64033007", "Kidney structure"), "KNEE": ("72696002", "Knee region structure")}


def build_bodypart_map() -> None:
    cm = base("ConceptMap", "hr-dicom-bodypart-to-snomed", "HRDicomBodyPartToSnomed", "DICOM 检查部位 -> SNOMED CT",
              "DICOM BodyPartExamined values to SNOMED CT body structures (the values whose code is certain).")
    cm.update({"sourceUri": "http://dicom.nema.org/resources/ontology/DCM", "targetUri": "http://snomed.info/sct?fhir_vs",
               "group": [{"source": "http://dicom.nema.org/resources/ontology/DCM", "target": "http://snomed.info/sct",
                          "element": [{"code": part, "target": [{"code": code, "display": display, "equivalence": "equivalent"}]}
                                      for part, (code, display) in BODY_PART_SNOMED.items()]}]})
    write("terminology", cm)


def _loinc_source(code: str) -> str:
    """Where a mapping comes from, as the ConceptMap says it per element."""
    if code in t.CHECKED_LOINC:
        return "Source: checked in the project's domain notes."
    if code in t.CITED_LOINC:
        return "Source: commonly cited code listed in the project's domain notes (verify against your LOINC release)."
    if code in t.IMAGING_LOINC.values() or code in t.SPECIAL_LOINC.values():
        return ("Source: the project's match of the item to a LOINC radiology term by its long common name "
                "(LOINC/RSNA Radiology Playbook naming; verify against your LOINC release).")
    return ("Source: the project's match of the item to the LOINC long common name (verify against your LOINC "
            "release).")


def _imaging_loinc() -> list[dict[str, Any]]:
    out = []
    pairs = [(f"{mod}-{site}" + ("-C" if contrast else ""), code) for (mod, site, contrast), code in
             t.IMAGING_LOINC.items()] + list(t.SPECIAL_LOINC.items())
    for item, code in pairs:
        out.append({"code": code, "target": [{"code": item, "equivalence": "equivalent",
                                              "comment": _loinc_source(code)}]})
    return out


def build_profiles() -> None:
    from profile_tables import profiles

    for resource in profiles(C):
        write("profiles", resource)


if __name__ == "__main__":
    main()
