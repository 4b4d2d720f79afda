"""Single-use tickets that open one event stream, for the browser's `EventSource`
(which cannot send an `Authorization` header).

A ticket is signed (HMAC-SHA256 with a key every instance derives from the deployment's
auth settings) and names its user, its own id, its expiry and the expiry of the token
that minted it; the database holds one row per unspent ticket. Spending deletes that
row in the ticket's user's own transaction (row-level security applies), so of two
instances racing for one ticket exactly one gets a row back.

A JWT is never accepted in a URL: only a ticket is.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import delete, insert
from starlette.datastructures import QueryParams
from starlette.types import Scope

from todo_api.auth.principal import Principal, TokenError
from todo_api.db.database import Database, Session
from todo_api.models import event_tickets_table as tk
from todo_api.services import clock
from todo_api.services.cursors import b64url, unb64url

#: Longest ticket accepted (a user id of 255 characters fits with room to spare).
MAX_TICKET_LENGTH = 1024
_MAC_BYTES = 16
#: `/api/events`, `/api/me/events`, `/api/{user_id}/events` (a trailing slash allowed).
_STREAM_PATH = re.compile(r"/api(/[^/]+)?/events/?")


@dataclass(frozen=True)
class Ticket:
    ticket: str
    expires_at: datetime


@dataclass(frozen=True)
class _Claims:
    user_id: str
    ticket_id: str
    expires_at: int
    token_expires_at: int | None


class TicketCodec:
    """Signs and checks tickets (no I/O)."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self.key, b"ticket\x00" + payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def sign(self, claims: _Claims) -> str:
        payload = orjson.dumps(
            [claims.user_id, claims.ticket_id, claims.expires_at, claims.token_expires_at]
        )
        return f"{b64url(payload)}.{b64url(self._mac(payload))}"

    def read(self, ticket: str) -> _Claims:
        """The claims of a ticket this deployment signed; `TokenError` otherwise."""
        invalid = TokenError("ticket_invalid", "The ticket is not one this server issued.")
        if len(ticket) > MAX_TICKET_LENGTH:
            raise invalid
        if ticket.count(".") == 2:
            raise TokenError(
                "ticket_invalid",
                "A JWT is never accepted in a URL; send it as 'Authorization: Bearer' or "
                "mint a ticket with POST /api/me/events/tickets.",
            )
        head, _, mac = ticket.partition(".")
        try:
            payload, signature = unb64url(head), unb64url(mac)
        except (binascii.Error, ValueError):
            raise invalid from None
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise invalid
        user_id, ticket_id, expires_at, token_expires_at = orjson.loads(payload)
        return _Claims(user_id, ticket_id, expires_at, token_expires_at)


def stream_ticket(scope: Scope) -> str | None:
    """The `ticket` query parameter of a request that opens an event stream, if any."""
    if scope["method"] != "GET" or _STREAM_PATH.fullmatch(scope["path"]) is None:
        return None
    ticket = QueryParams(scope["query_string"]).get("ticket")
    return ticket or None


def token_expiry(principal: Principal) -> int | None:
    """When the token that authenticated `principal` expires (Unix seconds), if it says."""
    exp: Any = principal.claims.get("exp")
    return int(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


async def mint(
    session: Session, codec: TicketCodec, principal: Principal, ttl_seconds: int
) -> Ticket:
    """A new ticket for the caller, valid `ttl_seconds` (never past the token's own expiry)."""
    now = clock.now()
    expires = int(now.timestamp()) + ttl_seconds
    token_expires = token_expiry(principal)
    if token_expires is not None:
        expires = min(expires, token_expires)
    ticket_id = secrets.token_hex(16)
    expires_at = datetime.fromtimestamp(expires, UTC)
    user_id = principal.user_id
    # Unspent tickets of this user that have expired go first: the table stays small.
    await session.execute(delete(tk).where(tk.c.user_id == user_id, tk.c.expires_at < now))
    await session.execute(insert(tk).values(user_id=user_id, id=ticket_id, expires_at=expires_at))
    claims = _Claims(user_id, ticket_id, expires, token_expires)
    return Ticket(codec.sign(claims), expires_at)


async def spend(database: Database, codec: TicketCodec, ticket: str) -> Principal:
    """The principal a ticket stands for; it can never be spent again.

    Raises `TokenError` for a forged, expired or already spent ticket, and
    `DatabaseUnavailable` when the database cannot be asked."""
    claims = codec.read(ticket)
    if claims.expires_at <= clock.now().timestamp():
        raise TokenError("ticket_expired", "The ticket has expired; mint a new one.")
    async with database.transaction(claims.user_id) as session:
        spent = await session.execute(
            delete(tk)
            .where(tk.c.user_id == claims.user_id, tk.c.id == claims.ticket_id)
            .returning(tk.c.id)
        )
        found = spent.first() is not None
    if not found:
        raise TokenError("ticket_used", "The ticket was already used; mint a new one.")
    exp = claims.token_expires_at
    return Principal(claims.user_id, None, None, {"exp": exp} if exp is not None else {})
