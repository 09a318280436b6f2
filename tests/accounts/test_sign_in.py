"""Signing in and staying signed in, as a person does it through the pages."""

from __future__ import annotations

import pyotp
import pytest
from sqlalchemy import func, select

from concord.accounts import mfa, passwords, sessions
from concord.accounts.models import LoginAttempt, WebSession
from concord.audit.models import AuditEvent
from tests.conftest import commit, csrf_of
from tests.factories import PASSWORD


def post_sign_in(client, email, password, forwarded_for=None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    token = csrf_of(client.get("/sign-in", headers=headers).text)
    return client.post(
        "/sign-in",
        data={"email": email, "password": password, "csrf_token": token, "next": "/patients"},
        headers=headers,
    )


@pytest.fixture
def proxied(settings, factory):
    """The app behind a configured reverse proxy at 10.0.0.1: requests arrive from it."""
    from fastapi.testclient import TestClient

    from concord.app import create_app

    app = create_app(
        settings.model_copy(update={"trusted_proxies": "10.0.0.1, 192.168.0.0/16"}),
        session_factory=factory,
    )
    with TestClient(
        app, base_url="http://testserver", follow_redirects=False, client=("10.0.0.1", 40000)
    ) as client:
        yield client


def _local_client(app):
    """The app as `concord serve` runs it (concord.server.server_config: uvicorn's own
    middleware included), asked by a peer on the machine itself, whose X-Forwarded-For
    uvicorn's default (proxy_headers on, 127.0.0.1 trusted) believed."""
    from fastapi.testclient import TestClient

    from concord.server import server_config

    config = server_config(app, host="127.0.0.1", port=0, proxy_headers=True)
    config.load()
    return TestClient(
        config.loaded_app,
        base_url="http://testserver",
        follow_redirects=False,
        client=("127.0.0.1", 40000),
    )


class TestSignIn:
    def test_a_clinician_signs_in_and_lands_on_their_patients(self, client, people):
        response = post_sign_in(client, "cara@test.example.org", PASSWORD)
        assert response.status_code == 303 and response.headers["location"] == "/patients"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        page = client.get("/patients")
        assert page.status_code == 200
        assert "Pat Ient" in page.text

    def test_emails_are_not_case_sensitive(self, client, people):
        assert post_sign_in(client, "  CARA@Test.Example.org ", PASSWORD).status_code == 303

    def test_a_wrong_password_is_refused_with_a_plain_message(self, client, people, session):
        response = post_sign_in(client, "cara@test.example.org", "wrong password!!")
        assert response.status_code == 401
        assert "do not match an active account" in response.text
        assert (
            "set-cookie" not in response.headers
            or "concord_session" not in response.headers["set-cookie"]
        )
        failed = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "sign_in", AuditEvent.outcome == "failed")
        )
        assert failed == 1

    def test_an_unknown_email_gets_the_same_answer(self, client, people):
        response = post_sign_in(client, "nobody@test.example.org", PASSWORD)
        assert response.status_code == 401
        assert "do not match an active account" in response.text

    def test_a_deactivated_account_cannot_sign_in(self, client, people, session):
        people.therapist.active = False
        commit(session)
        assert post_sign_in(client, "theo@test.example.org", PASSWORD).status_code == 401

    def test_the_sign_in_form_needs_its_csrf_token(self, client, people):
        client.get("/sign-in")
        response = client.post(
            "/sign-in",
            data={"email": "cara@test.example.org", "password": PASSWORD, "csrf_token": "forged"},
        )
        assert response.status_code == 403

    def test_next_cannot_send_someone_to_another_site(self, client, people):
        token = csrf_of(client.get("/sign-in").text)
        response = client.post(
            "/sign-in",
            data={
                "email": "cara@test.example.org",
                "password": PASSWORD,
                "csrf_token": token,
                "next": "//evil.example.com/x",
            },
        )
        assert response.headers["location"] == "/"


class TestThrottling:
    def test_repeated_failures_lock_the_account_for_a_while(self, client, people, clock):
        for _ in range(5):
            assert (
                post_sign_in(client, "cara@test.example.org", "nope nope nope").status_code == 401
            )
        # Even the right password is refused while throttled, and the message says what to do.
        response = post_sign_in(client, "cara@test.example.org", PASSWORD)
        assert response.status_code == 429
        assert "Wait 15 minutes" in response.text
        clock.advance(minutes=16)
        assert post_sign_in(client, "cara@test.example.org", PASSWORD).status_code == 303

    def test_four_failures_do_not_lock(self, client, people):
        for _ in range(4):
            post_sign_in(client, "cara@test.example.org", "nope nope nope")
        assert post_sign_in(client, "cara@test.example.org", PASSWORD).status_code == 303

    def test_a_success_resets_the_count(self, client, people):
        for _ in range(4):
            post_sign_in(client, "cara@test.example.org", "nope nope nope")
        assert post_sign_in(client, "cara@test.example.org", PASSWORD).status_code == 303
        client.cookies.clear()
        for _ in range(4):
            post_sign_in(client, "cara@test.example.org", "nope nope nope")
        assert post_sign_in(client, "cara@test.example.org", PASSWORD).status_code == 303

    def test_failed_attempts_are_kept_even_though_the_request_fails(self, client, people, session):
        post_sign_in(client, "cara@test.example.org", "nope nope nope")
        assert (
            session.scalar(
                select(func.count())
                .select_from(LoginAttempt)
                .where(LoginAttempt.success.is_(False))
            )
            == 1
        )

    def test_rotating_forwarded_for_from_an_unconfigured_peer_does_not_evade_it(self, app, people):
        """Issue 16, item 15: X-Forwarded-For was believed from any local peer, so a new
        address on each try was never throttled."""
        with _local_client(app) as client:
            for n in range(5):
                response = post_sign_in(
                    client, "cara@test.example.org", "nope nope nope", f"203.0.113.{n}"
                )
                assert response.status_code == 401
            response = post_sign_in(client, "cara@test.example.org", PASSWORD, "203.0.113.99")
            assert response.status_code == 429

    def test_the_address_of_many_failures_is_throttled_whatever_it_names(self, app, people):
        with _local_client(app) as client:
            for n in range(50):
                post_sign_in(client, f"guess{n}@test.example.org", "nope", f"198.51.100.{n}")
            response = post_sign_in(client, "theo@test.example.org", PASSWORD, "198.51.100.200")
            assert response.status_code == 429

    def test_a_configured_proxy_names_the_client(self, proxied, people, session):
        for _ in range(5):
            post_sign_in(proxied, "cara@test.example.org", "nope nope nope", "203.0.113.7")
        locked = post_sign_in(proxied, "cara@test.example.org", PASSWORD, "203.0.113.7")
        assert locked.status_code == 429
        # The same account from another client behind the same proxy is not locked out, and
        # the session records where the person really is. A client cannot put an address of
        # its own before the proxy's: the last untrusted address is the client's.
        ok = post_sign_in(proxied, "cara@test.example.org", PASSWORD, "1.2.3.4, 203.0.113.8")
        assert ok.status_code == 303
        session.expire_all()
        ips = set(session.scalars(select(WebSession.ip)))
        assert ips == {"203.0.113.8"}

    def test_failures_elsewhere_do_not_lock_a_clinician_out(self, proxied, people, clock):
        """Whoever knows an email could lock its owner out for 15 minutes: now the lock is
        per (account, address), and the account-wide slow-down spares the owner's own."""
        home = "192.168.1.20"
        assert post_sign_in(proxied, "cara@test.example.org", PASSWORD, home).status_code == 303
        proxied.cookies.clear()
        clock.advance(minutes=60)
        # An attacker rotating through real addresses fails far past every threshold.
        for n in range(40):
            post_sign_in(proxied, "cara@test.example.org", "nope nope nope", f"203.0.113.{n}")
        response = post_sign_in(proxied, "cara@test.example.org", PASSWORD, home)
        assert response.status_code == 303
        proxied.cookies.clear()
        # From an address the account has never used, sign-in is slowed down, not stopped.
        slowed = post_sign_in(proxied, "cara@test.example.org", "nope nope nope", "192.168.9.9")
        assert slowed.status_code == 429 and "Wait 60 seconds" in slowed.text
        clock.advance(seconds=61)
        assert (
            post_sign_in(proxied, "cara@test.example.org", PASSWORD, "192.168.9.9").status_code
            == 303
        )

    def test_a_few_failures_at_one_address_leave_other_addresses_alone(self, proxied, people):
        for _ in range(6):
            post_sign_in(proxied, "cara@test.example.org", "nope nope nope", "203.0.113.66")
        assert (
            post_sign_in(proxied, "cara@test.example.org", PASSWORD, "203.0.113.67").status_code
            == 303
        )


class TestSessions:
    def test_an_idle_session_ends_after_15_minutes(self, client, people, clock, sign_in):
        sign_in("cara@test.example.org")
        clock.advance(minutes=14)
        assert client.get("/patients").status_code == 200
        clock.advance(minutes=14)  # activity above reset the idle timer
        assert client.get("/patients").status_code == 200
        clock.advance(minutes=16)
        response = client.get("/patients")
        assert response.status_code == 303
        assert response.headers["location"] == "/sign-in?next=/patients&expired=idle"

    def test_an_active_session_still_ends_at_its_absolute_limit(
        self, client, people, clock, sign_in
    ):
        sign_in("cara@test.example.org")
        for _ in range(12 * 6):  # busy all day, every 10 minutes
            clock.advance(minutes=10)
            if client.get("/patients").status_code != 200:
                break
        response = client.get("/patients")
        assert response.status_code == 303
        assert "expired=absolute" in response.headers["location"]

    def test_the_idle_limit_is_a_setting(self, people, session, clock, monkeypatch):
        from concord.settings import get_settings

        monkeypatch.setenv("CONCORD_SESSION_IDLE_MINUTES", "5")
        get_settings.cache_clear()
        try:
            token, _ = sessions.start_session(
                session, user=people.care_manager, ip="1", user_agent="t", mfa_verified=True
            )
            clock.advance(minutes=6)
            assert sessions.session_for_token(session, token).expired_reason == "idle"
        finally:
            get_settings.cache_clear()

    def test_sign_out_ends_the_session(self, client, people, sign_in):
        token = sign_in("cara@test.example.org")
        response = client.post("/sign-out", data={"csrf_token": token})
        assert response.status_code == 303
        assert client.get("/patients").status_code == 303

    def test_sign_out_everywhere_ends_every_session(self, client, app, people, session, sign_in):
        from fastapi.testclient import TestClient

        other = TestClient(app, base_url="http://testserver", follow_redirects=False)
        sign_in("cara@test.example.org", target_client=other)
        token = sign_in("cara@test.example.org")
        client.post("/account/sign-out-everywhere", data={"csrf_token": token})
        assert other.get("/patients").status_code == 303
        assert client.get("/patients").status_code == 303
        open_sessions = session.scalar(
            select(func.count())
            .select_from(WebSession)
            .where(WebSession.user_id == people.care_manager.id, WebSession.revoked_at.is_(None))
        )
        assert open_sessions == 0

    def test_forms_without_the_csrf_token_are_refused(self, client, people, sign_in):
        sign_in("cara@test.example.org")
        response = client.post("/account/language", data={"language": "es"})
        assert response.status_code == 403
        assert people.care_manager.language == "en"

    def test_pages_with_patient_data_are_never_cached(self, client, people, sign_in):
        sign_in("cara@test.example.org")
        response = client.get("/patients")
        assert response.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]

    def test_every_answer_carries_the_security_headers(self, client):
        page = client.get("/sign-in")
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["pragma"] == "no-cache"
        # The sign-in form's CSRF token travels in an HttpOnly cookie set with the headers.
        cookie = page.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        token = client.cookies.get("concord_csrf") or ""
        assert token and token in page.text
        static = client.get("/static/concord.css")
        assert static.headers["cache-control"] == "public, max-age=3600"
        assert "content-security-policy" in static.headers
        icon = client.get("/favicon.ico", follow_redirects=True)
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
        assert f'href="{icon.url.path}"' in page.text
        docs = client.get("/api/docs")
        assert "content-security-policy" not in docs.headers
        api = client.get("/api/v1/patients")
        assert api.status_code == 401 and api.headers["cache-control"] == "no-store"


class TestPasswords:
    def test_a_temporary_password_must_be_changed_first(self, client, people, session):
        temporary = passwords.reset_password(session, user=people.therapist, by=people.admin)
        commit(session)
        response = post_sign_in(client, "theo@test.example.org", temporary)
        assert response.headers["location"] == "/account/password?required=1"
        assert client.get("/patients").headers["location"] == "/account/password?required=1"
        token = csrf_of(client.get("/account/password").text)
        bad = client.post(
            "/account/password",
            data={
                "csrf_token": token,
                "current_password": temporary,
                "new_password": "short",
                "confirm_password": "short",
            },
        )
        assert bad.status_code == 422 and "at least 12 characters" in bad.text
        good = client.post(
            "/account/password",
            data={
                "csrf_token": token,
                "current_password": temporary,
                "new_password": "a much longer passphrase",
                "confirm_password": "a much longer passphrase",
            },
        )
        assert good.status_code == 303
        assert client.get("/patients").status_code == 200


class TestMfa:
    def enrol(self, client, session, email):
        response = post_sign_in(client, email, PASSWORD)
        assert response.headers["location"].startswith("/account/mfa/setup")
        page = client.get("/account/mfa/setup")
        assert page.status_code == 200 and "<svg" in page.text
        secret = page.text.split('class="secret">')[1].split("<")[0]
        from concord.clock import now

        code = pyotp.TOTP(secret).at(now())
        confirm = client.post(
            "/account/mfa/setup", data={"csrf_token": csrf_of(page.text), "code": code}
        )
        assert confirm.status_code == 200, confirm.text
        return secret, confirm.text

    def test_an_organization_can_require_mfa_for_clinicians(self, client, people, session, clock):
        people.org.require_mfa_for_clinicians = True
        commit(session)
        response = post_sign_in(client, "cara@test.example.org", PASSWORD)
        assert response.headers["location"].startswith("/account/mfa/setup")
        # Nothing clinical is reachable before the second factor is set up.
        assert client.get("/patients").headers["location"] == "/account/mfa/setup"
        secret, codes_page = self.enrol(client, session, "cara@test.example.org")
        assert "recovery codes" in codes_page
        assert client.get("/patients").status_code == 200

    def test_patients_are_not_forced_to_use_mfa(self, client, people, session):
        people.org.require_mfa_for_clinicians = True
        commit(session)
        assert (
            post_sign_in(client, "pat@patients.example.org", PASSWORD).headers["location"]
            == "/patients"
        )

    def test_an_enrolled_user_gives_a_code_at_every_sign_in(self, client, people, session, clock):
        secret, _ = self.enrol_optional(client, people, session)
        client.cookies.clear()
        response = post_sign_in(client, "cara@test.example.org", PASSWORD)
        assert response.headers["location"].startswith("/sign-in/mfa")
        page = client.get("/sign-in/mfa")
        wrong = client.post(
            "/sign-in/mfa", data={"csrf_token": csrf_of(page.text), "code": "000000"}
        )
        assert wrong.status_code == 401
        clock.advance(seconds=31)
        right = client.post(
            "/sign-in/mfa",
            data={"csrf_token": csrf_of(page.text), "code": pyotp.TOTP(secret).at(clock.now())},
        )
        assert right.status_code == 303
        assert client.get("/patients").status_code == 200

    def test_wrong_codes_are_throttled_even_with_the_password(self, client, people, session, clock):
        """Whoever has the password could try every 6-digit code, signing in again whenever
        asked: wrong codes are counted per account, and a right password does not reset them."""
        secret, _ = self.enrol_optional(client, people, session)
        for _ in range(5):
            client.cookies.clear()
            assert post_sign_in(client, "cara@test.example.org", PASSWORD).status_code == 303
            page = client.get("/sign-in/mfa")
            wrong = client.post(
                "/sign-in/mfa", data={"csrf_token": csrf_of(page.text), "code": "000000"}
            )
            assert wrong.status_code == 401
        client.cookies.clear()
        post_sign_in(client, "cara@test.example.org", PASSWORD)
        page = client.get("/sign-in/mfa")
        clock.advance(seconds=31)
        right = pyotp.TOTP(secret).at(clock.now())
        refused = client.post(
            "/sign-in/mfa", data={"csrf_token": csrf_of(page.text), "code": right}
        )
        assert refused.status_code == 429 and "Wait 15 minutes" in refused.text
        assert client.get("/patients").status_code == 303
        clock.advance(minutes=16)
        client.cookies.clear()
        post_sign_in(client, "cara@test.example.org", PASSWORD)
        page = client.get("/sign-in/mfa")
        right = pyotp.TOTP(secret).at(clock.now())
        ok = client.post("/sign-in/mfa", data={"csrf_token": csrf_of(page.text), "code": right})
        assert ok.status_code == 303 and not ok.headers["location"].startswith("/sign-in")
        assert client.get("/patients").status_code == 200

    def enrol_optional(self, client, people, session):
        post_sign_in(client, "cara@test.example.org", PASSWORD)
        page = client.get("/account/mfa/setup")
        secret = page.text.split('class="secret">')[1].split("<")[0]
        from concord.clock import now

        confirm = client.post(
            "/account/mfa/setup",
            data={"csrf_token": csrf_of(page.text), "code": pyotp.TOTP(secret).at(now())},
        )
        assert confirm.status_code == 200
        return secret, confirm.text

    def test_a_code_cannot_be_used_twice(self, session, people, clock):
        secret = mfa.begin_mfa_setup(session, user=people.care_manager)
        code = pyotp.TOTP(secret).at(clock.now())
        mfa.confirm_mfa_setup(session, user=people.care_manager, code=code)
        assert not mfa.verify_second_factor(session, user=people.care_manager, code=code)

    def test_a_recovery_code_works_once(self, session, people, clock):
        secret = mfa.begin_mfa_setup(session, user=people.care_manager)
        codes = mfa.confirm_mfa_setup(
            session, user=people.care_manager, code=pyotp.TOTP(secret).at(clock.now())
        )
        assert mfa.verify_second_factor(session, user=people.care_manager, code=codes[0])
        assert not mfa.verify_second_factor(session, user=people.care_manager, code=codes[0])

    def test_the_secret_is_encrypted_at_rest(self, session, people):
        secret = mfa.begin_mfa_setup(session, user=people.care_manager)
        assert secret not in people.care_manager.totp_secret_encrypted

    @pytest.mark.parametrize("code", ["12345", "abcdef", ""])
    def test_malformed_codes_fail(self, session, people, code):
        mfa.begin_mfa_setup(session, user=people.care_manager)
        assert not mfa.verify_second_factor(session, user=people.care_manager, code=code)
