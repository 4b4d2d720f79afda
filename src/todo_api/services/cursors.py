"""Opaque, signed keyset cursors (task pages and the change feed)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

from todo_api.errors import Unprocessable


def b64url(raw: bytes) -> str:
    """`raw` as unpadded base64url (URL- and header-safe)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """The bytes of unpadded base64url `text`; `binascii.Error` or `ValueError` if it is
    not base64url."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Opaque keyset cursors, signed so that a tampered one is refused.

    A cursor names the last row of a page by its sort key and id, and records the sort
    and filters it was made for: reusing it with other parameters is an error. The MAC
    also covers the user id, so a cursor issued to one user is invalid for another.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, user_id: str, payload: bytes) -> bytes:
        message = user_id.encode("utf-8", "surrogatepass") + b"\x00" + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:12]

    def encode(self, user_id: str, binding: list[Any], key: list[Any]) -> str:
        payload = orjson.dumps([binding, key])
        return b64url(payload + self._mac(user_id, payload))

    def decode(self, user_id: str, cursor: str, binding: list[Any]) -> list[Any]:
        try:
            raw = unb64url(cursor)
        except (binascii.Error, ValueError):
            raise bad_cursor() from None
        payload, mac = raw[:-12], raw[-12:]
        if len(raw) <= 12 or not hmac.compare_digest(mac, self._mac(user_id, payload)):
            raise bad_cursor()
        stored_binding, key = orjson.loads(payload)
        if stored_binding != binding:
            raise Unprocessable(
                "This cursor was issued for a different sort or filter; "
                "start again from the first page.",
                code="cursor_mismatch",
            )
        if not isinstance(key, list) or len(key) != 2 or not isinstance(key[1], int):
            raise bad_cursor()
        return key


def bad_cursor() -> Unprocessable:
    return Unprocessable("The cursor is not one this server issued.", code="cursor_invalid")
