"""Bearer JWT verification with the algorithms fixed by configuration, never by the token.

RS256/ES256 keys come from a JWKS (file or URL, selected by `kid`); HS256 with a shared secret is for
development only. `alg: none`, an algorithm the key type does not match (the HS/RS confusion), an unknown
`kid`, a bad signature, and a wrong or missing exp/nbf/iss/aud all fail the same way: 401.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from ..config import Settings

log = logging.getLogger(__name__)

ASYMMETRIC = ("RS256", "ES256")
REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub")
NUMERIC_DATES = ("exp", "nbf", "iat")


class InvalidToken(Exception):
    """The token cannot be trusted; the message is safe to show the caller."""


@dataclass(frozen=True)
class VerifiedToken:
    claims: dict[str, Any]


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.issuer = settings.auth_issuer
        self.audience = settings.base_url
        self.leeway = settings.auth_leeway_s
        self.secret = settings.auth_hs256_secret
        self._jwks_url: str | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._client: jwt.PyJWKClient | None = None
        source = settings.auth_jwks
        if source and source.startswith(("https://", "http://")):
            self._client = jwt.PyJWKClient(source, cache_keys=True, lifespan=300, timeout=5)
        elif source:
            self._keys = load_jwks(Path(source))

    def verify(self, token: str) -> VerifiedToken:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The bearer token is not a well-formed JWT.") from None
        alg = header.get("alg")
        if alg == "HS256" and self.secret:
            key: Any = self.secret
        elif alg in ASYMMETRIC and (self._keys or self._client):
            key = self._asymmetric_key(header, alg)
        else:
            raise InvalidToken(f"Tokens signed with {str(alg)[:20]!r} are not accepted here.")
        try:
            claims = jwt.decode(token, key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                                leeway=self.leeway, options={"require": list(REQUIRED_CLAIMS)})
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The bearer token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("The bearer token is not valid yet (nbf/iat in the future).") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("The bearer token was issued for another audience.") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("The bearer token comes from an issuer this server does not trust.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"The bearer token lacks the '{exc.claim}' claim.") from None
        except jwt.PyJWTError:
            raise InvalidToken("The bearer token's signature or claims are invalid.") from None
        for name in NUMERIC_DATES:  # RFC 7519: NumericDate is a JSON number (a string "1700000000" is not)
            if name in claims and (isinstance(claims[name], bool) or not isinstance(claims[name], int | float)):
                raise InvalidToken(f"The bearer token's '{name}' claim is not a NumericDate (a number of seconds).")
        return VerifiedToken(claims)

    def _asymmetric_key(self, header: dict[str, Any], alg: str) -> Any:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("The bearer token names no key id (kid).")
        if self._client is not None:
            try:
                jwk = self._client.get_signing_key(kid)
            except jwt.PyJWKClientError:
                raise InvalidToken("The bearer token's key id is not in the trusted key set.") from None
        else:
            found = self._keys.get(kid)
            if found is None:
                raise InvalidToken("The bearer token's key id is not in the trusted key set.")
            jwk = found
        if jwk.algorithm_name != alg:
            raise InvalidToken(f"Key {kid[:40]} is for {jwk.algorithm_name}, not {alg}.")
        return jwk.key


def load_jwks(path: Path) -> dict[str, jwt.PyJWK]:
    """Keys by kid; only RS256 and ES256 public keys are kept (a symmetric key in a JWKS is ignored)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    keys: dict[str, jwt.PyJWK] = {}
    for raw in data.get("keys", []):
        kty, kid = raw.get("kty"), raw.get("kid")
        alg = raw.get("alg") or {"RSA": "RS256", "EC": "ES256"}.get(kty)
        if kid and alg in ASYMMETRIC and kty in ("RSA", "EC"):
            keys[kid] = jwt.PyJWK(raw, algorithm=alg)
        else:
            log.warning("JWKS key %s ignored: only RS256/ES256 keys with a kid are trusted", kid)
    return keys


def issue_development_token(settings: Settings, subject: str, scope: str, organization: str | None = None,
                            practitioner: str | None = None, patient: str | None = None,
                            lifetime_s: int = 3600, **extra: Any) -> str:
    """An HS256 token for the embedded demo (`fhirserver token`), signed with FHIRSERVER_AUTH_HS256_SECRET."""
    import time

    if not settings.auth_hs256_secret:
        raise ValueError("set FHIRSERVER_AUTH_HS256_SECRET (32+ characters) to issue development tokens")
    now = int(time.time())
    claims: dict[str, Any] = {"iss": settings.auth_issuer, "aud": settings.base_url, "sub": subject,
                              "iat": now, "nbf": now, "exp": now + lifetime_s, "scope": scope, **extra}
    for name, value in (("organization", organization), ("fhirUser", practitioner), ("patient", patient)):
        if value:
            claims[name] = value
    return jwt.encode(claims, settings.auth_hs256_secret, algorithm="HS256")
