"""Rate limits: a budget per verified user, and one per client address for the requests
that carry no valid token (so floods of bad tokens are refused cheaply too).

The algorithm is GCRA (the "generic cell rate algorithm", a leaky bucket that stores one
timestamp per key): a budget of `limit` requests per `period` that refills continuously,
with no burst at window boundaries. The store is in-process by default, or Redis when
`REDIS_URL` is set so that every instance of a deployment draws on the same budget.
If Redis cannot be reached the limiter lets requests through (rate limiting is a
safeguard, not a reason to take the API down) and says so in the logs and in
`RateLimiter.degraded`.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from todo_api.auth.principal import Principal
from todo_api.config import Settings
from todo_api.http.problems import PROBLEM_JSON, problem_body
from todo_api.http.response_state import response_state

log = logging.getLogger("todo_api.http.ratelimit")

PERIOD_SECONDS = 60.0
_MICROS = 1_000_000
#: Paths never counted: probes, documentation and metrics must keep answering under load.
EXEMPT_PREFIXES = ("/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json")
# Float sums of `limit` emission intervals can overshoot the period by a hair.
_TOLERANCE_US = 1.0


_HEADER_NAMES = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After")
_RAW_NAMES = tuple(name.lower().encode() for name in _HEADER_NAMES)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of counting one request against a budget."""

    allowed: bool
    limit: int
    remaining: int
    #: Seconds until the whole budget is available again.
    reset: int
    #: Seconds until one more request would be allowed (0 when this one was).
    retry_after: int

    def _values(self) -> tuple[int, ...]:
        """The header values, in the order of `_HEADER_NAMES`."""
        if self.allowed:
            return (self.limit, self.remaining, self.reset)
        return (self.limit, self.remaining, self.reset, self.retry_after)

    def headers(self) -> dict[str, str]:
        """`RateLimit-*` response headers (IETF httpapi draft, separate-header form), and
        `Retry-After` when refused."""
        return {
            name: str(value) for name, value in zip(_HEADER_NAMES, self._values(), strict=False)
        }

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """`headers()` as ASGI header pairs (this runs on every request)."""
        return [
            (name, b"%d" % value) for name, value in zip(_RAW_NAMES, self._values(), strict=False)
        ]


def decide(allowed: bool, used_us: float, limit: int, period_us: float) -> Decision:
    """Turn GCRA state into a decision.

    `used_us` is how far the bucket's theoretical arrival time lies ahead of now, after
    this request was counted (if it was allowed): the part of the budget in use.
    """
    interval = period_us / limit
    remaining = int((period_us - used_us + _TOLERANCE_US) // interval)
    retry_after = 0 if allowed else max(1, math.ceil((used_us + interval - period_us) / _MICROS))
    return Decision(
        allowed=allowed,
        limit=limit,
        remaining=max(0, min(limit, remaining)),
        reset=max(0, math.ceil(used_us / _MICROS)),
        retry_after=retry_after,
    )


class Store(Protocol):
    """Where budgets live."""

    degraded: bool

    async def hit(self, key: str, limit: int, period: float) -> Decision | None:
        """Count one request for `key`; `None` when the store cannot answer (fail open)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class MemoryStore:
    """Budgets in this process: exact for one instance, bounded in memory.

    A key whose bucket has drained carries no information and is dropped; when more than
    `max_keys` keys are live the least recently used are forgotten, which only ever
    gives those clients a fresh budget.
    """

    degraded = False

    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self._tat: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._tat)

    async def hit(self, key: str, limit: int, period: float) -> Decision | None:
        """Count one request for `key` against `limit` per `period` seconds."""
        now = self.clock() * _MICROS
        period_us = period * _MICROS
        # pop + re-insert keeps the dict in least-recently-used order for eviction.
        tat = max(self._tat.pop(key, now), now)
        allowed = tat + period_us / limit - now <= period_us + _TOLERANCE_US
        if allowed:
            tat += period_us / limit
        self._tat[key] = tat
        if len(self._tat) > self.max_keys:
            self._evict(now)
        return decide(allowed, tat - now, limit, period_us)

    def _evict(self, now: float) -> None:
        drained = [key for key, tat in self._tat.items() if tat <= now]
        for key in drained:
            del self._tat[key]
        # Still full of live keys: forget the least recently seen tenth at once, so the
        # sweep above runs once per many inserts rather than on every one.
        excess = len(self._tat) - int(self.max_keys * 0.9)
        for key in list(self._tat)[: max(0, excess)]:
            del self._tat[key]

    async def aclose(self) -> None:
        """Nothing to release."""


# GCRA in one round trip. Redis's own clock is used, so instances whose clocks disagree
# still share one budget. Times are microseconds (well within a double's exact range).
_GCRA_LUA = """
local period = tonumber(ARGV[1])
local interval = period / tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allowed = 0
if tat + interval - now <= period + 1 then
  tat = tat + interval
  allowed = 1
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil((tat - now) / 1000))
end
return {allowed, math.ceil(tat - now)}
"""


class RedisStore:
    """Budgets in Redis, shared by every instance that uses the same URL and prefix.

    Each request costs one `EVALSHA`. On any Redis failure the request is let through,
    `degraded` becomes true, and Redis is left alone for `cooldown` seconds so an outage
    adds no latency; a warning is logged on the first failure and then at most once per
    `warn_every` seconds, never once per request.
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        timeout: float = 0.25,
        cooldown: float = 2.0,
        warn_every: float = 60.0,
        max_connections: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prefix = prefix
        self.cooldown = cooldown
        self.warn_every = warn_every
        self.clock = clock
        self.degraded = False
        self._retry_at = float("-inf")
        self._warned_at = float("-inf")
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # A retry would multiply the latency of every request while Redis is down.
            retry=Retry(NoBackoff(), 0),
        )
        self._client = Redis(connection_pool=pool)
        self._script = self._client.register_script(_GCRA_LUA)

    async def hit(self, key: str, limit: int, period: float) -> Decision | None:
        """Count one request for `key`; `None` (let it through) while Redis is unavailable."""
        if self.degraded and self.clock() < self._retry_at:
            return None
        period_us = period * _MICROS
        try:
            allowed, used = await self._script(keys=[self.prefix + key], args=[period_us, limit])
        except (TimeoutError, RedisError, OSError) as error:
            self._failed(error)
            return None
        if self.degraded:
            self.degraded = False
            log.warning("rate limiting: Redis answers again; limits are enforced")
        return decide(bool(allowed), float(used), limit, period_us)

    def _failed(self, error: BaseException) -> None:
        now = self.clock()
        self._retry_at = now + self.cooldown
        first = not self.degraded
        self.degraded = True
        if first or now - self._warned_at >= self.warn_every:
            self._warned_at = now
            log.warning(
                "rate limiting: Redis is unavailable (%s); requests are let through unlimited",
                type(error).__name__,
            )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def client_key(scope: Scope) -> str:
    """The client's address as a budget key.

    The ASGI `client` is used as is: uvicorn has already replaced it with the
    `X-Forwarded-For` address when (and only when) the peer is in `FORWARDED_ALLOW_IPS`.
    An IPv6 client is keyed by its /64, the block one subscriber usually holds, so that
    rotating through the addresses of one's own network buys no extra budget.
    """
    client = scope.get("client")
    host = client[0] if client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@functools.lru_cache(maxsize=4096)
def _user_key(user_id: str) -> str:
    # Hashed: keys stay short and Redis never holds raw user ids.
    return hashlib.blake2b(user_id.encode(), digest_size=16).hexdigest()


class RateLimiter:
    """The two budgets of the service, over one store."""

    def __init__(self, store: Store, *, per_user: int, per_address: int) -> None:
        self.store = store
        self.per_user = per_user
        self.per_address = per_address

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter | None:
        """The configured limiter, or `None` when `RATE_LIMIT_ENABLED` is false."""
        if not settings.rate_limit_enabled:
            return None
        store: Store
        if settings.redis_url is not None:
            prefix = settings.rate_limit_key_prefix.rstrip(":") + ":"
            store = RedisStore(settings.redis_url.get_secret_value(), prefix)
        else:
            store = MemoryStore()
        return cls(
            store,
            per_user=settings.rate_limit_per_minute,
            per_address=settings.rate_limit_anon_per_minute,
        )

    @property
    def degraded(self) -> bool:
        """True while the shared store is unreachable and requests pass unlimited."""
        return self.store.degraded

    async def hit_user(self, principal: Principal) -> Decision | None:
        """Count a request of a verified user."""
        return await self.store.hit(
            "u:" + _user_key(principal.user_id), self.per_user, PERIOD_SECONDS
        )

    async def hit_address(self, scope: Scope) -> Decision | None:
        """Count a request that has no verified user against its client address."""
        return await self.store.hit("a:" + client_key(scope), self.per_address, PERIOD_SECONDS)

    async def aclose(self) -> None:
        """Release the store's connections."""
        await self.store.aclose()


def is_exempt(path: str) -> bool:
    """Whether `path` is never rate limited."""
    return path.startswith(EXEMPT_PREFIXES)


def limiter_of(scope: Scope) -> RateLimiter | None:
    """The application's limiter (`app.state.rate_limiter`), if rate limiting is on."""
    app = scope.get("app")
    limiter: RateLimiter | None = getattr(getattr(app, "state", None), "rate_limiter", None)
    return limiter


async def send_rate_limited(scope: Scope, send: Send, decision: Decision) -> None:
    """Answer 429 problem+json with `Retry-After` and the `RateLimit-*` headers."""
    request_id = scope.get("state", {}).get("request_id")
    body = problem_body(
        429, "rate_limited", f"Too many requests; retry in {decision.retry_after} s.", request_id
    )
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *decision.raw_headers(),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RateLimitMiddleware:
    """Counts each request that reached it: against the caller's budget when the
    authentication layer verified a token, else against the client address's.

    It sits right after authentication, so an unauthenticated request is 401 (the
    authentication layer charges its address via `hit_address`), and before the
    path-owner check and validation, so a flood is 429 before it is 403, 404 or 422.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = limiter_of(scope)
        if scope["type"] != "http" or limiter is None or is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        principal: Any = scope.get("state", {}).get("principal")
        if isinstance(principal, Principal):
            decision = await limiter.hit_user(principal)
        else:
            decision = await limiter.hit_address(scope)
        if decision is None:
            await self.app(scope, receive, send)
            return
        if not decision.allowed:
            await send_rate_limited(scope, send, decision)
            return
        # Added to whatever response follows, by the one `send` wrapper.
        response, tracked = response_state(scope, send)
        response.extra_headers.extend(decision.raw_headers())
        await self.app(scope, receive, tracked)
