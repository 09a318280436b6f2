"""Request dependencies: the transaction boundary, who is asking, and CSRF.

`DbSession` is the one place a request's transaction begins and ends: commit after the handler
returns (before the response is sent), roll back if it raises. Denied attempts noted during
a rolled-back request are still written to the audit trail (concord.db.abort).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from concord.accounts import sessions, tokens
from concord.accounts.models import ApiToken, TokenScope, User, WebSession
from concord.audit.models import Outcome
from concord.audit.service import record, set_context
from concord.categories import Purpose
from concord.db import abort, finish, keep_after_rollback
from concord.disclosure import PURPOSE_OF_USE, purpose_of_use
from concord.disclosure import REQUESTED as REQUESTED_PURPOSE
from concord.errors import (
    InvalidInput,
    NotAuthenticated,
    NotSupported,
    PermissionDenied,
    Unavailable,
)
from concord.i18n import Msg, best_language
from concord.notifications.service import unread_count
from concord.outbox import count_failing
from concord.safety.banner import banner_for
from concord.safety.notifications import navigation_counts
from concord.safety.rulesets import rules_for
from concord.smart.service import SmartAccess, smart_access
from concord.validation import text_problem

SESSION_COOKIE = "concord_session"
ANON_CSRF_COOKIE = "concord_csrf"


class Redirect(Exception):
    """Raised to send the browser elsewhere (303), e.g. to finish signing in."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def client_ip(request: Request) -> str:
    """The peer's address; a forwarded one only from a configured proxy (the app's
    ProxyHeadersMiddleware, CONCORD_TRUSTED_PROXIES). Never read X-Forwarded-For here."""
    return request.client.host[:64] if request.client else "unknown"


def channel_for(path: str) -> str:
    if path.startswith("/fhir"):
        return "fhir"
    if path.startswith("/api"):
        return "api"
    return "web"


# As long as a request waits for a connection from the pool.
ADMISSION_TIMEOUT = 30.0


async def db(request: Request) -> AsyncIterator[Session]:
    # Opening a session does no I/O (a connection is taken at its first statement), so it is
    # done here on the event loop; ending it is one hand-off to a worker thread. A sync
    # dependency would cost two more hand-offs a request.
    #
    # A request first waits here, on the event loop, for one of the process's database slots
    # (concord.app.database_slots, the pool's size). Without it, a burst of requests could fill
    # every worker thread with requests waiting for a connection (or SQLite's write gate) while
    # the requests holding them waited for a thread to finish in: nothing moved until the
    # pool's time-out (tests/test_errors.py).
    slots = request.app.state.database_slots
    if request.method in WRITE_METHODS:
        # The whole body first (kept for the form or JSON reader): a client sending it slowly
        # must not hold a database slot while it arrives, or a few of them would stop
        # everyone's requests. (On /api and /fhir the credentials were checked before it was
        # read: concord.web.limits.)
        await request.body()
    purpose = _purpose_of_use(request)
    await _admit(slots)
    try:
        factory = request.app.state.sessionmaker
        session = factory()
        set_context(session, channel=channel_for(request.scope["path"]), ip=client_ip(request))
        if purpose is not None:
            session.info[REQUESTED_PURPOSE] = purpose
        # Issue 18: the disclosure log marks a request that disclosed 42 CFR Part 2 records
        # here, so the page renders the redisclosure notice (concord.disclosures.log).
        session.info["request_state"] = request.state
        try:
            yield session
        except BaseException as exc:
            await run_in_threadpool(_end, session, factory, exc)
        else:
            if session.info.get(FINISHED):
                # Committed in the endpoint's own thread (finish_request): the connection is
                # back in the pool, so closing is no I/O.
                session.close()
            else:
                await run_in_threadpool(_end, session, factory, None)
    finally:
        slots.release()


# The same session as DbSession, opened by the endpoint itself (`async with
# request_session(request) as session`): the same admission, context, commit or rollback and
# "busy" answer, without FastAPI's dependency machinery (solving the dependency and its exit
# stack cost about a twentieth of a FHIR check-in's CPU, issue 17). For the busiest writes.
request_session = asynccontextmanager(db)


WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
PURPOSE_HEADER = "X-Purpose-Of-Use"


def _purpose_of_use(request: Request) -> Purpose | None:
    """The purpose of use an API or FHIR request names in X-Purpose-Of-Use (a v3 PurposeOfUse
    code), which every decision of the request then reads for (concord.disclosure). A code
    Concord does not know is refused (400, the header named), never read as the default."""
    value = request.headers.get(PURPOSE_HEADER)
    if value is None or not request.scope["path"].startswith(("/api/", "/fhir")):
        return None
    purpose = purpose_of_use(value)
    if purpose is None:
        allowed = ", ".join(PURPOSE_OF_USE)
        raise NotSupported(
            f"{PURPOSE_HEADER}: not a purpose of use Concord knows; one of {allowed}",
            errors={PURPOSE_HEADER: f"must be one of {allowed} (v3-ActReason)"},
        )
    return purpose


async def _admit(slots: anyio.Semaphore) -> None:
    """Take one of the process's database slots, waiting up to ADMISSION_TIMEOUT."""
    try:
        slots.acquire_nowait()
    except anyio.WouldBlock:
        # Only a request that has to wait pays for the time-out's cancel scope.
        try:
            with anyio.fail_after(ADMISSION_TIMEOUT):
                await slots.acquire()
        except TimeoutError:
            raise _busy() from None


async def check_credentials_first(request: Request) -> None:
    """For a write to /api or /fhir: refuse a missing or bad token (or, on /api, a browser
    session without its CSRF header) before a byte of the body is read, so nobody without
    credentials can make the server take in a body. Raises what bearer_actor or api_actor
    would; they check again, in the request's own transaction, when it runs. The check is a
    short read-only transaction of its own (a token's last-use time is recorded by the
    request's own check), except for a token this process found usable in the last few
    seconds (concord.accounts.tokens.api_token_recently_usable: no transaction, no hand-off
    to a thread; the request's own check still decides). The community partner's referral
    link (ANONYMOUS_API_PREFIXES) has no account: its token in the path is checked by the
    route, which refuses a forged or expired one before reading anything."""
    if request.scope["path"].startswith(ANONYMOUS_API_PREFIXES):
        return
    if _recently_usable_token(request):
        return
    slots = request.app.state.database_slots
    await _admit(slots)
    try:
        await run_in_threadpool(_check_credentials, request)
    finally:
        slots.release()


def _recently_usable_token(request: Request) -> bool:
    if not (request.scope["path"].startswith("/fhir") or request.headers.get("Authorization")):
        return False
    try:
        return tokens.api_token_recently_usable(_bearer_token(request))
    except NotAuthenticated:
        return False


def _check_credentials(request: Request) -> None:
    session = request.app.state.sessionmaker()
    try:
        if request.scope["path"].startswith(("/fhir", CDS_PREFIX)) or request.headers.get(
            "Authorization"
        ):
            # A token (on /api too when it sends one: api_actor would check it by
            # bearer_actor): decided from three columns, nothing loaded.
            if not tokens.api_token_usable(session, _bearer_token(request)):
                raise NotAuthenticated(INVALID_TOKEN)
        else:
            api_actor(request, session)
    finally:
        # Nothing of this check may outlive it: the request's own check sets these.
        for name in ("actor", "lang"):
            request.scope.get("state", {}).pop(name, None)
        session.rollback()
        session.close()


# The only page forms a signed-out person may post (with the anonymous CSRF cookie). Every
# other page write needs a session, checked before its body is read (concord.web.limits);
# tests/test_limits.py fails when a page route and this list disagree.
ANONYMOUS_FORMS = frozenset({"/sign-in"})
# Programs' form posts outside /api and /fhir that prove who sends them in the body itself
# (OAuth's token endpoint: a client assertion, a secret or a code with its PKCE verifier).
# No cookie is asked; the body's size is still limited.
PROGRAM_FORMS = frozenset({"/oauth2/token"})
# Forms posted without an account under these paths: the community partner's referral link
# (concord.social.routes), whose token in the path is checked by the route.
ANONYMOUS_PREFIXES = ("/referral-link/",)
ANONYMOUS_API_PREFIXES = ("/api/v1/referral-link/",)


async def check_session_first(request: Request) -> None:
    """For a page's form post: refuse it before its body is read when it cannot succeed:
    no anonymous CSRF cookie on a sign-in form; no valid session on any other (sent to sign
    in, as partial_actor would). The CSRF token itself is in the body: posted_by checks it."""
    path = request.scope["path"]
    if path in PROGRAM_FORMS:
        return
    if path in ANONYMOUS_FORMS or path.startswith(ANONYMOUS_PREFIXES):
        if len(request.cookies.get(ANON_CSRF_COOKIE, "")) < 20:
            request.state.lang = _language(request, None)
            raise PermissionDenied(Msg("This form has expired. Reload the page and try again."))
        return
    if not request.cookies.get(SESSION_COOKIE):
        request.state.lang = _language(request, None)
        raise Redirect(_sign_in_url(request, None))
    slots = request.app.state.database_slots
    await _admit(slots)
    try:
        await run_in_threadpool(_check_session, request)
    finally:
        slots.release()


def _check_session(request: Request) -> None:
    session = request.app.state.sessionmaker()
    try:
        partial_actor(request, session)
    finally:
        request.scope.get("state", {}).pop("actor", None)
        session.rollback()
        session.close()


FINISHED = "concord.finished"


def finish_request(request: Request, session: Session) -> None:
    """Commit now, in the calling worker thread, instead of in one more hand-off after the
    endpoint returns: for an async endpoint that does its work in one thread. A failure here
    is handled like any other (rolled back; "busy" for the database being busy)."""
    finish(session, request.app.state.sessionmaker)
    session.info[FINISHED] = True


def _end(session: Session, factory: Any, failed: BaseException | None) -> None:
    """Commit, or roll back when the request failed; close the session either way. The
    database being busy (a lock wait, a statement time-out, or no free connection in the pool
    within its time-out, 30 s) is not a bug: it is answered "busy, try again"."""
    try:
        try:
            if failed is None:
                finish(session, factory)
                return
        except BaseException as exc:
            failed = exc
        abort(session, factory)
    finally:
        session.close()
    if isinstance(failed, (OperationalError, PoolTimeout)):
        raise _busy() from failed
    raise failed


def _busy() -> Unavailable:
    return Unavailable(Msg("The system is busy. Please try again in a moment."))


DbSession = Annotated[Session, Depends(db, scope="function")]


@dataclass
class Actor:
    """The person behind a request, and how they proved it."""

    user: User
    web_session: WebSession | None = None
    token: ApiToken | None = None
    # A SMART app's token (concord.smart): its app, scopes and patient in context.
    smart: SmartAccess | None = None

    @property
    def can_write(self) -> bool:
        if self.smart is not None:
            return self.smart.scopes.writes
        return self.token is None or self.token.scope == TokenScope.write


def _language(request: Request, user: User | None) -> str:
    if user is not None:
        return user.language
    return best_language(
        request.headers.get("accept-language"), request.app.state.settings.default_language
    )


def _session_actor(request: Request, session: Session) -> tuple[Actor | None, str | None]:
    lookup = sessions.session_for_token(session, request.cookies.get(SESSION_COOKIE))
    if lookup.web_session is None:
        return None, lookup.expired_reason
    user = lookup.web_session.user
    keep_after_rollback(session, lookup.web_session, user, user.organization)
    return Actor(user=user, web_session=lookup.web_session), None


def optional_actor(request: Request, session: DbSession) -> Actor | None:
    actor, _ = _session_actor(request, session)
    request.state.actor = actor if actor and _fully_signed_in(actor) else None
    request.state.lang = _language(request, actor.user if actor else None)
    return request.state.actor


def _fully_signed_in(actor: Actor) -> bool:
    assert actor.web_session is not None
    if sessions.mfa_required(actor.user) and not actor.web_session.mfa_verified:
        return False
    return True


def _sign_in_url(request: Request, reason: str | None) -> str:
    target = request.url.path
    suffix = f"?next={target}" if target not in ("/", "/sign-in") else ""
    if reason == "idle":
        suffix += ("&" if suffix else "?") + "expired=idle"
    elif reason == "absolute":
        suffix += ("&" if suffix else "?") + "expired=absolute"
    return "/sign-in" + suffix


def partial_actor(request: Request, session: DbSession) -> Actor:
    """Signed in with a password, perhaps still owing a second factor or a new password."""
    actor, reason = _session_actor(request, session)
    request.state.lang = _language(request, actor.user if actor else None)
    if actor is None:
        raise Redirect(_sign_in_url(request, reason))
    request.state.actor = actor
    return actor


def web_actor(request: Request, session: DbSession) -> Actor:
    """A fully signed-in person (password, second factor where required, password current)."""
    actor = partial_actor(request, session)
    assert actor.web_session is not None
    if sessions.mfa_required(actor.user) and not actor.web_session.mfa_verified:
        raise Redirect("/account/mfa/setup" if not actor.user.mfa_enabled else "/sign-in/mfa")
    if actor.user.must_change_password:
        raise Redirect("/account/password?required=1")
    if actor.user.is_clinician:
        # Shown at the top of every page: the alerts this clinician owns, first, and how many
        # others need their teams.
        request.state.banner = banner_for(session, actor.user)
        rules = rules_for(session, actor.user.organization_id)
        request.state.tier_names = {
            t.code: t.name.get(actor.user.language) or t.name["en"] for t in rules.tiers
        }
    if actor.user.can_administer:
        request.state.failing_messages = count_failing(session, actor.user.organization_id)
    if actor.user.is_clinician or actor.user.can_administer:
        # The number of notices waiting in "New for you" (a number only: no name, no kind),
        # and the emergency openings told to this person as a program's privacy officer (a
        # number), in one statement.
        counts = navigation_counts(session, actor.user)
        if actor.user.is_clinician:
            request.state.unread_notices = counts.unread
        request.state.privacy_officer = counts.officer
        request.state.privacy_notices = counts.officer_notices
        request.state.bell = counts.bell
    else:
        # The bell: how many of this person's notices are unread (a number only).
        request.state.bell = unread_count(session, actor.user)
    return actor


async def form_data(request: Request) -> dict[str, Any]:
    """The posted form as a dict; fields sent more than once become lists."""
    form = await request.form()
    data: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for key in form.keys():
        values = [v for v in form.getlist(key) if isinstance(v, str)]
        data[key] = values if len(values) > 1 else (values[0] if values else "")
        # Whatever the form, no field may carry control characters (NUL cannot even be stored
        # in PostgreSQL); each field's own length is its schema's to check.
        for value in values:
            problem = text_problem(value)
            if problem is not None:
                problems[key[:100]] = problem
    if problems:
        raise InvalidInput(Msg("Some fields need attention."), errors=problems)
    return data


Form = Annotated[dict[str, Any], Depends(form_data)]


def _check_csrf(request: Request, expected: str, form: dict[str, Any]) -> None:
    sent = request.headers.get("X-CSRF-Token") or form.get("csrf_token") or ""
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise PermissionDenied(Msg("This form has expired. Reload the page and try again."))


def posted_by(request: Request, form: Form, actor: Actor = Depends(web_actor)) -> Actor:
    """A signed-in person's form post, with its CSRF token checked."""
    assert actor.web_session is not None
    _check_csrf(request, actor.web_session.csrf_token, form)
    return actor


def posted_by_partial(request: Request, form: Form, actor: Actor = Depends(partial_actor)) -> Actor:
    assert actor.web_session is not None
    _check_csrf(request, actor.web_session.csrf_token, form)
    return actor


def anonymous_csrf(request: Request) -> str:
    """Double-submit token for forms shown before sign-in (the sign-in form itself)."""
    token = request.cookies.get(ANON_CSRF_COOKIE) or ""
    if len(token) < 20:
        import secrets

        token = secrets.token_urlsafe(32)
        request.state.set_anon_csrf = token
    request.state.anon_csrf = token
    if not hasattr(request.state, "lang"):
        request.state.lang = _language(request, None)
    return token


def check_anonymous_csrf(request: Request, form: Form) -> None:
    _check_csrf(request, request.cookies.get(ANON_CSRF_COOKIE, ""), form)


CDS_PREFIX = "/cds-services"
FHIR_PREFIX = "/fhir"
INVALID_TOKEN = Msg("The API token is not valid, has expired or was revoked.")


def _bearer_token(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated(Msg("Send an API token: Authorization: Bearer <token>."))
    return token.strip()


def bearer_actor(request: Request, session: DbSession) -> Actor:
    """A program using an API token (Authorization: Bearer ...)."""
    found = tokens.user_for_api_token(session, _bearer_token(request))
    if found is None:
        raise NotAuthenticated(INVALID_TOKEN)
    user, api_token = found
    if api_token.scope == TokenScope.cds and not request.url.path.startswith(CDS_PREFIX):
        # An EHR's token used elsewhere: refused, and the attempt is in the trail.
        record(
            session,
            by=user,
            action="read",
            object_type="ApiToken",
            object_id=api_token.id,
            outcome=Outcome.denied,
        )
        raise PermissionDenied(Msg("This token may only ask the CDS Hooks service."))
    smart = None
    if api_token.scope == TokenScope.smart:
        smart = smart_access(session, api_token)
        if smart is None:
            raise NotAuthenticated(INVALID_TOKEN)
        if not request.url.path.startswith(FHIR_PREFIX):
            # A SMART app's token reads /fhir only, within its scopes.
            record(
                session,
                by=user,
                action="read",
                object_type="ApiToken",
                object_id=api_token.id,
                outcome=Outcome.denied,
            )
            raise PermissionDenied(Msg("This token may only ask the FHIR API (/fhir)."))
    keep_after_rollback(session, api_token, user, user.organization)
    request.state.actor = Actor(user=user, token=api_token, smart=smart)
    request.state.lang = user.language
    return request.state.actor


def api_actor(request: Request, session: DbSession) -> Actor:
    """For /api: an API token, or a signed-in browser session (CSRF checked on writes)."""
    if request.headers.get("Authorization"):
        return bearer_actor(request, session)
    actor, _ = _session_actor(request, session)
    if actor is None or not _fully_signed_in(actor):
        raise NotAuthenticated(Msg("Sign in, or send an API token: Authorization: Bearer <token>."))
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        assert actor.web_session is not None
        sent = request.headers.get("X-CSRF-Token", "")
        if not hmac.compare_digest(sent, actor.web_session.csrf_token):
            raise PermissionDenied(Msg("Send the X-CSRF-Token header with browser API calls."))
    request.state.actor = actor
    request.state.lang = actor.user.language
    return actor


def writer(actor: Actor) -> Actor:
    """The actor, if their token may write; PermissionDenied otherwise."""
    if not actor.can_write:
        raise PermissionDenied(Msg("This API token may only read."))
    return actor


# No I/O, so async: run on the event loop, not handed to a worker thread.
async def api_writer(actor: Actor = Depends(api_actor)) -> Actor:
    return writer(actor)


WebActor = Annotated[Actor, Depends(web_actor)]
PostedBy = Annotated[Actor, Depends(posted_by)]
ApiActor = Annotated[Actor, Depends(api_actor)]
ApiWriter = Annotated[Actor, Depends(api_writer)]
BearerActor = Annotated[Actor, Depends(bearer_actor)]
