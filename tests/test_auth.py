"""Token verification, in the spirit of RFC 8725: every legitimate token accepted, every
forged or sloppy one refused with a precise code. JWKS keys come from a real HTTP server
on loopback, so down, slow and garbage key servers are the real thing too."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import random
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from todo_api.auth import tokens as auth
from todo_api.auth.tokens import AuthConfig, TokenError, TokenVerifier, bearer_token
from todo_api.config import Settings

NOW = 1_700_000_000
SECRET = b"test-only-hs256-secret-that-is-long-enough"
ISSUER = "https://auth.example.com"
AUDIENCE = "https://api.example.com"
DROP = object()  # a claim override that removes the claim

ED_KEY = ed25519.Ed25519PrivateKey.generate()
ED_NEW_KEY = ed25519.Ed25519PrivateKey.generate()
ATTACKER_KEY = ed25519.Ed25519PrivateKey.generate()
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SIGNING = {"EdDSA": (ED_KEY, "ed"), "ES256": (EC_KEY, "ec"), "RS256": (RSA_KEY, "rsa")}
SIGNING["PS256"] = SIGNING["RS256"]


def jwk(private_key: Any, kid: str, **extra: Any) -> dict[str, Any]:
    public = private_key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    return {**data, "kid": kid, "use": "sig", **extra}


def claims(**overrides: Any) -> dict[str, Any]:
    base = {"sub": "user-1", "exp": NOW + 600, "iat": NOW, "iss": ISSUER, "aud": AUDIENCE}
    base |= {"email": "alice@example.com", "name": "Alice"}
    base |= overrides
    return {k: v for k, v in base.items() if v is not DROP}


def sign(alg: str = "HS256", payload: dict[str, Any] | None = None, **headers: Any) -> str:
    """A token signed with the key the verifier trusts for ``alg`` (kid set for JWKS keys)."""
    key: Any = SECRET
    if alg in SIGNING:
        key, kid = SIGNING[alg]
        headers.setdefault("kid", kid)
    headers = {k: v for k, v in headers.items() if v is not None}
    # PyJWS rather than jwt.encode: the latter refuses to produce some of the bad claims tested.
    body = json.dumps(claims() if payload is None else payload).encode()
    return jwt.PyJWS().encode(body, key, algorithm=alg, headers=headers)


def b64(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hand_made(header: Any, payload: Any, key: bytes = SECRET) -> str:
    """An HS256-signed token built byte by byte, for shapes PyJWT refuses to produce."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def refusal(verifier: TokenVerifier, token: str) -> str:
    """The code of the refusal; also checks the description fits a WWW-Authenticate header."""
    with pytest.raises(TokenError) as info:
        await verifier.verify(token)
    description = info.value.description
    assert description.isascii()
    assert '"' not in description
    assert "\\" not in description
    assert len(token) < 12 or token[:12] not in description
    return info.value.code


class JwksServer:
    """A loopback JWKS endpoint whose answer, delay and status the test controls."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {
            "keys": [jwk(ED_KEY, "ed"), jwk(EC_KEY, "ec"), jwk(RSA_KEY, "rsa")]
        }
        self.body: bytes | None = None
        self.status = 200
        self.delay = 0.0
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                time.sleep(owner.delay)
                body = owner.body if owner.body is not None else json.dumps(owner.document)
                payload = body if isinstance(body, bytes) else body.encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.handle_error = lambda *args: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    @property
    def fetches(self) -> int:
        return self.paths.count("/jwks")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now: float = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture
async def make_verifier(jwks: JwksServer) -> AsyncIterator[Callable[..., TokenVerifier]]:
    """Verifiers trusting SECRET and the test JWKS; keyword arguments override the config."""
    made: list[TokenVerifier] = []

    def make(clock: Clock | None = None, cache_size: int = 4096, **config: Any) -> TokenVerifier:
        base = AuthConfig(
            hs256_secret=SECRET,
            issuer=ISSUER,
            audience=AUDIENCE,
            jwks_url=jwks.url,
            jwks_issuer=ISSUER,
            jwks_audience=AUDIENCE,
            jwks_refresh_cooldown_seconds=0.0,
            jwks_timeout_seconds=0.5,
        )
        verifier = TokenVerifier(
            dataclasses.replace(base, **config), clock=clock or Clock(), cache_size=cache_size
        )
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        await verifier.aclose()


@pytest.fixture
def verifier(make_verifier: Callable[..., TokenVerifier]) -> TokenVerifier:
    return make_verifier()


# --- Accepted tokens -----------------------------------------------------------------


@pytest.mark.parametrize("alg", ["HS256", "EdDSA", "ES256", "RS256", "PS256"])
async def test_valid_token_is_accepted(verifier: TokenVerifier, alg: str) -> None:
    principal = await verifier.verify(sign(alg))
    assert (principal.user_id, principal.email, principal.name) == (
        "user-1",
        "alice@example.com",
        "Alice",
    )
    assert principal.claims["iss"] == ISSUER


async def test_jwks_token_without_kid_is_tried_against_keys_of_its_type(
    verifier: TokenVerifier,
) -> None:
    assert (await verifier.verify(sign("EdDSA", kid=None))).user_id == "user-1"


async def test_non_string_email_and_name_are_dropped(verifier: TokenVerifier) -> None:
    principal = await verifier.verify(sign(payload=claims(email=["x"], name=7)))
    assert (principal.email, principal.name) == (None, None)


# --- Claims --------------------------------------------------------------------------

TIME_CASES = {
    "exp within leeway": ({"exp": NOW - 29}, None),
    "exp at leeway edge": ({"exp": NOW - 30}, "token_expired"),
    "expired": ({"exp": NOW - 3600}, "token_expired"),
    "nbf within leeway": ({"nbf": NOW + 30}, None),
    "nbf future": ({"nbf": NOW + 31}, "token_not_yet_valid"),
    "iat within leeway": ({"iat": NOW + 30}, None),
    "iat future": ({"iat": NOW + 31}, "token_not_yet_valid"),
    "huge exp": ({"exp": 10**30}, None),
    "missing exp": ({"exp": DROP}, "token_claims_invalid"),
    "string exp": ({"exp": str(NOW + 600)}, "token_claims_invalid"),
    "boolean exp": ({"exp": True}, "token_claims_invalid"),
    "list nbf": ({"nbf": [1]}, "token_claims_invalid"),
}


@pytest.mark.parametrize(("overrides", "code"), TIME_CASES.values(), ids=TIME_CASES.keys())
async def test_time_claims(
    verifier: TokenVerifier, overrides: dict[str, Any], code: str | None
) -> None:
    token = sign("EdDSA", claims(**overrides))
    if code is None:
        assert (await verifier.verify(token)).user_id == "user-1"
    else:
        assert await refusal(verifier, token) == code


@pytest.mark.parametrize(
    "sub",
    [DROP, "", "x" * 256, "a\x00b", "line\nbreak", "del\x7f", "c1\x85", "me", "tasks", 42, None],
)
async def test_bad_subject_is_refused(verifier: TokenVerifier, sub: Any) -> None:
    assert await refusal(verifier, sign(payload=claims(sub=sub))) == "token_subject_invalid"


@pytest.mark.parametrize("sub", ["x" * 255, "ünïcödé-user", "Me", "user_2|auth0"])
async def test_unusual_but_valid_subject_is_accepted(verifier: TokenVerifier, sub: str) -> None:
    assert (await verifier.verify(sign(payload=claims(sub=sub)))).user_id == sub


@pytest.mark.parametrize("alg", ["HS256", "EdDSA"])
@pytest.mark.parametrize(
    "iss", ["https://evil.example.com", f"{ISSUER}.evil.net", ISSUER[:-4], [ISSUER], DROP]
)
async def test_wrong_issuer_is_refused(verifier: TokenVerifier, alg: str, iss: Any) -> None:
    assert await refusal(verifier, sign(alg, claims(iss=iss))) == "token_issuer_invalid"


@pytest.mark.parametrize("aud", [AUDIENCE, [AUDIENCE], ["https://other.example", AUDIENCE]])
async def test_audience_string_or_list_is_accepted(verifier: TokenVerifier, aud: Any) -> None:
    assert (await verifier.verify(sign("EdDSA", claims(aud=aud)))).user_id == "user-1"


@pytest.mark.parametrize("aud", ["https://other.example", [], [f"{AUDIENCE}/x"], DROP, 5])
async def test_wrong_audience_is_refused(verifier: TokenVerifier, aud: Any) -> None:
    assert await refusal(verifier, sign("EdDSA", claims(aud=aud))) == "token_audience_invalid"


async def test_unconfigured_issuer_and_audience_are_not_checked(
    make_verifier: Callable[..., TokenVerifier],
) -> None:
    verifier = make_verifier(issuer=None, audience=None)
    token = sign(payload=claims(iss="anything", aud="anyone"))
    assert (await verifier.verify(token)).user_id == "user-1"


# --- Algorithms and keys -------------------------------------------------------------

REFUSED_ALGORITHM_TOKENS = {
    "alg none": f"{b64({'alg': 'none'})}.{b64(claims())}.",
    "alg None": f"{b64({'alg': 'None'})}.{b64(claims())}.",
    "HS512": jwt.encode(claims(), SECRET + SECRET, algorithm="HS512"),
    "HS384": jwt.encode(claims(), SECRET + SECRET, algorithm="HS384"),
    "unknown alg": hand_made({"alg": "XYZ"}, claims()),
    "no alg": hand_made({"typ": "JWT"}, claims()),
    "numeric alg": hand_made({"alg": 256}, claims()),
}


@pytest.mark.parametrize("token", REFUSED_ALGORITHM_TOKENS.values(), ids=REFUSED_ALGORITHM_TOKENS)
async def test_unaccepted_algorithm_is_refused(verifier: TokenVerifier, token: str) -> None:
    assert await refusal(verifier, token) == "token_algorithm_refused"


async def test_hs256_signed_with_the_rsa_public_key_is_refused(
    make_verifier: Callable[..., TokenVerifier],
) -> None:
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = hand_made({"alg": "HS256", "kid": "rsa"}, claims(), key=pem)
    assert await refusal(make_verifier(), token) == "token_signature_invalid"
    assert await refusal(make_verifier(hs256_secret=None), token) == "token_algorithm_refused"


async def test_each_key_family_needs_its_key_source(
    make_verifier: Callable[..., TokenVerifier],
) -> None:
    assert await refusal(make_verifier(jwks_url=None), sign("EdDSA")) == "token_algorithm_refused"
    assert await refusal(make_verifier(hs256_secret=None), sign()) == "token_algorithm_refused"


async def test_token_signed_with_the_wrong_key_is_refused(verifier: TokenVerifier) -> None:
    other_secret = jwt.encode(claims(), b"another-secret-that-is-also-32-bytes", algorithm="HS256")
    assert await refusal(verifier, other_secret) == "token_signature_invalid"
    forged = jwt.encode(claims(), ATTACKER_KEY, algorithm="EdDSA", headers={"kid": "ed"})
    assert await refusal(verifier, forged) == "token_signature_invalid"


async def test_kid_of_a_key_of_another_type_is_refused(verifier: TokenVerifier) -> None:
    token = jwt.encode(claims(), EC_KEY, algorithm="ES256", headers={"kid": "ed"})
    assert await refusal(verifier, token) == "token_algorithm_refused"


async def test_embedded_jwk_and_jku_headers_are_ignored(
    verifier: TokenVerifier, jwks: JwksServer
) -> None:
    attacker = {"jwk": jwk(ATTACKER_KEY, "ed"), "jku": jwks.url.replace("/jwks", "/evil")}
    for kid in ("ed", None):
        headers = {**attacker, "kid": kid} if kid else attacker
        token = jwt.encode(claims(), ATTACKER_KEY, algorithm="EdDSA", headers=headers)
        assert await refusal(verifier, token) == "token_signature_invalid"
    assert "/evil" not in jwks.paths


@pytest.mark.parametrize("crit", [["exp"], ["b64"], ["urn:example:custom"]])
async def test_crit_header_is_refused(verifier: TokenVerifier, crit: list[str]) -> None:
    token = hand_made({"alg": "HS256", "crit": crit, "urn:example:custom": 1}, claims())
    assert await refusal(verifier, token) == "token_crit_unsupported"


# --- Token shapes ------------------------------------------------------------------

MALFORMED_TOKENS = {
    "three garbage parts": "a.b.c",
    "non-base64 header": "!!!!.e30.e30",
    "header not JSON": f"{b64(b'not json')}.{b64(claims())}.sig",
    "header a JSON list": f"{b64(['alg', 'HS256'])}.{b64(claims())}.sig",
    "payload a JSON list": hand_made({"alg": "HS256"}, [claims()]),
    "payload not JSON": hand_made({"alg": "HS256"}, b"\xff\xfe"),
    "payload too deep": hand_made({"alg": "HS256"}, b"[" * 3000),
    "kid not a string": hand_made({"alg": "HS256", "kid": 7}, claims()),
    "signature not base64": sign().rsplit(".", 1)[0] + ".***",
    "100 KB": "a" * 50_000 + "." + "b" * 50_000 + ".c",
    "non-ASCII": sign() + "é",
}


@pytest.mark.parametrize("token", MALFORMED_TOKENS.values(), ids=MALFORMED_TOKENS)
async def test_malformed_token_is_refused(verifier: TokenVerifier, token: str) -> None:
    assert await refusal(verifier, token) == "token_malformed"


@pytest.mark.parametrize("token", ["H3ZbW8yV2kVfR1nQmP0aXcT7uE4sLdJ9", "H3ZbW8yV2k.VfR1nQmP0aXcT"])
async def test_session_token_is_called_opaque_and_explained(
    verifier: TokenVerifier, token: str
) -> None:
    with pytest.raises(TokenError) as info:
        await verifier.verify(token)
    assert info.value.code == "token_opaque"
    assert "/api/auth/token" in info.value.description
    assert "authClient.token()" in info.value.description


async def test_verify_raises_only_token_error_for_any_input(verifier: TokenVerifier) -> None:
    rng = random.Random(8725)  # noqa: S311 - reproducible fuzzing, not cryptography
    alphabet = "ABCxyz019-_=.+/ {}[]\"'\\\x00é"
    tokens = ["", ".", "..", "...", "e30.e30.", "e30..", ".e30.e30", "=.=.="]
    tokens += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80))) for _ in range(300)]
    tokens += [bytes(rng.randrange(256) for _ in range(60)).decode("latin-1") for _ in range(100)]
    for payload in (1, "x", None, True, {"exp": 1e308 * 10}, {"sub": {"a": 1}}, {"exp": []}):
        tokens.append(hand_made({"alg": "HS256"}, payload))
    tokens.append(hand_made({"alg": "HS256"}, b'{"exp": 1' + b"0" * 5000 + b"}"))
    tokens.append(hand_made({"alg": "EdDSA", "kid": ["ed"]}, claims()))
    tokens.append(hand_made({"alg": "EdDSA", "kid": "ed"}, claims()))
    tokens.append(hand_made({"alg": "ES256", "kid": "ec"}, claims()))
    for token in tokens:
        with pytest.raises(TokenError):
            await verifier.verify(token)


# --- Authorization header ------------------------------------------------------------

HEADER_CASES = {
    "Bearer": ([b"Bearer abc.def.ghi"], "abc.def.ghi"),
    "bearer": ([b"bearer abc.def.ghi"], "abc.def.ghi"),
    "BEARER, extra spaces": ([b"BEARER   abc.def.ghi  "], "abc.def.ghi"),
    "no header": ([], "token_missing"),
    "empty": ([b""], "token_missing"),
    "Basic": ([b"Basic dXNlcjpwYXNz"], "token_missing"),
    "scheme only": ([b"Bearer"], "token_malformed"),
    "two headers": ([b"Bearer a.b.c", b"Bearer d.e.f"], "token_malformed"),
    "non-ASCII": (["Bearer abc.déf.ghi".encode()], "token_malformed"),
    "space inside": ([b"Bearer abc def"], "token_malformed"),
    "quote inside": ([b'Bearer abc"def'], "token_malformed"),
    "100 KB": ([b"Bearer " + b"a" * 100_000], "token_malformed"),
}


@pytest.mark.parametrize(("values", "expected"), HEADER_CASES.values(), ids=HEADER_CASES)
def test_bearer_token_from_authorization_header(values: list[bytes], expected: str) -> None:
    if expected.startswith("token_"):
        with pytest.raises(TokenError) as info:
            bearer_token(values)
        assert info.value.code == expected
    else:
        assert bearer_token(values) == expected


# --- JWKS fetching -------------------------------------------------------------------


async def test_rotated_in_key_is_accepted_after_refresh_on_unknown_kid(
    verifier: TokenVerifier, jwks: JwksServer
) -> None:
    await verifier.verify(sign("EdDSA"))
    jwks.document["keys"].append(jwk(ED_NEW_KEY, "ed-2"))
    token = jwt.encode(claims(), ED_NEW_KEY, algorithm="EdDSA", headers={"kid": "ed-2"})
    assert (await verifier.verify(token)).user_id == "user-1"
    assert jwks.fetches == 2


async def test_removed_key_is_refused_once_the_key_set_is_refreshed(
    make_verifier: Callable[..., TokenVerifier], jwks: JwksServer
) -> None:
    verifier = make_verifier(cache_size=0)
    await verifier.verify(sign("EdDSA"))
    jwks.document = {"keys": [jwk(ED_NEW_KEY, "ed-2")]}
    assert await refusal(verifier, sign("EdDSA", kid="unknown")) == "token_key_unknown"
    assert await refusal(verifier, sign("EdDSA")) == "token_key_unknown"


async def test_stale_keys_serve_while_the_ttl_refresh_runs_in_background(
    make_verifier: Callable[..., TokenVerifier], jwks: JwksServer
) -> None:
    verifier = make_verifier(jwks_ttl_seconds=0.05, cache_size=0)
    await verifier.verify(sign("EdDSA"))
    jwks.document = {"keys": [jwk(ED_NEW_KEY, "ed-2")]}
    await asyncio.sleep(0.1)
    assert (await verifier.verify(sign("EdDSA"))).user_id == "user-1"
    for _ in range(100):
        if jwks.fetches == 2 and verifier.jwks_refresh_count == 2 and not verifier._inflight:
            break
        await asyncio.sleep(0.01)
    assert await refusal(verifier, sign("EdDSA")) == "token_key_unknown"


async def test_jwks_server_down_fails_closed(make_verifier: Callable[..., TokenVerifier]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    verifier = make_verifier(jwks_url=f"http://127.0.0.1:{port}/jwks")
    await verifier.start()
    assert verifier.jwks_status == "unavailable"
    assert await refusal(verifier, sign("EdDSA")) == "jwks_unavailable"
    assert (await verifier.verify(sign("HS256"))).user_id == "user-1"


async def test_slow_jwks_server_times_out(
    make_verifier: Callable[..., TokenVerifier], jwks: JwksServer
) -> None:
    jwks.delay = 1.0
    verifier = make_verifier(jwks_timeout_seconds=0.2)
    started = time.monotonic()
    assert await refusal(verifier, sign("EdDSA")) == "jwks_unavailable"
    assert time.monotonic() - started < 0.8


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, b"not json"), (200, b"[]"), (200, b'{"keys": "none"}'), (200, b"<html>"), (500, None)],
)
async def test_garbage_jwks_fails_closed(
    verifier: TokenVerifier, jwks: JwksServer, status: int, body: bytes | None
) -> None:
    jwks.status, jwks.body = status, body
    assert await refusal(verifier, sign("EdDSA")) == "jwks_unavailable"
    assert verifier.jwks_status == "unavailable"


async def test_cached_keys_keep_working_when_a_refresh_fails(
    make_verifier: Callable[..., TokenVerifier], jwks: JwksServer
) -> None:
    verifier = make_verifier(cache_size=0)
    await verifier.start()
    jwks.status = 503
    assert await refusal(verifier, sign("EdDSA", kid="new")) == "token_key_unknown"
    assert jwks.fetches == 2
    assert (await verifier.verify(sign("EdDSA"))).user_id == "user-1"
    assert verifier.jwks_status == "ok"


async def test_malformed_and_unsupported_jwks_entries_are_skipped(
    verifier: TokenVerifier, jwks: JwksServer
) -> None:
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    jwks.document["keys"][:0] = [
        "not an object",
        {"kty": "OKP", "crv": "Ed25519", "x": "!!", "kid": "bad"},
        {"kty": "oct", "k": b64(SECRET), "kid": "oct"},
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
        jwk(small_rsa, "weak"),
        jwk(ED_NEW_KEY, "enc", use="enc"),
        jwk(ED_NEW_KEY, "ed", alg="ES256"),
    ]
    assert (await verifier.verify(sign("EdDSA"))).user_id == "user-1"
    with pytest.warns(InsecureKeyLengthWarning):
        weak = jwt.encode(claims(), small_rsa, algorithm="RS256", headers={"kid": "weak"})
    assert await refusal(verifier, weak) == "token_key_unknown"


async def test_cooldown_turns_a_flood_of_unknown_kids_into_one_fetch(
    make_verifier: Callable[..., TokenVerifier], jwks: JwksServer
) -> None:
    verifier = make_verifier(jwks_refresh_cooldown_seconds=30.0)
    await verifier.start()
    for i in range(50):
        assert await refusal(verifier, sign("EdDSA", kid=f"kid-{i}")) == "token_key_unknown"
    assert jwks.fetches == 1


async def test_concurrent_misses_share_one_fetch(
    make_verifier: Callable[..., TokenVerifier], jwks: JwksServer
) -> None:
    # A time limit far above the delay: on a busy machine a fetch cut off by it would
    # be retried, which is not what this test is about.
    verifier = make_verifier(jwks_timeout_seconds=10)
    jwks.delay = 0.2
    tokens = [sign("EdDSA", claims(sub=f"user-{i}")) for i in range(20)]
    principals = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert [p.user_id for p in principals] == [f"user-{i}" for i in range(20)]
    assert jwks.fetches == 1


@pytest.mark.parametrize(
    "kid", ["../../etc/passwd", "' OR 1=1; DROP TABLE tasks; --", "%2e%2e/", ""]
)
async def test_hostile_kid_is_just_an_unknown_kid(
    verifier: TokenVerifier, jwks: JwksServer, kid: str
) -> None:
    assert await refusal(verifier, sign("EdDSA", kid=kid)) == "token_key_unknown"
    assert set(jwks.paths) == {"/jwks"}


# --- Cache of verified tokens --------------------------------------------------------


async def test_cache_hit_rechecks_exp(
    make_verifier: Callable[..., TokenVerifier], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    verifier = make_verifier(clock=clock)
    token = sign("EdDSA", claims(exp=NOW + 60))
    await verifier.verify(token)

    def no_signature_checks(*args: Any) -> dict[str, Any]:
        raise AssertionError("a cached token was verified again")

    monkeypatch.setattr(auth, "_verify_signature", no_signature_checks)
    clock.now = NOW + 89
    assert (await verifier.verify(token)).user_id == "user-1"
    clock.now = NOW + 90
    assert await refusal(verifier, token) == "token_expired"


async def test_cache_is_flushed_when_the_key_set_changes(
    verifier: TokenVerifier, jwks: JwksServer
) -> None:
    token = sign("EdDSA")
    await verifier.verify(token)
    jwks.document = {"keys": [jwk(ED_NEW_KEY, "ed-2")]}
    assert await refusal(verifier, sign("EdDSA", kid="unknown")) == "token_key_unknown"
    assert await refusal(verifier, token) == "token_key_unknown"


# --- Configuration -------------------------------------------------------------------


def settings(**values: Any) -> Settings:
    fields = ("jwt_secret", "better_auth_secret", "better_auth_url", "jwt_jwks_url")
    fields += ("jwt_issuer", "jwt_audience")
    return Settings(_env_file=None, **{name: values.get(name) for name in fields})  # type: ignore[call-arg]


def test_better_auth_url_alone_configures_jwks_issuer_and_audience() -> None:
    config = AuthConfig.from_settings(
        settings(better_auth_url="https://app.example.com/", better_auth_secret=SECRET.decode())
    )
    assert config.jwks_url == "https://app.example.com/api/auth/jwks"
    assert (config.jwks_issuer, config.jwks_audience) == ("https://app.example.com",) * 2
    assert config.hs256_secret is None
    assert (config.issuer, config.audience) == (None, None)


def test_better_auth_secret_alone_enables_hs256() -> None:
    config = AuthConfig.from_settings(settings(better_auth_secret=SECRET.decode()))
    assert (config.hs256_secret, config.jwks_url, config.configured) == (SECRET, None, True)


def test_explicit_jwt_secret_enables_hs256_next_to_jwks() -> None:
    config = AuthConfig.from_settings(
        settings(
            jwt_secret=SECRET.decode(),
            jwt_jwks_url="https://idp.example.com/.well-known/jwks.json",
            jwt_issuer="https://idp.example.com/",
            jwt_audience="todo-api",
        )
    )
    assert config.hs256_secret == SECRET
    assert (config.issuer, config.jwks_issuer) == ("https://idp.example.com/",) * 2
    assert (config.audience, config.jwks_audience) == ("todo-api", "todo-api")


@pytest.mark.parametrize(
    "url", ["http://auth.example.com/jwks", "ftp://127.0.0.1/jwks", "https:///jwks"]
)
def test_jwks_url_must_be_https_outside_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="JWKS URL"):
        AuthConfig.from_settings(settings(jwt_jwks_url=url))


@pytest.mark.parametrize("url", ["http://localhost:3000", "http://127.0.0.1:3000", "http://[::1]"])
def test_plain_http_jwks_is_allowed_on_loopback(url: str) -> None:
    assert AuthConfig.from_settings(settings(better_auth_url=url)).jwks_url == (
        f"{url}/api/auth/jwks"
    )


def test_cooldown_above_a_minute_is_refused() -> None:
    with pytest.raises(ValueError, match="cooldown"):
        AuthConfig(SECRET, None, None, None, None, None, jwks_refresh_cooldown_seconds=61)


def test_jwks_status_without_jwks_is_not_configured() -> None:
    assert TokenVerifier(AuthConfig(SECRET, None, None, None, None, None)).jwks_status == (
        "not_configured"
    )
