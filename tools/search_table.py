"""Print (or --write into README.md) the search parameter tables, generated from profiles/.

    python tools/search_table.py --write
tests/test_readme.py fails when the README's copy differs from what this prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhirserver.fhir.resource_types import SUPPORTED_TYPES  # noqa: E402
from fhirserver.fhir.search.indexer import INDEXABLE_TYPES  # noqa: E402
from fhirserver.fhir.search.parameters import SearchParameterRegistry  # noqa: E402
from fhirserver.fhir.search.query import MODIFIERS  # noqa: E402

START, END = "<!-- search-table:start -->", "<!-- search-table:end -->"
FORMS = {
    "token": "`system|code`, `code`, `|code`, `system|`",
    "reference": "`Type/id`, `id`, absolute URL; chains `.param`; `:Type`",
    "string": "starts with; case, accent and full-width insensitive",
    "date": "prefixes `eq ne gt lt ge le sa eb ap`, precision of the value",
    "number": "prefixes, implicit precision (`100` = [99.5, 100.5))",
    "quantity": "`[prefix]number|system|code` or `[prefix]number||unit`",
    "uri": "exact",
    "composite": "`first$second`, e.g. `http://loinc.org|718-7$gt150`",
}


def table() -> str:
    registry = SearchParameterRegistry(ROOT / "profiles", INDEXABLE_TYPES)
    lines = ["| type | value forms | modifiers |", "|---|---|---|"]
    for kind, forms in FORMS.items():
        modifiers = ", ".join(f"`:{m}`" for m in sorted(MODIFIERS[kind]))
        if kind == "reference":
            modifiers += ", `:[Type]`"
        lines.append(f"| {kind} | {forms} | {modifiers} |")
    lines += ["", "| resource | parameters (all types above; `_id` on every type) |", "|---|---|"]
    for rtype in SUPPORTED_TYPES:
        names = sorted(c for c in registry.for_type(rtype) if c != "_id")
        lines.append(f"| {rtype} | {', '.join(f'`{n}`' for n in names)} |")
    return "\n".join(lines)


def main() -> None:
    generated = f"{START}\n{table()}\n{END}"
    if "--write" in sys.argv:
        readme = ROOT / "README.md"
        text = readme.read_text(encoding="utf-8")
        head, _, rest = text.partition(START)
        _, _, tail = rest.partition(END)
        readme.write_text(head + generated + tail, encoding="utf-8")
    else:
        print(generated)


if __name__ == "__main__":
    main()
