"""Bearer-token verification: HS256 with a shared secret, or JWKS keys (EdDSA, ES256, RS256, PS256).

Pure by design: no FastAPI and no database here, so the middleware, the CLI and the
tests all call the same code. Every refusal is a ``TokenError`` whose ``code`` is
stable and whose ``description`` is safe to send back (ASCII, no double quote or
backslash, so it fits inside a ``WWW-Authenticate`` header; never echoes the token).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
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
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

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

logger = logging.getLogger(__name__)

RESERVED_USER_IDS: frozenset[str] = frozenset(
    {"me", "tasks", "lists", "tags", "reminders", "changes"}
)

MAX_TOKEN_LENGTH = 8192
MAX_SUBJECT_LENGTH = 255
ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "ES256", "RS256", "PS256"})

# RFC 6750 b64token; anything else after "Bearer " cannot be a token we issue or accept.
_B64TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=")
_MAX_JWKS_BYTES = 512 * 1024
_MAX_JWKS_KEYS = 100
_MIN_RSA_BITS = 2048
# Private members are dropped before parsing: a JWKS that leaks them must still only
# ever give us a public key to verify with.
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_OPAQUE_DESCRIPTION = (
    "The bearer token is not a JWT (it does not have three dot-separated parts). "
    "This is probably a Better Auth session token; send a JWT from the Better Auth "
    "JWT plugin instead (authClient.token() on the client, or GET /api/auth/token)."
)

_PublicKey = Ed25519PublicKey | EllipticCurvePublicKey | RSAPublicKey
# One PyJWS instance; enforcing minimum key lengths turns PyJWT's warning into a refusal.
_JWS = jwt.PyJWS(options={"verify_signature": True, "enforce_minimum_key_length": True})


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller: ``user_id`` is the token's ``sub``."""

    user_id: str
    email: str | None
    name: str | None
    claims: Mapping[str, Any]


class TokenError(Exception):
    """A token was refused; ``code`` is machine-readable, ``description`` is for the developer."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


def bearer_token(authorization_values: list[bytes]) -> str:
    """Return the token from the raw ``Authorization`` header values of an ASGI scope.

    Raises ``TokenError`` (``token_missing`` or ``token_malformed``) unless there is
    exactly one header of the form ``Bearer <token>`` (scheme case-insensitive) with an
    ASCII token of at most 8 KiB made of RFC 6750 token characters.
    """
    if not authorization_values:
        raise TokenError("token_missing", "No Authorization header; send 'Bearer <token>'.")
    if len(authorization_values) > 1:
        raise TokenError("token_malformed", "More than one Authorization header; send exactly one.")
    raw = authorization_values[0]
    # Checked on the raw bytes first so an oversized header costs nothing to refuse.
    if len(raw) > MAX_TOKEN_LENGTH + 64:
        raise TokenError("token_malformed", f"The token is longer than {MAX_TOKEN_LENGTH} bytes.")
    try:
        value = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise TokenError(
            "token_malformed", "The Authorization header contains non-ASCII bytes."
        ) from None
    if not value:
        raise TokenError("token_missing", "The Authorization header is empty.")
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != "bearer":
        raise TokenError(
            "token_missing",
            "The Authorization header does not use the Bearer scheme; send 'Bearer <token>'.",
        )
    token = rest.strip(" ")
    if not token:
        raise TokenError("token_malformed", "The Bearer scheme is not followed by a token.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("token_malformed", f"The token is longer than {MAX_TOKEN_LENGTH} bytes.")
    if not _B64TOKEN_CHARS.issuperset(token):
        raise TokenError(
            "token_malformed", "The token contains characters that no bearer token may contain."
        )
    return token


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_jwks_url(url: str) -> None:
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"JWKS URL {url!r} has no host")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and _is_loopback_host(parts.hostname):
        return
    raise ValueError(
        f"JWKS URL {url!r} must use https (plain http is allowed only for a loopback host)"
    )


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
            _check_jwks_url(self.jwks_url)
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


@dataclass(frozen=True, slots=True)
class _JwksKey:
    kid: str | None
    algorithms: frozenset[str]
    key: _PublicKey
    canonical: str  # the entry as sorted JSON, to tell whether a refresh changed the key set


def _parse_jwk(entry: object) -> _JwksKey | None:
    """One usable verification key, or None for anything we cannot or must not use."""
    if not isinstance(entry, dict):
        return None
    kid = entry.get("kid")
    use = entry.get("use")
    declared_alg = entry.get("alg")
    key_ops = entry.get("key_ops")
    if (kid is not None and not isinstance(kid, str)) or use not in (None, "sig"):
        return None
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    public = {k: v for k, v in entry.items() if k not in _PRIVATE_JWK_MEMBERS}
    canonical = json.dumps(public, sort_keys=True)
    kty = entry.get("kty")
    try:
        key: object
        if kty == "OKP" and entry.get("crv") == "Ed25519":
            key, algorithms = OKPAlgorithm.from_jwk(public), frozenset({"EdDSA"})
        elif kty == "EC" and entry.get("crv") == "P-256":
            key, algorithms = ECAlgorithm.from_jwk(public), frozenset({"ES256"})
        elif kty == "RSA":
            key, algorithms = RSAAlgorithm.from_jwk(public), frozenset({"RS256", "PS256"})
        else:
            return None
    except Exception:  # untrusted input: any parse failure just drops the entry
        logger.warning("ignoring a malformed JWKS entry (kid=%r)", kid)
        return None
    if declared_alg is not None:
        if not isinstance(declared_alg, str) or declared_alg not in algorithms:
            return None
        algorithms = frozenset({declared_alg})
    if isinstance(key, Ed25519PublicKey):
        return _JwksKey(kid, algorithms, key, canonical)
    if isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP256R1):
        return _JwksKey(kid, algorithms, key, canonical)
    if isinstance(key, RSAPublicKey) and key.key_size >= _MIN_RSA_BITS:
        return _JwksKey(kid, algorithms, key, canonical)
    return None


def _parse_jwks(document: object) -> tuple[_JwksKey, ...]:
    """Usable keys of a JWKS document; raises ValueError if it is not a JWKS at all."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS document is not a JSON object with a 'keys' array")
    parsed = (_parse_jwk(entry) for entry in document["keys"][:_MAX_JWKS_KEYS])
    return tuple(key for key in parsed if key is not None)


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


def _check_subject(sub: object) -> str:
    if not isinstance(sub, str):
        raise TokenError(
            "token_subject_invalid", "The token has no sub claim, or it is not a string."
        )
    if not 1 <= len(sub) <= MAX_SUBJECT_LENGTH:
        raise TokenError("token_subject_invalid", "The sub claim must be 1 to 255 characters long.")
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
    email, name = claims.get("email"), claims.get("name")
    principal = Principal(
        user_id=user_id,
        email=email if isinstance(email, str) else None,
        name=name if isinstance(name, str) else None,
        claims=MappingProxyType(claims),
    )
    return principal, exp


def _verify_signature(token: str, key: bytes | _PublicKey, alg: str) -> dict[str, Any]:
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
        self._client = http_client
        self._owns_client = http_client is None
        self._clock = clock
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._keys: tuple[_JwksKey, ...] = ()
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        self.jwks_refresh_count = 0

    @property
    def jwks_status(self) -> str:
        """``ok`` with a usable JWKS key, ``unavailable`` without one, else ``not_configured``."""
        if self._config.jwks_url is None:
            return "not_configured"
        return "ok" if self._keys else "unavailable"

    async def start(self) -> None:
        """Fetch the JWKS once so the first request does not wait; never raises."""
        if self._config.jwks_url is not None:
            await self._refresh(wait=True)

    async def aclose(self) -> None:
        """Stop any JWKS fetch in flight and close the HTTP client if we created it."""
        task, self._inflight = self._inflight, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

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
        if self._config.jwks_url is None:
            raise TokenError(
                "token_algorithm_refused",
                f"{alg} tokens are not accepted: no JWKS (JWT_JWKS_URL, BETTER_AUTH_URL) is set.",
            )
        if not self._keys:
            await self._refresh(wait=True)
        elif time.monotonic() - (self._fetched_at or 0.0) > self._config.jwks_ttl_seconds:
            # Stale keys keep serving while a background fetch replaces them.
            self._start_refresh()
        candidates = self._candidates(alg, kid)
        if not candidates and kid is not None and any(k.kid == kid for k in self._keys):
            raise TokenError(
                "token_algorithm_refused", f"The key named by kid is not usable with {alg}."
            )
        if not candidates:
            await self._refresh(wait=True)
            candidates = self._candidates(alg, kid)
        if not candidates:
            if not self._keys:
                raise TokenError(
                    "jwks_unavailable",
                    "No signing keys could be fetched from the JWKS URL; try again later.",
                )
            raise TokenError(
                "token_key_unknown",
                "No key in the JWKS matches the token kid and alg, even after a refresh.",
            )
        for candidate in candidates[:-1]:
            try:
                return _verify_signature(token, candidate.key, alg)
            except TokenError as exc:
                if exc.code != "token_signature_invalid":
                    raise
        return _verify_signature(token, candidates[-1].key, alg)

    def _candidates(self, alg: str, kid: str | None) -> list[_JwksKey]:
        return [k for k in self._keys if alg in k.algorithms and (kid is None or k.kid == kid)]

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

    def _start_refresh(self) -> asyncio.Task[None] | None:
        """The fetch in flight, a new one if the cool-down allows, else None."""
        if self._inflight is not None:
            return self._inflight
        cooldown = self._config.jwks_refresh_cooldown_seconds
        if self._attempted_at is not None and time.monotonic() - self._attempted_at < cooldown:
            return None
        task = asyncio.get_running_loop().create_task(self._fetch())
        self._inflight = task
        task.add_done_callback(self._forget_task)
        return task

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _refresh(self, *, wait: bool) -> None:
        task = self._start_refresh()
        if task is not None and wait:
            # Shielded: one caller giving up (client gone) must not cancel the fetch
            # the other waiting callers share.
            await asyncio.shield(task)

    async def _fetch(self) -> None:
        url = self._config.jwks_url
        assert url is not None
        self._attempted_at = time.monotonic()
        self.jwks_refresh_count += 1
        try:
            body = await asyncio.wait_for(self._download(url), self._config.jwks_timeout_seconds)
            keys = _parse_jwks(json.loads(body))
        except Exception as exc:  # a failed refresh is logged; the cached keys stay in use
            logger.warning(
                "JWKS fetch from %s failed (%s: %s); keeping %d cached key(s)",
                url,
                type(exc).__name__,
                exc,
                len(self._keys),
            )
            return
        self._fetched_at = time.monotonic()
        if {k.canonical for k in keys} != {k.canonical for k in self._keys}:
            # A removed key must stop working at once, cached results included.
            self._cache.clear()
            logger.info("JWKS key set changed: %d usable key(s)", len(keys))
        self._keys = keys

    async def _download(self, url: str) -> bytes:
        if self._client is None:
            timeout = self._config.jwks_timeout_seconds
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=timeout))
        headers = {"Accept": "application/jwk-set+json, application/json"}
        async with self._client.stream("GET", url, headers=headers, follow_redirects=False) as resp:
            if resp.status_code != 200:
                raise ValueError(f"HTTP status {resp.status_code}")
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > _MAX_JWKS_BYTES:
                    raise ValueError("the JWKS response is too large")
        return bytes(body)
