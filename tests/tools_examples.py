"""The example files' generator (tools/make_examples.py), importable by tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from make_examples import ct_slice


def example_slice(study: int, number: int) -> bytes:
    """One 64×64 CT slice of the examples' kind: a disc of 40 HU (stored 1064, intercept -1024) in air."""
    return ct_slice(study, number)
