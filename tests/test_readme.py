"""The README's generated search table matches the parameters the server really registers."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import search_table  # noqa: E402


def test_readme_search_table_is_current():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{search_table.START}\n{search_table.table()}\n{search_table.END}" in readme, \
        "README.md is out of date: run python tools/search_table.py --write"
