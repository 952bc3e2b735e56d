"""The collections and MongoDB indexes the repository needs, as data.

Per resource type: `<Type>` holds the current version (`_id` = logical id), `<Type>_history` every
version (`_id` = "<id>/<version>", unique: that key is what makes concurrent writers safe).
`_locks` serialises conditional writes on the same criteria.
"""

from __future__ import annotations

from dataclasses import dataclass

LOCKS = "_locks"
JOURNAL = "_journal"
GENERATIONS = "_generations"  # change counters (store/registry_cache.py)
CDS_CARDS = "_cds_cards"


@dataclass(frozen=True)
class IndexSpec:
    name: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False


def field_name(code: str) -> str:
    """Search parameter code -> stored field name. Hyphens become underscores: the embedded engine
    cannot index a field whose name contains '-' (FHIR codes use '-' and never '_' inside)."""
    return code.replace("-", "_")


def index_field(code: str) -> str:
    return f"sp.{field_name(code)}"


def history_collection(resource_type: str) -> str:
    return f"{resource_type}_history"


def collection_indexes(resource_types: tuple[str, ...],
                       indexed_parameters: dict[str, list[str]]) -> dict[str, list[IndexSpec]]:
    out: dict[str, list[IndexSpec]] = {LOCKS: [], JOURNAL: [], CDS_CARDS: [], GENERATIONS: [], "_lookup": [],
                                       "_lookup_meta": []}
    for rtype in resource_types:
        out[rtype] = [IndexSpec(f"sp_{field_name(code)}", ((index_field(code), 1),))
                      for code in indexed_parameters.get(rtype, [])]
        out[history_collection(rtype)] = [
            IndexSpec("rid_vid", (("rid", 1), ("vid", -1)), unique=True),
            # Not (ts, _id): the embedded engine breaks every insert once `_id` is in a compound index.
            IndexSpec("ts", (("ts", -1),)),
        ]
    return out
