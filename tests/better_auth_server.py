"""Run a real Better Auth server (tests/better_auth/) for end-to-end auth tests.

Plain helpers, no pytest fixtures: conftest.py decides scope and skipping.

    ensure_installed()
    with BetterAuthServer() as server:
        user = await sign_up(server.url, "a@example.com", "password1234", "Alice")
        token = await get_jwt(server.url, user.bearer_token)

The Node server keeps everything in memory, so each ``BetterAuthServer``
starts with no users and a signing key created on first use. Its JWT plugin
is left at Better Auth's defaults: EdDSA (Ed25519), ``iss`` and ``aud`` equal
to the server's base URL (``server.url``), 15 minute expiry; JWKS at
``{server.url}/api/auth/jwks``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

NODE_PROJECT_DIR = Path(__file__).resolve().parent / "better_auth"
SERVER_SCRIPT = NODE_PROJECT_DIR / "server.mjs"

# Fixed, test-only; at least 32 bytes as Better Auth asks. It signs the
# session cookies and encrypts the stored private keys, never the JWTs.
TEST_SECRET = "todo-api-test-only-better-auth-secret-0123456789"

READY_TIMEOUT = 20.0


class BetterAuthUnavailableError(RuntimeError):
    """Node or npm is missing, so the Better Auth server cannot run here."""


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def _pinned_version() -> str:
    package = json.loads((NODE_PROJECT_DIR / "package.json").read_text())
    return str(package["dependencies"]["better-auth"])


def _installed_version() -> str | None:
    installed = NODE_PROJECT_DIR / "node_modules" / "better-auth" / "package.json"
    try:
        return str(json.loads(installed.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def ensure_installed() -> None:
    """Run ``npm ci`` unless node_modules already holds the pinned better-auth."""
    if _installed_version() == _pinned_version():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise BetterAuthUnavailableError("node and npm are needed to run the Better Auth server")
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or _installed_version() != _pinned_version():
        raise RuntimeError(
            f"npm ci in {NODE_PROJECT_DIR} failed (exit {result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class BetterAuthServer:
    """Context manager running ``node server.mjs`` on a free loopback port."""

    def __init__(self, *, secret: str = TEST_SECRET, ready_timeout: float = READY_TIMEOUT) -> None:
        self.secret = secret
        self.ready_timeout = ready_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: list[str] = []
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._exit_code: int | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:45123`` (no trailing slash): also iss and aud."""
        if self.port is None:
            raise RuntimeError("BetterAuthServer is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/api/auth/jwks"

    def start(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise BetterAuthUnavailableError("node is needed to run the Better Auth server")
        # A port picked free can be taken before node binds it: try a few.
        for _attempt in range(3):
            self.port = _free_port()
            if self._spawn(node):
                return
            if "EADDRINUSE" not in "".join(self._stderr):
                break
        stderr = "".join(self._stderr)
        exit_code = self._exit_code
        self.stop()
        why = (
            f"exited with code {exit_code}"
            if exit_code is not None
            else f"did not print READY within {self.ready_timeout:.0f} s"
        )
        raise RuntimeError(f"Better Auth server ({SERVER_SCRIPT}) {why}; stderr:\n{stderr}")

    def _spawn(self, node: str) -> bool:
        env = {
            **os.environ,
            "PORT": str(self.port),
            "BETTER_AUTH_URL": self.url,
            "BETTER_AUTH_SECRET": self.secret,
            "BETTER_AUTH_TELEMETRY": "0",
        }
        for name in ("NODE_OPTIONS", "NODE_ENV"):
            env.pop(name, None)
        self._stderr = []
        self._exit_code = None
        self._ready.clear()
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [node, str(SERVER_SCRIPT)],
            cwd=NODE_PROJECT_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._proc = proc
        # Drain both pipes in threads so a chatty server never blocks on a full pipe.
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(proc,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(proc,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.05):
                return True
            if proc.poll() is not None:
                self._exit_code = proc.returncode
                break
        self._kill()
        return False

    def _read_stdout(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("READY"):
                self._ready.set()

    def _read_stderr(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        """What the server has written to stderr so far (for failure messages)."""
        return "".join(self._stderr)

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads = []

    def stop(self) -> None:
        self._kill()
        self.port = None

    def __enter__(self) -> BetterAuthServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class SignedUpUser:
    """What Better Auth hands a browser after ``POST /api/auth/sign-up/email``.

    ``session_token`` is the raw opaque session id (32 characters, no dot);
    ``bearer_token`` is the signed form (``<token>.<signature>``, one dot) that
    the session cookie and the bearer plugin's ``set-auth-token`` header carry,
    i.e. what a Better Auth client would send as ``Authorization: Bearer``.
    Neither is a JWT.
    """

    user_id: str
    email: str
    name: str
    session_token: str
    bearer_token: str
    cookies: dict[str, str] = field(default_factory=dict)
    user: dict[str, Any] = field(default_factory=dict)


async def sign_up(base_url: str, email: str, password: str, name: str) -> SignedUpUser:
    """Create a user with email and password; Better Auth signs them in at once."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        response = await client.post(
            "/api/auth/sign-up/email",
            json={"email": email, "password": password, "name": name},
        )
        if response.status_code != 200:
            raise RuntimeError(f"sign-up failed: {response.status_code} {response.text}")
        body = response.json()
        bearer_token = response.headers.get("set-auth-token")
        if not bearer_token:
            raise RuntimeError("sign-up response has no set-auth-token header")
        return SignedUpUser(
            user_id=body["user"]["id"],
            email=body["user"]["email"],
            name=body["user"]["name"],
            session_token=body["token"],
            bearer_token=bearer_token,
            cookies=dict(response.cookies),
            user=body["user"],
        )


async def get_jwt(base_url: str, bearer_token: str) -> str:
    """Exchange a session (its bearer token) for a JWT at ``GET /api/auth/token``."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        response = await client.get(
            "/api/auth/token", headers={"Authorization": f"Bearer {bearer_token}"}
        )
        if response.status_code != 200:
            raise RuntimeError(f"/api/auth/token failed: {response.status_code} {response.text}")
        token: str = response.json()["token"]
        return token


async def sign_up_and_get_jwt(
    base_url: str, email: str, password: str, name: str
) -> tuple[str, str]:
    """Sign a new user up and return ``(user_id, jwt)``."""
    user = await sign_up(base_url, email, password, name)
    return user.user_id, await get_jwt(base_url, user.bearer_token)


async def fetch_jwks(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        response = await client.get("/api/auth/jwks")
        response.raise_for_status()
        jwks: dict[str, Any] = response.json()
        return jwks
