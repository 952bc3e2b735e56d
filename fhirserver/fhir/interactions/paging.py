"""_count handling shared by history and search."""

from __future__ import annotations

from ...config import Settings
from ..errors import bad_request


def page_size(raw: str | None, settings: Settings) -> int:
    if raw is None or raw == "":
        return settings.default_count
    if not raw.isdigit() or len(raw) > 9:
        raise bad_request(f"_count must be a whole number, got {raw[:20]!r}.", "_count")
    return min(int(raw), settings.max_count)
