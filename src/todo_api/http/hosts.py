"""The `Host` allow list (`ALLOWED_HOSTS`): a request naming any other host is a 400.

The API never builds a URL from `Host` (every `Location` and `Link` is a relative
reference), so the list is a second line: a deployment answers only for the names it is
published under, which defeats DNS rebinding and keeps a forged `Host` out of anything
downstream (logs, caches, a proxy's routing). `/healthz` and `/readyz` are answered
whatever the `Host`: load balancers and orchestrators probe instances by address.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from todo_api.errors import BadRequest
from todo_api.http.problems import send_problem

#: Probes reach an instance by its address, not by the public name.
_ANY_HOST_PATHS = frozenset({"/healthz", "/readyz"})


class HostNotAllowed(BadRequest):
    code = "host_not_allowed"
    detail = "The Host header does not name a host this server answers for."


def host_name(value: bytes) -> str:
    """The host of a `Host` header value, lower-cased, without its port."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):  # an IPv6 literal: [::1]:8000
        return text[: text.find("]") + 1] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether `host` matches an entry: `*`, an exact name, or `*.example.com` (any
    subdomain of `example.com`, not `example.com` itself)."""
    for entry in allowed:
        if entry == "*" or entry == host:
            return True
        if entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1:
            return True
    return False


class AllowedHostsMiddleware:
    """Refuses requests whose `Host` is not in the allow list (problem+json 400)."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed = [entry.lower() for entry in allowed_hosts]
        self.everything = "*" in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.everything or scope["type"] != "http" or scope["path"] in _ANY_HOST_PATHS:
            await self.app(scope, receive, send)
            return
        values = [value for name, value in scope["headers"] if name == b"host"]
        if len(values) == 1 and host_allowed(host_name(values[0]), self.allowed):
            await self.app(scope, receive, send)
            return
        error = HostNotAllowed()
        await send_problem(scope, send, error.status, error.code, error.detail)
