"""Settings, read once from FHIRSERVER_* environment variables and validated at start-up."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The canonical base written in the shipped artifacts (terminology/, profiles/); replaced at load time by
# FHIRSERVER_CANONICAL_BASE so a region can publish them under its own URL.
DEFAULT_CANONICAL = "http://hr.example.org/fhir"


class SettingsError(ValueError):
    """A configuration value is missing or malformed; raised before the server starts."""


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to know about its environment. Immutable once built."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    threads: int = 8
    data_dir: Path = field(default_factory=lambda: Path("data"))
    mongodb_uri: str | None = None
    mongodb_db: str = "fhirserver"
    base_url: str | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    default_count: int = 50
    max_count: int = 1000
    profiles_dir: Path = PROJECT_ROOT / "profiles"
    terminology_dir: Path = PROJECT_ROOT / "terminology"
    store_timeout_ms: int = 10_000
    log_level: str = "INFO"
    timezone: str = "+08:00"
    max_bundle_entries: int = 10_000
    canonical_base: str = DEFAULT_CANONICAL
    enforce_profiles: tuple[str, ...] = ()
    reorder_rule: str = "enforce"
    max_dicom_bytes: int = 512 * 1024 * 1024
    lookup_index: str = "auto"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from FHIRSERVER_* variables; keyword overrides (CLI flags) win."""
        env = dict(os.environ if env is None else env)
        settings = cls(
            host=env.get("FHIRSERVER_HOST", cls.host),
            port=_int(env, "FHIRSERVER_PORT", cls.port, 0),
            workers=_int(env, "FHIRSERVER_WORKERS", cls.workers, 1),
            threads=_int(env, "FHIRSERVER_THREADS", cls.threads, 1),
            data_dir=Path(env.get("FHIRSERVER_DATA_DIR") or "data"),
            mongodb_uri=env.get("FHIRSERVER_MONGODB_URI") or None,
            mongodb_db=env.get("FHIRSERVER_MONGODB_DB") or cls.mongodb_db,
            base_url=(env.get("FHIRSERVER_BASE_URL") or "").rstrip("/") or None,
            max_body_bytes=_int(env, "FHIRSERVER_MAX_BODY_BYTES", cls.max_body_bytes, 1024),
            default_count=_int(env, "FHIRSERVER_DEFAULT_COUNT", cls.default_count, 1),
            max_count=_int(env, "FHIRSERVER_MAX_COUNT", cls.max_count, 1),
            store_timeout_ms=_int(env, "FHIRSERVER_STORE_TIMEOUT_MS", cls.store_timeout_ms, 100),
            log_level=env.get("FHIRSERVER_LOG_LEVEL", cls.log_level).upper(),
            timezone=env.get("FHIRSERVER_TIMEZONE") or cls.timezone,
            max_bundle_entries=_int(env, "FHIRSERVER_MAX_BUNDLE_ENTRIES", cls.max_bundle_entries, 1000),
            canonical_base=(env.get("FHIRSERVER_CANONICAL_BASE") or DEFAULT_CANONICAL).rstrip("/"),
            reorder_rule=(env.get("FHIRSERVER_REORDER_RULE") or "enforce").lower(),
            max_dicom_bytes=_int(env, "FHIRSERVER_MAX_DICOM_BYTES", cls.max_dicom_bytes, 1024),
            lookup_index=(env.get("FHIRSERVER_LOOKUP_INDEX") or "auto").lower(),
            enforce_profiles=tuple(p.strip() for p in (env.get("FHIRSERVER_ENFORCE_PROFILES") or "").split(",")
                                   if p.strip()),
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "data_dir" in clean:
            clean["data_dir"] = Path(str(clean["data_dir"]))
        settings = replace(settings, **clean)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.default_count > self.max_count:
            raise SettingsError("FHIRSERVER_DEFAULT_COUNT cannot exceed FHIRSERVER_MAX_COUNT")
        if not self.mongodb_db.replace("_", "").replace("-", "").isalnum():
            raise SettingsError(f"FHIRSERVER_MONGODB_DB {self.mongodb_db!r} is not a valid database name")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise SettingsError("FHIRSERVER_BASE_URL must start with http:// or https://")
        if self.lookup_index not in ("auto", "on", "off"):
            raise SettingsError("FHIRSERVER_LOOKUP_INDEX is auto, on or off")
        if self.reorder_rule not in ("enforce", "warn", "off"):
            raise SettingsError("FHIRSERVER_REORDER_RULE is enforce, warn or off")
        if not re.fullmatch(r"[+-]\d{2}:\d{2}", self.timezone):
            raise SettingsError(f"FHIRSERVER_TIMEZONE must look like +08:00, got {self.timezone!r}")
        if not (self.profiles_dir / "fhir.schema.v4.json").is_file():
            raise SettingsError(f"profiles folder {self.profiles_dir} lacks fhir.schema.v4.json")
