"""The verified caller and the bearer token they sent: `Principal`, `TokenError` and
the parsing of an `Authorization` header (no verification here: see `tokens.py`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from todo_api.errors import Unauthorized

RESERVED_USER_IDS: frozenset[str] = frozenset(
    {"me", "tasks", "lists", "tags", "reminders", "changes", "events"}
)

MAX_TOKEN_LENGTH = 8192

# RFC 6750 b64token; anything else after "Bearer " cannot be a token we issue or accept.
#: RFC 6750 token characters (`b64token`, the padding allowed anywhere), as one pattern:
#: matched in C, where a set test per character costs microseconds on a 300-byte JWT.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/=]+")


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller: ``user_id`` is the token's ``sub``."""

    user_id: str
    email: str | None
    name: str | None
    claims: Mapping[str, Any]


class TokenError(Unauthorized):
    """A token was refused; ``code`` is machine-readable, ``description`` is for the developer
    (ASCII, no double quote or backslash, so it fits in a ``WWW-Authenticate`` header)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description, code=code)
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
    if _B64TOKEN.fullmatch(token) is None:
        raise TokenError(
            "token_malformed", "The token contains characters that no bearer token may contain."
        )
    return token
