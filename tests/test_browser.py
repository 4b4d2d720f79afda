"""A real browser as the client: headless Chromium runs a page served from
`http://localhost:<port>` that calls the API on another port, the way Next.js frontends
do, with the browser's own CORS enforcement. Needs Debian's `chromium` and
`chromium-driver` (CI installs them; without them these tests fail, never skip)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import make_settings, make_token
from tests.live_server import serve
from todo_api.main import create_app

PAGE_DIR = Path(__file__).parent / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def frontend() -> Iterator[str]:
    """The test page on `http://localhost:<port>` (3000, as `next dev`, when free)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(PAGE_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", _free_port(3000)), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
        "the browser tests need Debian's chromium and chromium-driver packages"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)
    # The browser is the client: it runs on the real clock even when the suite's is moved
    # (.ci/pytest-shifted preloads libfaketime into every process pytest starts).
    env = {
        k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")
    }
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env=env), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def run_page(browser: webdriver.Chrome, page: str, api: str, user: str) -> dict[str, Any]:
    query = urlencode({"api": api, "user": user, "token": make_token(user)})
    browser.get(f"{page}/frontend.html?{query}")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return window.results"))
    results: dict[str, Any] = browser.execute_script("return window.results")
    return results


def test_a_local_frontend_works_with_no_configuration(
    browser: webdriver.Chrome, owner_url: str
) -> None:
    app = create_app(make_settings(owner_url, cors_origins=[]))
    user = f"browser-{uuid.uuid4().hex[:8]}"
    with serve(app) as api, frontend() as page:
        out = run_page(browser, page, api, user)
    assert "error" not in out, out
    created = out["created"]
    assert created["status"] == 201
    assert created["body"]["priority"] == "high"
    assert created["location"] == f"/api/{user}/tasks/{created['body']['id']}"
    assert out["listed"]["status"] == 200
    assert [t["title"] for t in out["listed"]["body"]] == ["Second"]
    assert out["listed"]["link"] is not None  # exposed to the page by CORS
    assert out["withCredentials"]["status"] == 200
    put = out["put"]
    assert (put["status"], put["body"]["title"], put["body"]["priority"]) == (
        200,
        "Renamed in the browser",
        "high",
    )
    assert (out["toggled"]["status"], out["toggled"]["body"]["completed"]) == (200, True)
    deleted = out["deleted"]
    assert (deleted["status"], deleted["body"]["title"]) == (200, "Renamed in the browser")
    assert [t["title"] for t in out["after"]["body"]] == ["Second"]


def test_the_browser_blocks_an_origin_the_api_does_not_allow(
    browser: webdriver.Chrome, owner_url: str
) -> None:
    # Production-like: only the configured origin; the page's own origin is not it.
    app = create_app(make_settings(owner_url, cors_origins=["https://app.example.com"]))
    user = f"browser-{uuid.uuid4().hex[:8]}"
    with serve(app) as api, frontend() as page:
        out = run_page(browser, page, api, user)
    assert out == {"error": "TypeError: Failed to fetch"}


def test_native_event_source_on_a_ticket_receives_a_change(
    browser: webdriver.Chrome, owner_url: str
) -> None:
    app = create_app(make_settings(owner_url, cors_origins=[]))
    user = f"browser-{uuid.uuid4().hex[:8]}"
    with serve(app, timeout_graceful_shutdown=2) as api, frontend() as page:
        query = urlencode({"api": api, "token": make_token(user)})
        browser.get(f"{page}/events.html?{query}")
        WebDriverWait(browser, 30).until(lambda d: d.execute_script("return window.results"))
        out: dict[str, Any] = browser.execute_script("return window.results")
    assert "error" not in out, out
    assert out["ticketStatus"] == 201
    assert out["readyId"]
    assert out["createdStatus"] == 201
    (change,) = out["events"]
    assert change["data"]["op"] == "upsert"
    assert change["data"]["id"] == out["createdId"]
    assert change["data"]["object"]["title"] == "Made while listening"
    assert change["id"]
