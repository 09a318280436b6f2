"""A real Concord server on a database of its own, and Debian's Chromium driven by Playwright.

Every page a journey visits is checked with axe-core: no serious or critical violation.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from concord.clock import FakeClock, set_clock
from concord.db import make_engine, make_sessionmaker
from concord.migrate import upgrade
from concord.settings import Settings
from tests.conftest import NOW, fresh_database

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Debian's Chromium, headless, with nothing that reaches the network on its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module", autouse=True)
def module_clock() -> Iterator[None]:
    """The fixed test clock for the whole module. Each test sets its own (tests/conftest.py),
    but a module's data is made by module fixtures before that, and it must be dated by the
    same clock the server then reads, not by the calendar."""
    previous = set_clock(FakeClock(NOW))
    yield
    set_clock(previous)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_db(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, migrated_database: str
) -> Iterator[str]:
    """The module's own database, a copy of the worker's migrated one (the server's start-up
    `upgrade` then finds nothing to do)."""
    tmp = tmp_path_factory.mktemp("browser")
    with fresh_database(database_url, tmp, "browser", like=migrated_database) as url:
        yield url


@pytest.fixture(scope="module")
def live(server_db: str) -> Iterator[dict[str, Any]]:
    import uvicorn

    from concord.app import create_app
    from concord.audit.service import set_context, write_pending
    from tests.factories import build_personas

    engine = make_engine(server_db)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with factory() as session:
        set_context(session, channel="system")
        people = build_personas(session)
        write_pending(session)
        session.commit()
    port = _free_port()
    settings = Settings(env="test", database_url=server_db, base_url=f"http://127.0.0.1:{port}")
    app = create_app(settings, session_factory=factory)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}", "people": people, "factory": factory}
    server.should_exit = True
    thread.join(timeout=5)
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# What axe found on each document this worker checked, by FINGERPRINT.
_AXE_FOUND: dict[str, list[str]] = {}
# The document as the browser holds it now (form fields' current values and states, which
# outerHTML leaves out, included; the CSRF token's value, new each session, left out) and the
# viewport's size.
FINGERPRINT = """() => {
  if (!document.documentElement) return null;
  const kinds = 'input, textarea, select, details, dialog';
  const clone = document.documentElement.cloneNode(true);
  const copies = clone.querySelectorAll(kinds);
  document.documentElement.querySelectorAll(kinds).forEach((el, i) => {
    if ('value' in el) copies[i].setAttribute('data-value', el.value);
    if ('checked' in el) copies[i].setAttribute('data-checked', el.checked);
    if ('open' in el) copies[i].setAttribute('data-open', el.open);
  });
  const token = document.querySelector('input[name=csrf_token]')?.value;
  const markup = token ? clone.outerHTML.split(token).join('') : clone.outerHTML;
  const focus = document.activeElement ? document.activeElement.id : '';
  return window.innerWidth + 'x' + window.innerHeight + ' ' + focus + ' ' + markup;
}"""


class Visitor:
    """A person at a browser. Every page they reach is checked for accessibility."""

    def __init__(self, browser: Any, base: str, *, phone: bool = False) -> None:
        viewport = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 900}
        self.context = browser.new_context(viewport=viewport, base_url=base)
        self.page = self.context.new_page()
        self.checked: dict[str, list[str]] = {}
        # Files every page loads (styles, scripts, the icon) must all be there: the browser
        # reports a missing one only on its console.
        self.missing: list[str] = []
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        url = (message.location or {}).get("url", "")
        path = "/" + url.split("/", 3)[-1] if url.count("/") >= 3 else url
        if message.type == "error" and path.startswith(("/static/", "/favicon")):
            self.missing.append(f"{path}: {message.text}")

    def check_accessibility(self) -> None:
        # The same document at the same size was checked already in this worker: axe, given
        # the same markup and the same style sheets, finds the same (a run costs a third of a
        # second or more of the browser's CPU; journeys come back to the same pages, and every
        # sign-in shows the same form). The key is the whole markup as it stands, form values
        # included, with only the CSRF token's value set aside.
        self.page.wait_for_load_state()
        key = self.page.evaluate(FINGERPRINT)
        described = _AXE_FOUND.get(key) if key is not None else None
        if described is None:
            described = self._problems()
            if key is not None:
                _AXE_FOUND[key] = described
        if key is not None and os.environ.get("CONCORD_AXE_STATS"):
            with open(os.environ["CONCORD_AXE_STATS"], "a") as f:
                f.write(f"{hashlib.sha256(key.encode()).hexdigest()[:12]} {self.page.url}\n")
        self.checked[self.page.url] = described
        assert described == [], f"accessibility problems on {self.page.url}: {described}"
        assert self.missing == [], f"files missing on {self.page.url}: {self.missing}"

    def _problems(self) -> list[str]:
        from axe_playwright_python.sync_playwright import Axe

        results = Axe().run(self.page)
        serious = [
            v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")
        ]
        described = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in serious
        ]
        # Two elements with one id make a label name the wrong field; axe rates it minor.
        duplicates = self.page.evaluate(
            """() => { const seen = {}, dup = new Set();
                for (const el of document.querySelectorAll('[id]')) {
                    if (seen[el.id]) dup.add(el.id); seen[el.id] = true; }
                return [...dup]; }"""
        )
        described += [f"duplicate id: {name}" for name in duplicates]
        return described

    def goto(self, path: str) -> Any:
        response = self.page.goto(path)
        self.check_accessibility()
        return response

    def sign_in(self, email: str, password: str = "correct horse battery") -> None:
        self.page.goto("/sign-in")
        self.check_accessibility()
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state()
        self.check_accessibility()

    def close(self) -> None:
        self.context.close()
