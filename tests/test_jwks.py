"""The JWKS key set on its own: what it accepts from a key server, and when it tells the
verifier that the keys changed. End-to-end behaviour (rotation, cool-down, TTL, a real
server that is down or slow) is pinned through ``TokenVerifier`` in test_auth.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from todo_api.auth.jwks import JwksCache, KeyLookupError

URL = "https://auth.example.com/api/auth/jwks"
ED_KEY = ed25519.Ed25519PrivateKey.generate()
ED_OTHER_KEY = ed25519.Ed25519PrivateKey.generate()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ed_jwk(private_key: ed25519.Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    return {**OKPAlgorithm.to_jwk(private_key.public_key(), as_dict=True), "kid": kid}


class KeyServer:
    """An in-process key server: ``respond`` decides each answer; requests are recorded."""

    def __init__(self) -> None:
        self.keys: list[Any] = [ed_jwk(ED_KEY, "ed")]
        self.requests: list[httpx.Request] = []
        self.respond: Callable[[], httpx.Response] = lambda: httpx.Response(
            200, json={"keys": self.keys}
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond()


@pytest.fixture
def server() -> KeyServer:
    return KeyServer()


@pytest.fixture
async def client(server: KeyServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(server.handle)) as client:
        yield client


@pytest.fixture
def changes() -> list[None]:
    return []


@pytest.fixture
async def cache(client: httpx.AsyncClient, changes: list[None]) -> AsyncIterator[JwksCache]:
    cache = JwksCache(
        URL,
        ttl_seconds=600.0,
        cooldown_seconds=0.0,
        timeout_seconds=1.0,
        http_client=client,
        on_change=lambda: changes.append(None),
    )
    yield cache
    await cache.aclose()


async def test_a_new_key_set_is_reported_and_the_same_one_refetched_is_not(
    cache: JwksCache, server: KeyServer, changes: list[None]
) -> None:
    await cache.start()
    assert len(changes) == 1
    # Same usable key, members in another order, plus an entry that is never usable.
    server.keys = [{"kty": "oct", "k": "c2VjcmV0"}, dict(reversed(ed_jwk(ED_KEY, "ed").items()))]
    await cache.start()
    assert (cache.refresh_count, len(changes)) == (2, 1)
    server.keys = [ed_jwk(ED_OTHER_KEY, "ed")]
    await cache.start()
    assert len(changes) == 2


async def test_a_key_server_that_fails_is_not_a_change(
    cache: JwksCache, server: KeyServer, changes: list[None]
) -> None:
    await cache.start()
    server.respond = lambda: httpx.Response(503)
    await cache.start()
    assert (cache.refresh_count, len(changes), cache.status) == (2, 1, "ok")


async def test_private_members_of_a_leaked_jwk_are_dropped(
    cache: JwksCache, server: KeyServer
) -> None:
    server.keys = [{**OKPAlgorithm.to_jwk(ED_KEY, as_dict=True), "kid": "ed"}]
    assert "d" in server.keys[0]
    [key] = await cache.keys_for("EdDSA", "ed")
    assert isinstance(key, ed25519.Ed25519PublicKey)


async def test_without_kid_every_key_of_the_algorithm_is_returned(
    cache: JwksCache, server: KeyServer
) -> None:
    rsa_jwk = {**RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True), "kid": "rsa"}
    server.keys = [ed_jwk(ED_KEY, "ed"), ed_jwk(ED_OTHER_KEY, "ed-2"), rsa_jwk]
    assert len(await cache.keys_for("EdDSA", None)) == 2
    assert len(await cache.keys_for("PS256", None)) == 1


@pytest.mark.parametrize(
    ("alg", "kid", "reason"),
    [("EdDSA", "missing", "unknown"), ("ES256", "ed", "wrong_alg"), ("ES256", None, "unknown")],
)
async def test_a_key_that_does_not_fit_is_refused_with_its_reason(
    cache: JwksCache, alg: str, kid: str | None, reason: str
) -> None:
    with pytest.raises(KeyLookupError) as info:
        await cache.keys_for(alg, kid)
    assert info.value.reason == reason


RESPONSES_WITHOUT_KEYS = {
    "too large": lambda: httpx.Response(
        200, json={"keys": [ed_jwk(ED_KEY, "ed")], "pad": "x" * 512 * 1024}
    ),
    "redirect": lambda: httpx.Response(302, headers={"Location": "https://evil.example/jwks"}),
    "key beyond the first hundred": lambda: httpx.Response(
        200, json={"keys": [{"kty": "none"}] * 100 + [ed_jwk(ED_KEY, "ed")]}
    ),
    "not JSON": lambda: httpx.Response(200, content=b"<html>"),
}


@pytest.mark.parametrize("respond", RESPONSES_WITHOUT_KEYS.values(), ids=RESPONSES_WITHOUT_KEYS)
async def test_a_response_that_yields_no_key_leaves_the_set_unavailable(
    cache: JwksCache, server: KeyServer, respond: Callable[[], httpx.Response]
) -> None:
    server.respond = respond
    with pytest.raises(KeyLookupError) as info:
        await cache.keys_for("EdDSA", "ed")
    assert (info.value.reason, cache.status) == ("unavailable", "unavailable")
    assert {str(request.url) for request in server.requests} == {URL}


async def test_a_borrowed_client_is_left_open(cache: JwksCache, client: httpx.AsyncClient) -> None:
    await cache.start()
    await cache.aclose()
    assert not client.is_closed


@pytest.mark.parametrize("url", ["http://auth.example.com/jwks", "https:///jwks"])
def test_keys_are_never_fetched_over_plain_http_from_another_host(url: str) -> None:
    with pytest.raises(ValueError, match="JWKS URL"):
        JwksCache(url, ttl_seconds=600.0, cooldown_seconds=0.0, timeout_seconds=1.0)


def test_the_key_set_is_unavailable_until_fetched() -> None:
    cache = JwksCache(URL, ttl_seconds=600.0, cooldown_seconds=0.0, timeout_seconds=1.0)
    assert (cache.status, cache.refresh_count, cache.refreshing) == ("unavailable", 0, False)
