"""Shared launcher for browser tests: Debian's chromium driven by Playwright, and a live desk server.

Use it from a conftest or a test module:

    from tests.browser_support import browser, chromium_browser, live_server  # noqa: F401  (fixtures)

    @pytest.mark.browser
    def test_something(live_server, browser):
        page = browser.new_page()
        page.goto(live_server.url + "/login")

``ensure_chromium()`` installs Debian's ``chromium`` with apt-get when ``/usr/bin/chromium`` is missing (a
fresh CI machine has nothing installed by hand), so the set-up needs no manual step. Nothing is downloaded
by Playwright itself: it is pointed at the system browser. Import all three fixtures: ``browser`` (a fresh
context per test) depends on ``chromium_browser`` (one chromium per test session).

``live_server`` serves the test ``app`` (same database as the ``db_session`` fixture) with Flask-SocketIO's
threading server on a free loopback port in a background thread; it is stopped after the test.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
_install_lock = threading.Lock()


class BrowserUnavailable(RuntimeError):
    """chromium is missing and could not be installed with apt-get."""


def ensure_chromium() -> str:
    """Return the path of Debian's chromium, installing the package with apt-get if it is missing.

    Raises BrowserUnavailable with apt-get's output when the install fails (no root, no network)."""
    with _install_lock:
        if Path(CHROMIUM).exists():
            return CHROMIUM
        apt = shutil.which("apt-get")
        if apt is None:
            raise BrowserUnavailable(f"{CHROMIUM} is missing and apt-get is not available to install it")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        wait_lock = ["-o", "DPkg::Lock::Timeout=600"]  # another test run (or helper) may be installing too
        steps = ([apt, *wait_lock, "update"],
                 [apt, *wait_lock, "install", "-y", "--no-install-recommends", "chromium"])
        for step in steps:
            done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                raise BrowserUnavailable(f"{' '.join(step)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        if not Path(CHROMIUM).exists():
            raise BrowserUnavailable(f"chromium was installed but {CHROMIUM} does not exist")
        return CHROMIUM


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 15.0) -> None:
    """Block until something accepts connections on 127.0.0.1:``port``; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


@dataclass
class LiveServer:
    """A desk app served over real HTTP and WebSocket on 127.0.0.1."""

    app: object
    port: int
    thread: threading.Thread
    wsgi_server: object

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_live_server(app) -> LiveServer:
    """Serve ``app`` (its WSGI stack includes the Socket.IO middleware, so WebSocket works through
    simple-websocket) with werkzeug's threaded server in a daemon thread; returns once the port accepts."""
    from werkzeug.serving import make_server

    port = free_port()
    wsgi_server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=wsgi_server.serve_forever, name=f"live-server-{port}", daemon=True)
    thread.start()
    wait_for_port(port)
    _allow_origin(f"http://127.0.0.1:{port}")
    return LiveServer(app=app, port=port, thread=thread, wsgi_server=wsgi_server)


def _allow_origin(origin: str) -> None:
    """Socket.IO accepts only PUBLIC_BASE_URL as an origin; the live server is served from its own
    address, which a browser (and python-socketio's websocket) sends as Origin."""
    from app.extensions import socketio

    eio = socketio.server.eio
    allowed = eio.cors_allowed_origins
    if isinstance(allowed, str) and allowed != "*":
        allowed = [allowed]
    if isinstance(allowed, list) and origin not in allowed:
        eio.cors_allowed_origins = [*allowed, origin]


def stop_live_server(server: LiveServer) -> None:
    """Stop serving and wait for the server thread to finish."""
    server.wsgi_server.shutdown()
    server.wsgi_server.server_close()
    server.thread.join(timeout=10)


@pytest.fixture()
def live_server(app) -> Iterator[LiveServer]:
    """The test app served on a free loopback port for the duration of one test."""
    server = start_live_server(app)
    try:
        yield server
    finally:
        stop_live_server(server)


@pytest.fixture(scope="session")
def chromium_browser():
    path = ensure_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def browser(chromium_browser):
    """A fresh browser context (own cookies and storage) per test, closed afterwards."""
    context = chromium_browser.new_context(locale="en-US", viewport={"width": 1366, "height": 860})
    try:
        yield context
    finally:
        context.close()
