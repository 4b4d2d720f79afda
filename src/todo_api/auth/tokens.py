"""Bearer-token verification: HS256 with a shared secret, or JWKS keys (EdDSA, ES256, RS256, PS256).

Pure by design: no FastAPI and no database here, so the middleware, the CLI and the
tests all call the same code. Every refusal is a ``TokenError`` whose ``code`` is
stable and whose ``description`` is safe to send back (ASCII, no double quote or
backslash, so it fits inside a ``WWW-Authenticate`` header; never echoes the token).
Fetching, parsing and caching the JWKS key set lives in ``todo_api.auth.jwks``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import httpx
import jwt

from todo_api.auth.jwks import JwksCache, KeyLookupError, PublicKey, check_jwks_url
from todo_api.auth.principal import (
    MAX_TOKEN_LENGTH,
    RESERVED_USER_IDS,
    Principal,
    TokenError,
    bearer_token,
)

if TYPE_CHECKING:
    from todo_api.config import Settings

__all__ = [
    "RESERVED_USER_IDS",
    "AuthConfig",
    "Principal",
    "TokenError",
    "TokenVerifier",
    "bearer_token",
]

logger = logging.getLogger("todo_api.auth")

MAX_SUBJECT_LENGTH = 255

ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "ES256", "RS256", "PS256"})

_OPAQUE_DESCRIPTION = (
    "The bearer token is not a JWT (it does not have three dot-separated parts). "
    "This is probably a Better Auth session token; send a JWT from the Better Auth "
    "JWT plugin instead (authClient.token() on the client, or GET /api/auth/token)."
)

# One PyJWS instance; enforcing minimum key lengths turns PyJWT's warning into a refusal.
_JWS = jwt.PyJWS(options={"verify_signature": True, "enforce_minimum_key_length": True})


@dataclass(frozen=True)
class AuthConfig:
    """Where keys come from and which ``iss``/``aud`` each key family must carry."""

    hs256_secret: bytes | None
    issuer: str | None
    audience: str | None
    jwks_url: str | None
    jwks_issuer: str | None
    jwks_audience: str | None
    leeway_seconds: int = 30
    jwks_refresh_cooldown_seconds: float = 30.0
    jwks_ttl_seconds: float = 600.0
    jwks_timeout_seconds: float = 3.0

    def __post_init__(self) -> None:
        if self.jwks_url is not None:
            check_jwks_url(self.jwks_url)
        # Above 60 s a key rotated in at the provider could be refused for over a minute.
        if not 0 <= self.jwks_refresh_cooldown_seconds <= 60:
            raise ValueError("jwks_refresh_cooldown_seconds must be between 0 and 60")
        if self.leeway_seconds < 0 or self.jwks_ttl_seconds < 0 or self.jwks_timeout_seconds <= 0:
            raise ValueError("leeway, JWKS TTL and JWKS timeout must not be negative")

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthConfig:
        """Apply the DESIGN.md rules: JWKS from ``JWT_JWKS_URL`` or ``BETTER_AUTH_URL``;
        HS256 from ``JWT_SECRET``, or ``BETTER_AUTH_SECRET`` only when there is no JWKS.

        Raises ``ValueError`` for a JWKS URL that is not https outside loopback.
        """
        base_url = settings.better_auth_url.rstrip("/") if settings.better_auth_url else None
        jwks_url = settings.jwt_jwks_url or (f"{base_url}/api/auth/jwks" if base_url else None)
        secret: bytes | None = None
        if settings.jwt_secret is not None:
            secret = settings.jwt_secret.get_secret_value().encode()
        elif settings.better_auth_secret is not None and jwks_url is None:
            # With a JWKS, Better Auth's own cookie-signing secret must not quietly
            # become a bearer-token key as well.
            secret = settings.better_auth_secret.get_secret_value().encode()
        return cls(
            hs256_secret=secret,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            jwks_url=jwks_url,
            jwks_issuer=settings.jwt_issuer or base_url,
            jwks_audience=settings.jwt_audience or base_url,
        )

    @property
    def configured(self) -> bool:
        """True when at least one key source (secret or JWKS) is present."""
        return self.hs256_secret is not None or self.jwks_url is not None


def _b64url_json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)
        value = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise TokenError(
            "token_malformed", f"The token {what} is not base64url-encoded JSON."
        ) from None
    if not isinstance(value, dict):
        raise TokenError("token_malformed", f"The token {what} is not a JSON object.")
    return value


def _numeric_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int to Python but not a NumericDate; huge ints are fine (they compare
    # exactly) but would overflow math.isfinite, hence the float-only finiteness test.
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise TokenError(
            "token_claims_invalid", f"The {name} claim must be a number of seconds since 1970."
        )
    return value


def _is_text(value: str) -> bool:
    """Whether `value` is Unicode text every layer can encode (no lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_claim(value: object) -> str | None:
    """An optional profile claim (`email`, `name`): kept when it is encodable text,
    otherwise dropped, as if the token did not carry it."""
    return value if isinstance(value, str) and _is_text(value) else None


def _check_subject(sub: object) -> str:
    if not isinstance(sub, str):
        raise TokenError(
            "token_subject_invalid", "The token has no sub claim, or it is not a string."
        )
    if not 1 <= len(sub) <= MAX_SUBJECT_LENGTH:
        raise TokenError("token_subject_invalid", "The sub claim must be 1 to 255 characters long.")
    if not _is_text(sub):
        # JSON can spell lone surrogates ("\ud800"), which no UTF-8 layer below (rate-limit
        # keys, log lines, the database) can encode.
        raise TokenError("token_subject_invalid", "The sub claim is not valid Unicode text.")
    if any(ord(ch) < 0x20 or unicodedata.category(ch) == "Cc" for ch in sub):
        raise TokenError("token_subject_invalid", "The sub claim contains control characters.")
    if sub in RESERVED_USER_IDS:
        raise TokenError(
            "token_subject_invalid", "The sub claim is a reserved path word, never a user id."
        )
    return sub


def _check_claims(
    claims: dict[str, Any], now: float, leeway: float, issuer: str | None, audience: str | None
) -> tuple[Principal, float]:
    """Validate registered claims; returns the principal and its ``exp`` for the cache."""
    exp = _numeric_claim(claims, "exp")
    if exp is None:
        raise TokenError("token_claims_invalid", "The token has no exp claim; it must expire.")
    if now >= exp + leeway:
        raise TokenError("token_expired", "The token has expired; get a fresh one.")
    for claim in ("nbf", "iat"):
        moment = _numeric_claim(claims, claim)
        if moment is not None and moment > now + leeway:
            raise TokenError(
                "token_not_yet_valid",
                f"The {claim} claim is in the future; check the clocks of issuer and API.",
            )
    if issuer is not None and claims.get("iss") != issuer:
        raise TokenError(
            "token_issuer_invalid",
            "The iss claim is not the configured issuer (JWT_ISSUER, else BETTER_AUTH_URL).",
        )
    if audience is not None:
        aud = claims.get("aud")
        if not (aud == audience or (isinstance(aud, list) and audience in aud)):
            raise TokenError(
                "token_audience_invalid",
                "The aud claim does not name this API "
                "(the configured JWT_AUDIENCE, else BETTER_AUTH_URL).",
            )
    user_id = _check_subject(claims.get("sub"))
    principal = Principal(
        user_id=user_id,
        email=_text_claim(claims.get("email")),
        name=_text_claim(claims.get("name")),
        claims=MappingProxyType(claims),
    )
    return principal, exp


def _verify_signature(token: str, key: bytes | PublicKey, alg: str) -> dict[str, Any]:
    """Check the signature with exactly one algorithm and key; returns the claims."""
    try:
        decoded = _JWS.decode_complete(token, key=key, algorithms=[alg])
    except jwt.InvalidSignatureError:
        raise TokenError("token_signature_invalid", "The token signature is not valid.") from None
    except jwt.InvalidKeyError:
        logger.exception("a configured key was refused by PyJWT for %s", alg)
        raise TokenError("token_signature_invalid", "The token signature is not valid.") from None
    except jwt.PyJWTError:
        raise TokenError("token_malformed", "The token is not a well-formed JWS.") from None
    payload = decoded["payload"]
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):
        raise TokenError("token_malformed", "The token payload is not JSON.") from None
    if not isinstance(claims, dict):
        raise TokenError("token_malformed", "The token payload is not a JSON object.")
    return claims


class TokenVerifier:
    """Verifies bearer tokens against an ``AuthConfig``; holds the JWKS and result caches.

    ``clock`` (wall time, for ``exp``/``nbf``/``iat``) and ``cache_size`` (0 disables the
    cache of verified tokens) exist for tests and benchmarks.
    """

    def __init__(
        self,
        config: AuthConfig,
        *,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        cache_size: int = 4096,
    ) -> None:
        self._config = config
        self._clock = clock
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._jwks: JwksCache | None = None
        if config.jwks_url is not None:
            self._jwks = JwksCache(
                config.jwks_url,
                ttl_seconds=config.jwks_ttl_seconds,
                cooldown_seconds=config.jwks_refresh_cooldown_seconds,
                timeout_seconds=config.jwks_timeout_seconds,
                http_client=http_client,
                # A removed key must stop working at once, cached results included.
                on_change=self._cache.clear,
            )

    @property
    def jwks_status(self) -> str:
        """``ok`` with a usable JWKS key, ``unavailable`` without one, else ``not_configured``."""
        return "not_configured" if self._jwks is None else self._jwks.status

    @property
    def jwks_refresh_count(self) -> int:
        """How many JWKS fetches have been started (0 without a JWKS)."""
        return 0 if self._jwks is None else self._jwks.refresh_count

    @property
    def _inflight(self) -> bool:
        # Read by tests that wait for a background JWKS refresh to finish.
        return self._jwks is not None and self._jwks.refreshing

    async def start(self) -> None:
        """Fetch the JWKS once so the first request does not wait; never raises."""
        if self._jwks is not None:
            await self._jwks.start()

    async def aclose(self) -> None:
        """Stop any JWKS fetch in flight and close the HTTP client if we created it."""
        if self._jwks is not None:
            await self._jwks.aclose()

    async def verify(self, token: str) -> Principal:
        """Return the principal of a valid token; raise ``TokenError`` for anything else."""
        try:
            return await self._verify(token)
        except TokenError:
            raise
        except Exception:
            # A security boundary fails closed: whatever PyJWT or cryptography might raise
            # on hostile input becomes a 401, never a 500.
            logger.exception("unexpected error while verifying a token")
            raise TokenError("token_malformed", "The token could not be verified.") from None

    async def _verify(self, token: str) -> Principal:
        if not isinstance(token, str) or not token:
            raise TokenError("token_missing", "No token was given.")
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenError(
                "token_malformed", f"The token is longer than {MAX_TOKEN_LENGTH} bytes."
            )
        if not token.isascii():
            raise TokenError("token_malformed", "The token contains non-ASCII characters.")
        now = self._clock()
        digest = hashlib.sha256(token.encode("ascii")).digest()
        cached = self._cache_get(digest, now)
        if cached is not None:
            return cached
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("token_opaque", _OPAQUE_DESCRIPTION)
        header = _b64url_json(parts[0], "header")
        alg = header.get("alg")
        if not isinstance(alg, str) or (alg != "HS256" and alg not in ASYMMETRIC_ALGORITHMS):
            raise TokenError(
                "token_algorithm_refused",
                "The token alg is not accepted (HS256, EdDSA, ES256, RS256 or PS256 only).",
            )
        if "crit" in header:
            raise TokenError(
                "token_crit_unsupported",
                "The token has a crit header, and no extension is supported.",
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenError("token_malformed", "The token kid header is not a string.")
        # jku, x5u and jwk headers are never read: keys come only from our configuration.
        if alg == "HS256":
            if self._config.hs256_secret is None:
                raise TokenError(
                    "token_algorithm_refused",
                    "HS256 tokens are not accepted: no shared secret (JWT_SECRET) is configured.",
                )
            claims = _verify_signature(token, self._config.hs256_secret, alg)
            issuer, audience = self._config.issuer, self._config.audience
        else:
            claims = await self._verify_with_jwks(token, alg, kid)
            issuer, audience = self._config.jwks_issuer, self._config.jwks_audience
        # No await from the key lookup to here, so a key set swapped in meanwhile
        # cannot leave a token verified by a removed key in the cache.
        principal, exp = _check_claims(
            claims, self._clock(), self._config.leeway_seconds, issuer, audience
        )
        self._cache_put(digest, principal, exp)
        return principal

    async def _verify_with_jwks(self, token: str, alg: str, kid: str | None) -> dict[str, Any]:
        if self._jwks is None:
            raise TokenError(
                "token_algorithm_refused",
                f"{alg} tokens are not accepted: no JWKS (JWT_JWKS_URL, BETTER_AUTH_URL) is set.",
            )
        try:
            keys = await self._jwks.keys_for(alg, kid)
        except KeyLookupError as exc:
            raise _key_lookup_refusal(exc, alg) from None
        # Without a kid several keys may fit; only a bad signature moves on to the next.
        for key in keys[:-1]:
            try:
                return _verify_signature(token, key, alg)
            except TokenError as exc:
                if exc.code != "token_signature_invalid":
                    raise
        return _verify_signature(token, keys[-1], alg)

    def _cache_get(self, digest: bytes, now: float) -> Principal | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        principal, exp = entry
        if now >= exp + self._config.leeway_seconds:
            del self._cache[digest]
            raise TokenError("token_expired", "The token has expired; get a fresh one.")
        self._cache.move_to_end(digest)
        return principal

    def _cache_put(self, digest: bytes, principal: Principal, exp: float) -> None:
        if self._cache_size <= 0:
            return
        self._cache[digest] = (principal, exp)
        self._cache.move_to_end(digest)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _key_lookup_refusal(exc: KeyLookupError, alg: str) -> TokenError:
    """The refusal that tells the client why no JWKS key could verify its token."""
    if exc.reason == "wrong_alg":
        return TokenError(
            "token_algorithm_refused", f"The key named by kid is not usable with {alg}."
        )
    if exc.reason == "unavailable":
        return TokenError(
            "jwks_unavailable",
            "No signing keys could be fetched from the JWKS URL; try again later.",
        )
    return TokenError(
        "token_key_unknown",
        "No key in the JWKS matches the token kid and alg, even after a refresh.",
    )
