"""Cost of TokenVerifier.verify per call, with and without the cache of verified tokens.

    uv run python bench/auth_verify.py [iterations]

JWKS keys are served by an in-process httpx.MockTransport, so only verification is timed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from todo_api.auth.tokens import AuthConfig, TokenVerifier

SECRET = b"bench-only-hs256-secret-of-at-least-32-bytes"
ISSUER = "https://auth.example.com"
KEYS = {
    "EdDSA": (ed25519.Ed25519PrivateKey.generate(), OKPAlgorithm),
    "ES256": (ec.generate_private_key(ec.SECP256R1()), ECAlgorithm),
    "RS256": (rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAAlgorithm),
}


def jwks_transport() -> httpx.MockTransport:
    keys = [
        {**algorithm.to_jwk(key.public_key(), as_dict=True), "kid": alg}
        for alg, (key, algorithm) in KEYS.items()
    ]
    body = json.dumps({"keys": keys}).encode()
    return httpx.MockTransport(lambda request: httpx.Response(200, content=body))


def token(alg: str) -> str:
    # Shaped like a Better Auth JWT: its JWT plugin puts the whole user row in the payload.
    claims = {
        "sub": "sFqLwEXsQhbXfbcGVeQYpWTnDL3ZKj2m",
        "id": "sFqLwEXsQhbXfbcGVeQYpWTnDL3ZKj2m",
        "email": "alice@example.com",
        "emailVerified": False,
        "name": "Alice",
        "image": None,
        "createdAt": "2026-01-05T10:00:00.000Z",
        "updatedAt": "2026-01-05T10:00:00.000Z",
        "iss": ISSUER,
        "aud": ISSUER,
        "iat": int(time.time()),
        "exp": int(time.time()) + 900,
    }
    if alg == "HS256":
        return jwt.encode(claims, SECRET, algorithm=alg)
    return jwt.encode(claims, KEYS[alg][0], algorithm=alg, headers={"kid": alg})


async def per_call_us(verifier: TokenVerifier, tokens: list[str], iterations: int) -> float:
    for t in tokens:
        await verifier.verify(t)
    started = time.perf_counter()
    for i in range(iterations):
        await verifier.verify(tokens[i % len(tokens)])
    return (time.perf_counter() - started) / iterations * 1e6


async def main(iterations: int) -> None:
    config = AuthConfig(
        SECRET, ISSUER, ISSUER, "https://auth.example.com/api/auth/jwks", ISSUER, ISSUER
    )
    print(f"token length {len(token('EdDSA'))} chars (EdDSA)")
    print(f"{'alg':6} {'uncached':>10} {'cached':>10}  (µs per verify, {iterations} calls)")
    for alg in ("HS256", *KEYS):
        tokens = [token(alg)]
        results = []
        for cache_size in (0, 4096):
            async with httpx.AsyncClient(transport=jwks_transport()) as client:
                verifier = TokenVerifier(config, http_client=client, cache_size=cache_size)
                await verifier.start()
                results.append(await per_call_us(verifier, tokens, iterations))
                await verifier.aclose()
        print(f"{alg:6} {results[0]:10.1f} {results[1]:10.1f}")
    raw = token("HS256")
    started = time.perf_counter()
    for _ in range(iterations):
        jwt.decode(raw, SECRET, algorithms=["HS256"], audience=ISSUER, issuer=ISSUER)
    bare_us = (time.perf_counter() - started) / iterations * 1e6
    print(f"reference: bare jwt.decode HS256 {bare_us:.1f} µs")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
