"""Settings, read once from FHIRSERVER_* environment variables and validated at start-up."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The canonical base written in the shipped artifacts (terminology/, profiles/); replaced at load time by
# FHIRSERVER_CANONICAL_BASE so a region can publish them under its own URL.
DEFAULT_CANONICAL = "http://hr.example.org/fhir"


class SettingsError(ValueError):
    """A configuration value is missing or malformed; raised before the server starts."""


T = TypeVar("T")


def _read(env: dict[str, str], name: str, convert: Callable[[str], T], kind: str) -> T | None:
    """The variable converted, None when unset or empty; a SettingsError naming it when it does not convert."""
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        return convert(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    value = _read(env, name, int, "an integer")
    if value is None:
        return default
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: dict[str, str], name: str, default: float) -> float:
    value = _read(env, name, float, "a number")
    if value is None:
        return default
    if not 0 < value <= 600:
        raise SettingsError(f"{name} must be between 0 and 600 seconds, got {value}")
    return value


def _flag(env: dict[str, str], name: str) -> bool:
    raw = (env.get(name) or "off").strip().lower()
    if raw not in ("on", "off"):
        raise SettingsError(f"{name} is on or off, got {raw[:20]!r}")
    return raw == "on"


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
    auth: str = "on"                      # on | off; off only when asked for explicitly
    auth_issuer: str | None = None
    auth_jwks: str | None = None          # a JWKS file path or an https URL (RS256 / ES256 keys)
    auth_hs256_secret: str | None = None  # development only
    auth_token_endpoint: str | None = None          # the identity provider's, advertised to SMART clients
    auth_authorization_endpoint: str | None = None  # likewise, for apps that log a user in (authorization code)
    auth_dev_login: bool = False          # a development SMART authorization server at /auth/dev (HS256 only)
    auth_leeway_s: int = 60
    rate_limit: int = 3000                # requests per client per minute and worker process; 0 = off
    audit_ship_ms: int = 200              # how long spooled access events gather before they are chained
    cors_origins: tuple[str, ...] = ()
    node_id: str = "local"
    region: str | None = None             # GB/T 2260 code of this node's province, e.g. 510000
    peer_timeout_s: float = 5.0
    peer_cooldown_s: float = 30.0          # how long a failing peer is skipped before one probe
    hook_timeout_s: float = 5.0            # how long a Subscription's endpoint may take to answer a notification
    hook_retry_s: float = 2.0              # the first retry's delay; it doubles with each failed attempt
    hook_attempts: int = 5                 # failed attempts after which a Subscription is put in error
    identity_systems: tuple[str, ...] = ("urn:oid:2.16.156.10011.1.3",)  # the national resident ID (GB 11643)
    consent_capture: str = "attested"     # attested (by a practitioner of the viewing hospital) | patient
    consent_days: int = 30                # the longest a captured consent lets a hospital look (and the default)

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
            auth=(env.get("FHIRSERVER_AUTH") or "on").lower(),
            auth_issuer=env.get("FHIRSERVER_AUTH_ISSUER") or None,
            auth_jwks=env.get("FHIRSERVER_AUTH_JWKS") or None,
            auth_hs256_secret=env.get("FHIRSERVER_AUTH_HS256_SECRET") or None,
            auth_token_endpoint=env.get("FHIRSERVER_AUTH_TOKEN_ENDPOINT") or None,
            auth_authorization_endpoint=env.get("FHIRSERVER_AUTH_AUTHORIZATION_ENDPOINT") or None,
            auth_dev_login=_flag(env, "FHIRSERVER_AUTH_DEV_LOGIN"),
            auth_leeway_s=_int(env, "FHIRSERVER_AUTH_LEEWAY", cls.auth_leeway_s, 0),
            rate_limit=_int(env, "FHIRSERVER_RATE_LIMIT", cls.rate_limit, 0),
            audit_ship_ms=_int(env, "FHIRSERVER_AUDIT_SHIP_MS", cls.audit_ship_ms, 0),
            cors_origins=tuple(o.strip().rstrip("/") for o in (env.get("FHIRSERVER_CORS_ORIGINS") or "").split(",")
                               if o.strip()),
            node_id=env.get("FHIRSERVER_NODE_ID") or cls.node_id,
            region=env.get("FHIRSERVER_REGION") or None,
            peer_timeout_s=_float(env, "FHIRSERVER_PEER_TIMEOUT", cls.peer_timeout_s),
            peer_cooldown_s=_float(env, "FHIRSERVER_PEER_COOLDOWN", cls.peer_cooldown_s),
            hook_timeout_s=_float(env, "FHIRSERVER_HOOK_TIMEOUT", cls.hook_timeout_s),
            hook_retry_s=_float(env, "FHIRSERVER_HOOK_RETRY", cls.hook_retry_s),
            hook_attempts=_int(env, "FHIRSERVER_HOOK_ATTEMPTS", cls.hook_attempts, 1),
            identity_systems=tuple(s.strip() for s in (env.get("FHIRSERVER_IDENTITY_SYSTEMS") or "").split(",")
                                   if s.strip()) or cls.identity_systems,
            consent_capture=(env.get("FHIRSERVER_CONSENT_CAPTURE") or cls.consent_capture).lower(),
            consent_days=_int(env, "FHIRSERVER_CONSENT_DAYS", cls.consent_days, 1),
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
        if self.reorder_rule not in ("enforce", "warn", "off"):
            raise SettingsError("FHIRSERVER_REORDER_RULE is enforce, warn or off")
        if self.consent_capture not in ("attested", "patient"):
            raise SettingsError("FHIRSERVER_CONSENT_CAPTURE is attested or patient")
        if self.consent_days > 366:
            raise SettingsError("FHIRSERVER_CONSENT_DAYS is at most 366: a consent to look is for a visit, not for "
                                "good")
        self._validate_auth()
        if self.region is not None and not re.fullmatch(r"\d{6}", self.region):
            raise SettingsError(f"FHIRSERVER_REGION must be a 6-digit GB/T 2260 code, got {self.region!r}")
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,64}", self.node_id):
            raise SettingsError("FHIRSERVER_NODE_ID is 1-64 letters, digits, '.' or '-'")
        if not re.fullmatch(r"[+-]\d{2}:\d{2}", self.timezone):
            raise SettingsError(f"FHIRSERVER_TIMEZONE must look like +08:00, got {self.timezone!r}")
        if not (self.profiles_dir / "fhir.schema.v4.json").is_file():
            raise SettingsError(f"profiles folder {self.profiles_dir} lacks fhir.schema.v4.json")

    def _validate_auth(self) -> None:
        if self.auth not in ("on", "off"):
            raise SettingsError("FHIRSERVER_AUTH is on or off")
        if self.auth_leeway_s > 300:
            raise SettingsError("FHIRSERVER_AUTH_LEEWAY is at most 300 seconds")
        for name, url in (("FHIRSERVER_AUTH_TOKEN_ENDPOINT", self.auth_token_endpoint),
                          ("FHIRSERVER_AUTH_AUTHORIZATION_ENDPOINT", self.auth_authorization_endpoint)):
            if url is not None and not url.startswith(("https://", "http://")):
                raise SettingsError(f"{name} must be an absolute http:// or https:// URL, got {url[:60]!r}")
        if self.auth == "off":
            return
        if not (self.auth_jwks or self.auth_hs256_secret):
            raise SettingsError("FHIRSERVER_AUTH=on needs FHIRSERVER_AUTH_JWKS (RS256/ES256 keys) or, for "
                                "development, FHIRSERVER_AUTH_HS256_SECRET; or set FHIRSERVER_AUTH=off explicitly")
        if self.auth_hs256_secret is not None and len(self.auth_hs256_secret) < 32:
            raise SettingsError("FHIRSERVER_AUTH_HS256_SECRET must be at least 32 characters")
        if not self.auth_issuer:
            raise SettingsError("FHIRSERVER_AUTH=on needs FHIRSERVER_AUTH_ISSUER (the expected 'iss' claim)")
        if not self.base_url:
            raise SettingsError("FHIRSERVER_AUTH=on needs FHIRSERVER_BASE_URL (tokens' expected audience)")
        if self.auth_dev_login and not self.auth_hs256_secret:
            raise SettingsError("FHIRSERVER_AUTH_DEV_LOGIN=on signs with FHIRSERVER_AUTH_HS256_SECRET: set it (32+ "
                                "characters), or configure a real identity provider instead")
        if self.auth_dev_login and (self.auth_token_endpoint or self.auth_authorization_endpoint):
            raise SettingsError("FHIRSERVER_AUTH_DEV_LOGIN=on is its own authorization server: leave "
                                "FHIRSERVER_AUTH_TOKEN_ENDPOINT and FHIRSERVER_AUTH_AUTHORIZATION_ENDPOINT unset")
