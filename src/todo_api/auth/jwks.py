"""The JWKS key set: which public keys may verify a token, fetched from one URL and cached.

Pure by design, like ``auth``: no FastAPI and no database. The key set is downloaded with
httpx, kept for a TTL (then refreshed in the background while the old keys keep serving),
and re-fetched on a key miss at most once per cool-down, with concurrent callers sharing a
single fetch. A fetch that fails keeps the keys already held.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

__all__ = ["JwksCache", "KeyLookupError", "PublicKey", "check_jwks_url"]

# The auth logger, not this module's own: these lines were always logged as part of token
# verification, and log filters or alerts written against that name keep matching.
logger = logging.getLogger("todo_api.auth")

PublicKey = Ed25519PublicKey | EllipticCurvePublicKey | RSAPublicKey

# Bounds on what a key server can make us read and parse.
_MAX_JWKS_BYTES = 512 * 1024
_MAX_JWKS_KEYS = 100
_MIN_RSA_BITS = 2048
# Private members are dropped before parsing: a JWKS that leaks them must still only
# ever give us a public key to verify with.
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def is_loopback_host(host: str) -> bool:
    """Whether `host` names this machine (`localhost` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_jwks_url(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` may serve keys: https, or plain http on loopback.

    Keys fetched over plain http from another host could be swapped in transit, and
    whoever swaps them can sign any token.
    """
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"JWKS URL {url!r} has no host")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return
    raise ValueError(
        f"JWKS URL {url!r} must use https (plain http is allowed only for a loopback host)"
    )


class KeyLookupError(Exception):
    """No key in the set can verify a token of this ``alg`` and ``kid``.

    ``reason`` is ``unavailable`` (no key set could be fetched at all), ``unknown`` (no
    key matches, even after a refresh) or ``wrong_alg`` (the ``kid`` names a key that
    cannot be used with the ``alg``).
    """

    def __init__(self, reason: Literal["unavailable", "unknown", "wrong_alg"]) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Jwk:
    kid: str | None
    algorithms: frozenset[str]
    key: PublicKey
    # The public members as sorted JSON: two fetches hold the same keys exactly when
    # these strings match, whatever order or formatting the server used.
    canonical: str


def _parse_jwk(entry: object) -> _Jwk | None:
    """One usable verification key, or None for an entry we cannot or must not use."""
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
    public = {name: value for name, value in entry.items() if name not in _PRIVATE_JWK_MEMBERS}
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
    except Exception:  # untrusted input: an entry that fails to parse is simply skipped
        logger.warning("ignoring a malformed JWKS entry (kid=%r)", kid)
        return None
    if declared_alg is not None:
        if not isinstance(declared_alg, str) or declared_alg not in algorithms:
            return None
        algorithms = frozenset({declared_alg})
    # PyJWT picks the key class from the entry; accept only the curves and sizes we mean to.
    if (
        isinstance(key, Ed25519PublicKey)
        or (isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP256R1))
        or (isinstance(key, RSAPublicKey) and key.key_size >= _MIN_RSA_BITS)
    ):
        return _Jwk(kid, algorithms, key, json.dumps(public, sort_keys=True))
    return None


def _parse_jwks(document: object) -> tuple[_Jwk, ...]:
    """The usable keys of a JWKS document; raises ValueError if it is not a JWKS at all."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS document is not a JSON object with a 'keys' array")
    parsed = (_parse_jwk(entry) for entry in document["keys"][:_MAX_JWKS_KEYS])
    return tuple(key for key in parsed if key is not None)


class JwksCache:
    """The verification keys published at one JWKS URL.

    ``on_change`` is called, synchronously and before the new keys are used, whenever a
    fetch brings a key set different from the one held, so a caller caching results
    derived from the old keys can drop them. ``http_client`` is borrowed, never closed;
    without one, the cache makes its own on first use and closes it in ``aclose``.
    Raises ``ValueError`` for a URL that ``check_jwks_url`` refuses.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: float,
        cooldown_seconds: float,
        timeout_seconds: float,
        http_client: httpx.AsyncClient | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        check_jwks_url(url)
        self._url = url
        self._ttl = ttl_seconds
        self._cooldown = cooldown_seconds
        self._timeout = timeout_seconds
        self._client = http_client
        self._owns_client = http_client is None
        self._on_change = on_change
        self._keys: tuple[_Jwk, ...] = ()
        # Monotonic times: a wall-clock jump must neither expire keys nor lift the cool-down.
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._refresh_count = 0

    @property
    def status(self) -> Literal["ok", "unavailable"]:
        """``ok`` while at least one usable key is held, else ``unavailable``."""
        return "ok" if self._keys else "unavailable"

    @property
    def refresh_count(self) -> int:
        """How many fetches have been started, successful or not."""
        return self._refresh_count

    @property
    def refreshing(self) -> bool:
        """True while a fetch is in flight."""
        return self._inflight is not None

    async def start(self) -> None:
        """Fetch the key set once so the first token does not wait for it; never raises."""
        await self._refresh(wait=True)

    async def aclose(self) -> None:
        """Cancel any fetch in flight and close the HTTP client if this cache made it."""
        task, self._inflight = self._inflight, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def keys_for(self, alg: str, kid: str | None) -> list[PublicKey]:
        """The keys that may verify a token with this ``alg`` and ``kid``, never empty.

        With no ``kid``, every key usable with ``alg`` is returned, to be tried in turn.
        Fetches the key set when none is held or no key matches (subject to the cool-down),
        and starts a background refresh once the TTL has passed. Raises ``KeyLookupError``
        when no key fits.
        """
        if not self._keys:
            await self._refresh(wait=True)
        elif time.monotonic() - (self._fetched_at or 0.0) > self._ttl:
            # Stale keys keep serving while a background fetch replaces them.
            self._start_refresh()
        matches = self._matching(alg, kid)
        if not matches and kid is not None and any(k.kid == kid for k in self._keys):
            # Refetching would not help: the key exists, it is just the wrong type.
            raise KeyLookupError("wrong_alg")
        if not matches:
            await self._refresh(wait=True)
            matches = self._matching(alg, kid)
        if not matches:
            raise KeyLookupError("unknown" if self._keys else "unavailable")
        return matches

    def _matching(self, alg: str, kid: str | None) -> list[PublicKey]:
        return [k.key for k in self._keys if alg in k.algorithms and (kid is None or k.kid == kid)]

    def _start_refresh(self) -> asyncio.Task[None] | None:
        """The fetch in flight, a new one if the cool-down allows, else None."""
        if self._inflight is not None:
            return self._inflight
        if (
            self._attempted_at is not None
            and time.monotonic() - self._attempted_at < self._cooldown
        ):
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
        self._attempted_at = time.monotonic()
        self._refresh_count += 1
        try:
            body = await asyncio.wait_for(self._download(), self._timeout)
            keys = _parse_jwks(json.loads(body))
        except Exception as exc:  # a failed refresh is logged; the keys held stay in use
            logger.warning(
                "JWKS fetch from %s failed (%s: %s); keeping %d cached key(s)",
                self._url,
                type(exc).__name__,
                exc,
                len(self._keys),
            )
            return
        self._fetched_at = time.monotonic()
        if {k.canonical for k in keys} != {k.canonical for k in self._keys}:
            # Before the swap, so nothing verified by a removed key outlives it.
            if self._on_change is not None:
                self._on_change()
            logger.info("JWKS key set changed: %d usable key(s)", len(keys))
        self._keys = keys

    async def _download(self) -> bytes:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout, connect=self._timeout)
            )
        headers = {"Accept": "application/jwk-set+json, application/json"}
        # No redirects: the configured URL is the only place keys may come from.
        async with self._client.stream(
            "GET", self._url, headers=headers, follow_redirects=False
        ) as resp:
            if resp.status_code != 200:
                raise ValueError(f"HTTP status {resp.status_code}")
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > _MAX_JWKS_BYTES:
                    raise ValueError("the JWKS response is too large")
        return bytes(body)
