"""Staff single sign-on (issue 21) in Chromium against a real OpenID Connect provider process:
node-oidc-provider, installed from the npm registry once into a cache folder and run by Node
(tests/fixtures/oidc/provider.mjs). Code flow with PKCE and nonce; the ID token checked with
joserfc; accounts matched by email; the organization can require SSO; passwords stay for
administrators and for organizations that do not require it."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from concord.accounts.models import Organization
from concord.audit.models import AuditEvent
from concord.db import make_engine, make_sessionmaker
from concord.migrate import upgrade
from concord.settings import Settings
from tests.browser.conftest import Visitor, _free_port

NODE, NPM = shutil.which("node"), shutil.which("npm")
OIDC_PROVIDER = "oidc-provider@8.8.1"
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "oidc" / "provider.mjs"
CACHE = Path(
    os.environ.get("CONCORD_TEST_NODE_CACHE", Path.home() / ".cache" / "concord-tests")
) / OIDC_PROVIDER.replace("@", "-")
CLIENT_ID, CLIENT_SECRET = "concord-staff", "provider-test-secret-0123456789"
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.skipif(not (NODE and NPM), reason="needs Node.js and npm")


def _installed() -> Path:
    """oidc-provider in the cache folder (npm install once, then reused)."""
    if not (CACHE / "node_modules" / "oidc-provider" / "package.json").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / "package.json").write_text('{"name": "concord-test-oidc", "private": true}')
        subprocess.run(
            [NPM, "install", "--no-audit", "--no-fund", "--silent", OIDC_PROVIDER],
            cwd=CACHE,
            check=True,
            timeout=300,
        )
    shutil.copyfile(FIXTURE, CACHE / "provider.mjs")
    return CACHE


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"concord": _free_port(), "provider": _free_port()}


@pytest.fixture(scope="module")
def provider(ports) -> Iterator[str]:
    folder = _installed()
    issuer = f"http://127.0.0.1:{ports['provider']}"
    env = {
        **os.environ,
        "PORT": str(ports["provider"]),
        "REDIRECT_URI": f"http://127.0.0.1:{ports['concord']}/sign-in/sso/callback",
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
    }
    log = (folder / f"provider-{ports['provider']}.log").open("wb")
    process = subprocess.Popen(
        [NODE, "provider.mjs"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        for _ in range(200):
            try:
                if httpx.get(issuer + "/.well-known/openid-configuration").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            pytest.fail(f"the OpenID provider did not start (see {log.name})")
        yield issuer
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def sso_live(server_db: str, provider: str, ports) -> Iterator[dict[str, Any]]:
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
    port = ports["concord"]
    settings = Settings(
        env="test",
        database_url=server_db,
        base_url=f"http://127.0.0.1:{port}",
        oidc_issuer=provider,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_provider_name="Riverside ID",
    )
    app = create_app(settings, session_factory=factory)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
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


def _sso(visitor: Visitor, login: str) -> None:
    """Click the SSO button, sign in at the provider's own page, allow, come back."""
    page = visitor.page
    page.goto("/sign-in")
    visitor.check_accessibility()
    page.get_by_role("link", name="Sign in with Riverside ID").click()
    page.wait_for_url("**/interaction/**")
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("anything")
    page.locator("button[type=submit]").click()
    page.wait_for_load_state()
    if "/interaction/" in page.url:  # the provider's consent page
        page.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: not url.startswith(provider_prefix(page)))
    page.wait_for_load_state()
    # The provider's own pages ask it for a favicon it does not have: not Concord's files.
    visitor.missing.clear()


def provider_prefix(page: Any) -> str:
    return page.url.split("/interaction/")[0] if "/interaction/" in page.url else "http://none"


def _sso_events(factory, outcome: str) -> list[dict[str, Any]]:
    with factory() as session:
        return [
            e.detail or {}
            for e in session.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "sign_in", AuditEvent.outcome == outcome
                )
            )
            if (e.detail or {}).get("method") == "sso"
        ]


def test_a_clinician_signs_in_with_the_provider(sso_live, browser):
    people = sso_live["people"]
    visitor = Visitor(browser, sso_live["url"])
    try:
        # The provider says the address in another case: matched all the same.
        _sso(visitor, people.care_manager.email.upper())
        assert visitor.page.url.startswith(sso_live["url"])
        assert "/sign-in" not in visitor.page.url
        visitor.check_accessibility()
        # Signed in as the care manager, with the role Concord granted.
        assert visitor.page.get_by_text(people.care_manager.name).first.is_visible()
        assert any(True for _ in _sso_events(sso_live["factory"], "success"))
    finally:
        visitor.close()


def test_no_account_no_entry(sso_live, browser):
    visitor = Visitor(browser, sso_live["url"])
    try:
        _sso(visitor, "stranger@elsewhere.example.org")
        assert "/sign-in" in visitor.page.url
        assert visitor.page.get_by_text("There is no active staff account").is_visible()
        visitor.check_accessibility()
        assert any(
            e.get("reason") == "no account" for e in _sso_events(sso_live["factory"], "denied")
        )
    finally:
        visitor.close()


def test_a_callback_without_the_browser_s_pending_sign_in_is_refused(sso_live):
    answer = httpx.get(sso_live["url"] + "/sign-in/sso/callback?code=abc&state=forged")
    assert answer.status_code == 401
    assert "expired or was opened in another browser" in answer.text


def test_the_organization_requires_sso(sso_live, browser):
    people = sso_live["people"]
    factory = sso_live["factory"]
    with factory() as session:
        session.get(Organization, people.org.id).sso_required = True
        session.commit()
    try:
        visitor = Visitor(browser, sso_live["url"])
        try:
            # A clinician's password is refused...
            visitor.sign_in(people.therapist.email, PASSWORD)
            assert "/sign-in" in visitor.page.url
            assert visitor.page.get_by_text("single sign-on").first.is_visible()
            # ...the provider lets them in...
            _sso(visitor, people.therapist.email)
            assert "/sign-in" not in visitor.page.url
        finally:
            visitor.close()
        # ...and an administrator keeps their password (a way in when the provider is down).
        admin = Visitor(browser, sso_live["url"])
        try:
            admin.sign_in(people.admin.email, PASSWORD)
            assert "/sign-in" not in admin.page.url
        finally:
            admin.close()
    finally:
        with factory() as session:
            session.get(Organization, people.org.id).sso_required = False
            session.commit()
