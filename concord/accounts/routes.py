"""Sign-in, two-step sign-in, the account page, API tokens, and user administration."""

from __future__ import annotations

from typing import Annotated, Any

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, Depends, Request
from markupsafe import Markup
from starlette.responses import RedirectResponse, Response

from concord.accounts import mfa, oidc, organizations, passwords, sessions, signin, tokens, users
from concord.accounts.models import Organization, Role, TokenScope
from concord.accounts.schemas import (
    CodeIn,
    LanguageIn,
    PasswordChangeIn,
    SettingsIn,
    SignInIn,
    TokenIn,
    UserIn,
    UserUpdateIn,
)
from concord.errors import InvalidInput
from concord.i18n import Msg
from concord.patients.service import list_clinicians
from concord.safety.crisis import default_crisis_resources
from concord.settings import get_settings
from concord.web.deps import (
    SESSION_COOKIE,
    Actor,
    DbSession,
    PostedBy,
    WebActor,
    anonymous_csrf,
    check_anonymous_csrf,
    client_ip,
    optional_actor,
    partial_actor,
    posted_by_partial,
)
from concord.web.forms import FormOf, Posted
from concord.web.templating import render

router = APIRouter()

PartialActor = Annotated[Actor, Depends(partial_actor)]
PostedPartial = Annotated[Actor, Depends(posted_by_partial)]


def safe_next(target: str | None) -> str:
    """Only local paths, so a sign-in link cannot send someone to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.secure_cookies,
        path="/",
    )


# --- sign-in -------------------------------------------------------------------------------


@router.get("/sign-in")
def sign_in_page(
    request: Request, session: DbSession, actor: Annotated[Actor | None, Depends(optional_actor)]
) -> Response:
    if actor is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    anonymous_csrf(request)
    expired = request.query_params.get("expired")
    return render(
        request,
        "sign_in.html",
        {
            "next": safe_next(request.query_params.get("next")),
            "expired": expired,
            "values": {},
            "error": None,
            **_sso_context(request),
        },
    )


def _sso_context(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    return {
        "sso": oidc.configured(settings),
        "sso_name": settings.oidc_provider_name,
    }


def _start_session(request: Request, session: Any, user: Any, target: str) -> Response:
    """A new browser session for `user`, then the second step, a required password change,
    or `target`."""
    needs_mfa = sessions.mfa_required(user)
    token, _ = sessions.start_session(
        session,
        user=user,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        mfa_verified=not needs_mfa,
    )
    if needs_mfa:
        destination = "/sign-in/mfa" if user.mfa_enabled else "/account/mfa/setup"
        destination += f"?next={target}" if target != "/" else ""
    elif user.must_change_password:
        destination = "/account/password?required=1"
    else:
        destination = target
    response = RedirectResponse(destination, status_code=303)
    _set_session_cookie(request, response, token)
    return response


@router.get("/sign-in/sso")
def sign_in_sso(request: Request) -> Response:
    """Off to the organization's OpenID Connect provider (docs/sso.md)."""
    settings = request.app.state.settings
    if not oidc.configured(settings):
        # No provider here: the sign-in page (which then shows no button).
        return RedirectResponse("/sign-in", status_code=303)
    target = safe_next(request.query_params.get("next"))
    try:
        url, pending = oidc.begin(settings, next_path=target)
    except oidc.SsoError as exc:
        return _sso_failed(request, exc)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        oidc.PENDING_COOKIE,
        pending,
        max_age=oidc.PENDING_SECONDS,
        httponly=True,
        # Lax: the provider sends the browser back with a top-level GET.
        samesite="lax",
        secure=settings.secure_cookies,
        path="/sign-in/sso",
    )
    return response


@router.get("/sign-in/sso/callback")
def sign_in_sso_callback(request: Request, session: DbSession) -> Response:
    settings = request.app.state.settings
    if not oidc.configured(settings):
        return RedirectResponse("/sign-in", status_code=303)
    params = request.query_params
    try:
        user, target = oidc.finish(
            session,
            settings,
            code=params.get("code"),
            state=params.get("state"),
            error=params.get("error"),
            cookie=request.cookies.get(oidc.PENDING_COOKIE),
        )
    except oidc.SsoError as exc:
        response = _sso_failed(request, exc)
    else:
        response = _start_session(request, session, user, safe_next(target))
    response.delete_cookie(oidc.PENDING_COOKIE, path="/sign-in/sso")
    return response


def _sso_failed(request: Request, exc: oidc.SsoError) -> Response:
    anonymous_csrf(request)
    return render(
        request,
        "sign_in.html",
        {"next": "/", "expired": None, "values": {}, "error": exc.message, **_sso_context(request)},
        status_code=401,
    )


@router.post("/sign-in")
def sign_in(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[SignInIn], FormOf(SignInIn)],
    _csrf: Annotated[None, Depends(check_anonymous_csrf)],
) -> Response:
    data = form.read()
    email = data.email
    target = safe_next(data.next)
    result = signin.authenticate(
        session, email=email, password=data.password, ip=client_ip(request)
    )
    if result.user is None:
        anonymous_csrf(request)
        request.state.lang = getattr(request.state, "lang", "en")
        return render(
            request,
            "sign_in.html",
            {
                "next": target,
                "expired": None,
                "values": {"email": email},
                "error": result.error,
                **_sso_context(request),
            },
            status_code=429 if result.throttled else 401,
        )
    return _start_session(request, session, result.user, target)


@router.get("/sign-in/mfa")
def mfa_page(request: Request, actor: PartialActor) -> Response:
    if not actor.user.mfa_enabled:
        return RedirectResponse("/account/mfa/setup", status_code=303)
    return render(
        request, "mfa.html", {"next": safe_next(request.query_params.get("next")), "error": None}
    )


@router.post("/sign-in/mfa")
def mfa_verify(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[CodeIn], FormOf(CodeIn)],
    actor: PostedPartial,
) -> Response:
    data = form.read()
    target = safe_next(data.next)
    assert actor.web_session is not None
    throttled = mfa.second_factor_throttle(session, user=actor.user)
    if throttled is not None or not mfa.verify_second_factor(
        session, user=actor.user, code=data.code
    ):
        return render(
            request,
            "mfa.html",
            {
                "next": target,
                "error": throttled
                or Msg(
                    "That code is not right. Use the 6-digit code your app shows now, or "
                    "one of your recovery codes."
                ),
            },
            status_code=429 if throttled else 401,
        )
    sessions.mark_mfa_verified(actor.web_session)
    if actor.user.must_change_password:
        target = "/account/password?required=1"
    return RedirectResponse(target, status_code=303)


def _qr_svg(uri: str) -> Markup:
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    svg = image.to_string(encoding="unicode")
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="QR code" ', 1))


@router.get("/account/mfa/setup")
def mfa_setup_page(request: Request, session: DbSession, actor: PartialActor) -> Response:
    if actor.user.mfa_enabled:
        return RedirectResponse("/account", status_code=303)
    secret = mfa.pending_mfa_secret(actor.user) or mfa.begin_mfa_setup(session, user=actor.user)
    uri = mfa.provisioning_uri(actor.user, secret)
    return render(
        request,
        "mfa_setup.html",
        {
            "secret": secret,
            "qr": _qr_svg(uri),
            "required": sessions.mfa_required(actor.user),
            "error": None,
            "next": safe_next(request.query_params.get("next")),
        },
    )


@router.post("/account/mfa/setup")
def mfa_setup_confirm(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[CodeIn], FormOf(CodeIn)],
    actor: PostedPartial,
) -> Response:
    assert actor.web_session is not None
    data = form.read()
    try:
        codes = mfa.confirm_mfa_setup(session, user=actor.user, code=data.code)
    except InvalidInput as exc:
        secret = mfa.pending_mfa_secret(actor.user) or ""
        return render(
            request,
            "mfa_setup.html",
            {
                "secret": secret,
                "qr": _qr_svg(mfa.provisioning_uri(actor.user, secret)) if secret else "",
                "required": sessions.mfa_required(actor.user),
                "error": exc.errors.get("code"),
                "next": safe_next(data.next),
            },
            status_code=422,
        )
    sessions.mark_mfa_verified(actor.web_session)
    return render(request, "mfa_codes.html", {"codes": codes, "next": safe_next(data.next)})


@router.post("/sign-out")
def sign_out(request: Request, session: DbSession, actor: PostedPartial) -> Response:
    assert actor.web_session is not None
    sessions.end_session(session, actor.web_session)
    response = RedirectResponse("/sign-in?signed_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/account/sign-out-everywhere")
def sign_out_everywhere(request: Request, session: DbSession, actor: PostedBy) -> Response:
    sessions.end_all_sessions(session, user=actor.user, by=actor.user)
    response = RedirectResponse("/sign-in?signed_out=all", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- the account page ----------------------------------------------------------------------


def _account_context(session: DbSession, actor: Actor, **extra: Any) -> dict[str, Any]:
    context = {
        "tokens": tokens.list_api_tokens(session, user=actor.user),
        "token_errors": {},
        "new_token": None,
        "done": None,
    }
    context.update(extra)
    return context


@router.get("/account")
def account_page(request: Request, session: DbSession, actor: WebActor) -> Response:
    return render(
        request,
        "account.html",
        _account_context(session, actor, done=request.query_params.get("done")),
    )


@router.post("/account/language")
def set_language(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[LanguageIn], FormOf(LanguageIn)],
    actor: PostedBy,
) -> Response:
    data = form.read()
    users.set_language(session, user=actor.user, language=data.language)
    target = safe_next(data.next or "/account?done=language")
    return RedirectResponse(target, status_code=303)


@router.get("/account/password")
def password_page(request: Request, actor: PartialActor) -> Response:
    return render(
        request,
        "password.html",
        {"required": actor.user.must_change_password, "errors": {}, "done": False},
    )


@router.post("/account/password")
def change_password(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[PasswordChangeIn], FormOf(PasswordChangeIn)],
    actor: PostedPartial,
) -> Response:
    try:
        data = form.read()
        passwords.change_password(
            session,
            user=actor.user,
            current=data.current_password,
            new=data.new_password,
            confirm=data.confirm_password,
        )
    except InvalidInput as exc:
        return render(
            request,
            "password.html",
            {
                "required": actor.user.must_change_password,
                "errors": exc.errors,
                "done": False,
            },
            status_code=422,
        )
    return RedirectResponse("/account?done=password", status_code=303)


@router.post("/account/tokens")
def create_token(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[TokenIn], FormOf(TokenIn)],
    actor: PostedBy,
) -> Response:
    data = form.read()
    try:
        scope = TokenScope(data.scope)
    except ValueError:
        scope = TokenScope.read
    try:
        expires_in = tokens.parse_duration(data.expires_in) if data.expires_in else None
    except InvalidInput as exc:
        return render(
            request,
            "account.html",
            _account_context(session, actor, token_errors=exc.errors),
            status_code=422,
        )
    token, _ = tokens.create_api_token(
        session,
        user=actor.user,
        by=actor.user,
        name=data.name,
        expires_in=expires_in,
        scope=scope,
    )
    return render(request, "account.html", _account_context(session, actor, new_token=token))


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(token_id: str, request: Request, session: DbSession, actor: PostedBy) -> Response:
    tokens.revoke_api_token(session, token_id=token_id, by=actor.user, owner=actor.user)
    return RedirectResponse("/account?done=token_revoked", status_code=303)


# --- administration ------------------------------------------------------------------------

STAFF_ROLES = [r for r in Role if r not in (Role.patient, Role.related_person, Role.client)]


@router.get("/admin/users")
def admin_users(request: Request, session: DbSession, actor: WebActor) -> Response:
    people = users.list_users(session, by=actor.user)
    return render(
        request,
        "admin/users.html",
        {
            "users": people,
            "done": request.query_params.get("done"),
            "clinics": {
                c.id: c
                for c in organizations.list_clinics(
                    session, organization_id=actor.user.organization_id
                )
            },
        },
    )


def _user_form_context(session: DbSession, actor: Actor, **extra: Any) -> dict[str, Any]:
    clinics = organizations.list_clinics(session, organization_id=actor.user.organization_id)
    context: dict[str, Any] = {
        "role_options": [(r.value, r.value) for r in STAFF_ROLES],
        "clinic_options": [(str(c.id), c.name) for c in clinics],
        "values": {},
        "errors": {},
        "target": None,
        "done": None,
    }
    context.update(extra)
    return context


@router.get("/admin/users/new")
def admin_user_new(request: Request, session: DbSession, actor: WebActor) -> Response:
    users.list_users(session, by=actor.user)  # administrators only
    return render(request, "admin/user_form.html", _user_form_context(session, actor))


def _clinic(session: DbSession, actor: Actor, value: Any) -> Any:
    if not value:
        return None
    for clinic in organizations.list_clinics(session, organization_id=actor.user.organization_id):
        if str(clinic.id) == str(value):
            return clinic
    raise InvalidInput.field("clinic_id", Msg("must be one of your organization's clinics"))


def _role(value: Any) -> Role:
    try:
        role = Role(str(value))
    except ValueError:
        raise InvalidInput.field("role", Msg("choose a role from the list")) from None
    if role in (Role.patient, Role.related_person):
        raise InvalidInput.field(
            "role", Msg("patients and family members are added from the patient's page")
        )
    return role


@router.post("/admin/users/new")
def admin_user_create(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[UserIn], FormOf(UserIn)],
    actor: PostedBy,
) -> Response:
    try:
        data = form.read()
        org = session.get(Organization, actor.user.organization_id)
        assert org is not None
        user, password = users.create_user(
            session,
            by=actor.user,
            organization=org,
            email=data.email,
            name=data.name,
            role=_role(data.role),
            clinic=_clinic(session, actor, data.clinic_id),
            is_admin=data.is_admin,
            language=data.language,
        )
    except InvalidInput as exc:
        return render(
            request,
            "admin/user_form.html",
            _user_form_context(session, actor, values=form.values, errors=exc.errors),
            status_code=422,
        )
    return render(request, "admin/user_created.html", {"created": user, "password": password})


@router.get("/admin/users/{user_id}")
def admin_user_edit(
    user_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    target = users.get_user_for_admin(session, by=actor.user, user_id=user_id)
    return render(
        request,
        "admin/user_form.html",
        _user_form_context(
            session,
            actor,
            target=target,
            values={
                "name": target.name,
                "role": target.role,
                "is_admin": target.is_admin,
                "clinic_id": str(target.clinic_id or ""),
                "language": target.language,
                "active": target.active,
            },
            password=None,
            done=request.query_params.get("done"),
        ),
    )


@router.post("/admin/users/{user_id}")
def admin_user_update(
    user_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[UserUpdateIn], FormOf(UserUpdateIn)],
    actor: PostedBy,
) -> Response:
    target = users.get_user_for_admin(session, by=actor.user, user_id=user_id)
    try:
        data = form.read()
        role = None if target.role in (Role.patient, Role.related_person) else _role(data.role)
        users.update_user(
            session,
            user=target,
            by=actor.user,
            name=data.name,
            role=role,
            is_admin=data.is_admin,
            active=data.active,
            clinic=_clinic(session, actor, data.clinic_id),
            language=data.language if data.language is not None else target.language,
        )
    except InvalidInput as exc:
        return render(
            request,
            "admin/user_form.html",
            _user_form_context(
                session, actor, target=target, values=form.values, errors=exc.errors
            ),
            status_code=422,
        )
    return RedirectResponse(f"/admin/users/{target.id}?done=saved", status_code=303)


@router.post("/admin/users/{user_id}/reset-password")
def admin_reset_password(
    user_id: str, request: Request, session: DbSession, actor: PostedBy
) -> Response:
    target = users.get_user_for_admin(session, by=actor.user, user_id=user_id)
    password = passwords.reset_password(session, user=target, by=actor.user)
    return render(
        request, "admin/user_created.html", {"created": target, "password": password, "reset": True}
    )


@router.post("/admin/users/{user_id}/reset-mfa")
def admin_reset_mfa(
    user_id: str, request: Request, session: DbSession, actor: PostedBy
) -> Response:
    target = users.get_user_for_admin(session, by=actor.user, user_id=user_id)
    mfa.reset_mfa(session, user=target, by=actor.user)
    return RedirectResponse(f"/admin/users/{target.id}?done=mfa_reset", status_code=303)


def _settings_context(session: DbSession, actor: Actor, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "org": actor.user.organization,
        "done": None,
        "errors": {},
        "default_interval": get_settings().review_interval_days,
        "crisis_text": organizations.crisis_resources_text(actor.user.organization),
        "default_crisis": [r["name"]["en"] for r in default_crisis_resources()["resources"]],
        "on_call_options": [
            (str(u.id), f"{u.name} ({u.role.replace('_', ' ')})")
            for u in list_clinicians(session, organization_id=actor.user.organization_id)
        ],
    }
    context.update(extra)
    return context


@router.get("/admin/settings")
def admin_settings(request: Request, session: DbSession, actor: WebActor) -> Response:
    users.list_users(session, by=actor.user)  # administrators only
    return render(
        request,
        "admin/settings.html",
        _settings_context(session, actor, done=request.query_params.get("done")),
    )


@router.post("/admin/settings")
def admin_settings_save(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[SettingsIn], FormOf(SettingsIn)],
    actor: PostedBy,
) -> Response:
    try:
        data = form.read()
        organizations.update_organization_settings(
            session,
            by=actor.user,
            require_mfa_for_clinicians=data.require_mfa_for_clinicians,
            sso_required=data.sso_required,
            sso_available=oidc.configured(request.app.state.settings),
            review_interval_days=data.review_interval_days,
            pdmp_check_interval_days=data.pdmp_check_interval_days,
            crisis_resources=data.crisis_resources,
            on_call_user_id=data.on_call_user_id,
            video_url_template=data.video_url_template,
            video_join_minutes=data.video_join_minutes,
            visit_reminders=data.visit_reminders,
        )
    except InvalidInput as exc:
        return render(
            request,
            "admin/settings.html",
            _settings_context(session, actor, errors=exc.errors, values=form.values),
            status_code=422,
        )
    return RedirectResponse("/admin/settings?done=saved", status_code=303)
