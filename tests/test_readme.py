"""The README's generated search table matches the parameters the server really registers."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import readme_tables  # noqa: E402


def test_readme_generated_tables_are_current():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for start, body, end in readme_tables.generated():
        assert f"{start}\n{body}\n{end}" in readme, \
            "README.md is out of date: run python tools/readme_tables.py --write"
