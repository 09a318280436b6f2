"""SMART App Launch's doors: discovery, /oauth2/authorize (the consent screen), /oauth2/token,
the server's keys, the administrator's app registry (page and API), EHR launch contexts, and
the patient's list of apps with access to their record (page and API)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from concord.errors import InvalidInput
from concord.fhir.search import SEARCH_PARAMS
from concord.i18n import Msg
from concord.smart import scopes as sc
from concord.smart import service
from concord.smart.schemas import ActsForIn, ClientIn, LaunchIn
from concord.web.deps import (
    ApiActor,
    ApiWriter,
    DbSession,
    Form,
    PostedBy,
    WebActor,
    optional_actor,
)
from concord.web.forms import FormOf, Posted
from concord.web.templating import render

router = APIRouter()

# The types a backend service's system/ scope may name: those /fhir searches (a Bulk export
# reads through them) and Group. Any other, a FHIR type or not, is refused (invalid_scope).
SYSTEM_TYPES = frozenset(SEARCH_PARAMS) | {"Group"}

SUPPORTED_SCOPES = [
    "openid",
    "fhirUser",
    "launch",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "user/*.cruds",
    # Backend services (Bulk Data export): system/ scopes, v2 and v1 forms, per type too.
    "system/*.rs",
    "system/*.read",
    "system/Patient.rs",
    "system/Observation.rs",
]


def fhir_base(request: Request) -> str:
    return request.app.state.settings.base_url.rstrip("/") + "/fhir"


def _root(request: Request) -> str:
    return request.app.state.settings.base_url.rstrip("/")


def smart_configuration(root: str) -> dict[str, Any]:
    return {
        "issuer": f"{root}/fhir",
        "jwks_uri": f"{root}/oauth2/jwks",
        "authorization_endpoint": f"{root}/oauth2/authorize",
        "token_endpoint": f"{root}/oauth2/token",
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": [
            "private_key_jwt",
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": service.ALGORITHMS,
        "scopes_supported": SUPPORTED_SCOPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["ES384"],
        "capabilities": [
            "launch-ehr",
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "context-ehr-patient",
            "context-standalone-patient",
            "permission-offline",
            "permission-online",
            "permission-patient",
            "permission-user",
            "permission-v1",
            "permission-v2",
            "sso-openid-connect",
        ],
    }


@router.get("/.well-known/smart-configuration")
@router.get("/fhir/.well-known/smart-configuration")
def well_known(request: Request) -> JSONResponse:
    """SMART App Launch discovery (both at the server's root and under the FHIR base)."""
    return JSONResponse(smart_configuration(_root(request)))


@router.get("/oauth2/jwks")
def jwks(session: DbSession) -> JSONResponse:
    """The public key id_tokens are signed with (ES384)."""
    return JSONResponse(service.public_jwks(session))


# --- authorize ------------------------------------------------------------------------------

AUTH_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "launch",
    "code_challenge",
    "code_challenge_method",
    "nonce",
)


def _auth_params(values: Any) -> dict[str, str]:
    out = {}
    for name in AUTH_PARAMS:
        value = values.get(name)
        if isinstance(value, str):
            out[name] = value
    return out


def _consent_page(
    request: Request,
    session: DbSession,
    actor: Any,
    params: dict[str, str],
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:
    try:
        req = service.check_authorize(
            session,
            params=params,
            fhir_base=fhir_base(request),
            organization_id=actor.user.organization_id,
        )
    except service.AuthorizeError as exc:
        if exc.redirect:
            return RedirectResponse(exc.redirect, status_code=303)
        return render(
            request, "smart/authorize_error.html", {"message": exc.message}, status_code=400
        )
    # The form's answer redirects to the app: the page's form-action must allow its origin
    # (concord.web.headers), or the browser stops at the redirect.
    parts = urlsplit(req.redirect_uri)
    request.state.form_action = f"{parts.scheme}://{parts.netloc}"
    patients = []
    own = None
    if req.launch is None and req.needs_patient:
        if actor.user.is_patient:
            own = service.own_patient(session, by=actor.user)
        else:
            patients = [
                (str(p.id), f"{p.display_name} ({p.mrn})")
                for p in service.pickable_patients(session, by=actor.user)
            ]
    return render(
        request,
        "smart/authorize.html",
        {
            "app": req.client,
            "lines": sc.describe(req.scopes),
            "params": req.params() | {"aud": params.get("aud", "")},
            "patients": patients,
            "own": own,
            "from_ehr": req.launch is not None,
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/oauth2/authorize")
def authorize(request: Request, session: DbSession) -> Response:
    """The consent screen: which app, what it asks for in plain words, and for staff without
    an EHR's patient, which patient. Not signed in: sign in first, then back here."""
    actor = optional_actor(request, session)
    if actor is None:
        here = "/oauth2/authorize?" + urlencode(_auth_params(request.query_params))
        return RedirectResponse("/sign-in?next=" + quote(here, safe=""), status_code=303)
    return _consent_page(request, session, actor, _auth_params(request.query_params))


@router.post("/oauth2/authorize")
def authorize_decide(request: Request, session: DbSession, form: Form, actor: PostedBy) -> Response:
    """The person's answer: allow (a code for the app) or deny (the app is told)."""
    params = _auth_params(form)
    try:
        req = service.check_authorize(
            session,
            params=params,
            fhir_base=fhir_base(request),
            organization_id=actor.user.organization_id,
        )
    except service.AuthorizeError as exc:
        if exc.redirect:
            return RedirectResponse(exc.redirect, status_code=303)
        return render(
            request, "smart/authorize_error.html", {"message": exc.message}, status_code=400
        )
    if form.get("decision") != "allow":
        return RedirectResponse(
            service.redirect_with(req.redirect_uri, error="access_denied", state=req.state),
            status_code=303,
        )
    try:
        code = service.approve(
            session, by=actor.user, req=req, patient_id=form.get("patient") or None
        )
    except InvalidInput as exc:
        return _consent_page(request, session, actor, params, status_code=422, errors=exc.errors)
    return RedirectResponse(
        service.redirect_with(req.redirect_uri, code=code, state=req.state), status_code=303
    )


# --- token ----------------------------------------------------------------------------------


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    from urllib.parse import unquote_plus

    return unquote_plus(user), unquote_plus(password)


def _oauth_error(exc: service.OAuthError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        headers={"WWW-Authenticate": "Basic"} if exc.status == 401 else None,
    )


@router.post("/oauth2/token")
def token(request: Request, session: DbSession, form: Form) -> Response:
    """Codes, refresh tokens and backend services' assertions exchanged for access tokens.
    Refused requests are answered in OAuth's words (error, error_description)."""
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    token_url = _root(request) + "/oauth2/token"
    try:
        client = service.authenticate_client(
            session, form=values, basic=_basic(request), token_url=token_url
        )
        grant_type = values.get("grant_type")
        if grant_type == "authorization_code":
            answer = service.exchange_code(
                session,
                client=client,
                code=values.get("code", ""),
                redirect_uri=values.get("redirect_uri", ""),
                verifier=values.get("code_verifier", ""),
                issuer=fhir_base(request),
            )
        elif grant_type == "refresh_token":
            answer = service.refresh(
                session,
                client=client,
                refresh_token=values.get("refresh_token", ""),
                issuer=fhir_base(request),
            )
        elif grant_type == "client_credentials":
            answer = service.client_credentials(
                session,
                client=client,
                scope=values.get("scope", ""),
                known_types=SYSTEM_TYPES,
            )
        else:
            raise service.OAuthError(
                "unsupported_grant_type",
                "grant_type must be authorization_code, refresh_token or client_credentials",
            )
    except service.OAuthError as exc:
        # Answered, not raised: what the refusal wrote (a grant ended because a used code or
        # an old refresh token came back) must stay written.
        return _oauth_error(exc)
    return JSONResponse(answer, headers={"Pragma": "no-cache"})


# --- registered apps (administrators) -------------------------------------------------------


def client_json(client: Any, secret: str | None = None) -> dict[str, Any]:
    out = {
        "id": str(client.id),
        "client_id": client.client_id,
        "name": client.name,
        "redirect_uris": client.redirect_uris,
        "launch_url": client.launch_url,
        "scopes": client.allowed_scopes,
        "confidential": client.confidential,
        "jwks": client.jwks,
        "jwks_url": client.jwks_url,
        "origins": client.origins,
        "backend_service": client.service_user_id is not None,
        "acts_for": str(client.acts_for_id) if client.acts_for_id else None,
        "disabled": client.disabled_at is not None,
    }
    if secret:
        out["client_secret"] = secret
    return out


def _register(session: DbSession, by: Any, data: ClientIn) -> tuple[Any, str | None]:
    jwks: Any = data.jwks
    if isinstance(jwks, str):
        if jwks.strip():
            try:
                jwks = json.loads(jwks)
            except ValueError:
                raise InvalidInput.field(
                    "jwks", Msg('must be a JSON Web Key Set: {"keys": [...]}')
                ) from None
        else:
            jwks = None
    return service.register_client(
        session,
        by=by,
        name=data.name,
        redirect_uris=data.redirect_uris,
        scopes=data.scopes,
        confidential=data.confidential,
        launch_url=data.launch_url or None,
        jwks=jwks,
        jwks_url=data.jwks_url or None,
        origins=data.origins,
        acts_for=data.acts_for or None,
    )


@router.get("/admin/smart-apps")
def admin_apps(request: Request, session: DbSession, actor: WebActor) -> Response:
    return render(
        request,
        "smart/apps.html",
        {
            "apps": service.list_clients(session, by=actor.user),
            "errors": {},
            "values": {},
            "created": None,
            "secret": None,
            "done": request.query_params.get("done"),
        },
    )


@router.post("/admin/smart-apps")
def admin_register(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ClientIn], FormOf(ClientIn)],
    actor: PostedBy,
) -> Response:
    try:
        client, secret = _register(session, actor.user, form.read())
    except InvalidInput as exc:
        return render(
            request,
            "smart/apps.html",
            {
                "apps": service.list_clients(session, by=actor.user),
                "errors": exc.errors,
                "values": form.values,
                "created": None,
                "secret": None,
                "done": None,
            },
            status_code=422,
        )
    return render(
        request,
        "smart/apps.html",
        {
            "apps": service.list_clients(session, by=actor.user),
            "errors": {},
            "values": {},
            "created": client,
            "secret": secret,
            "done": None,
        },
    )


@router.post("/admin/smart-apps/{app_id}/disable")
def admin_disable(app_id: str, session: DbSession, actor: PostedBy) -> Response:
    service.disable_client(session, by=actor.user, ident=app_id)
    return RedirectResponse("/admin/smart-apps?done=disabled", status_code=303)


def _change_acts_for(session: DbSession, by: Any, app_id: str, data: ActsForIn) -> Any:
    return service.change_acts_for(
        session, by=by, ident=app_id, acts_for=data.acts_for, care_team=data.care_team
    )


@router.post("/admin/smart-apps/{app_id}/acts-for")
def admin_acts_for(
    app_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ActsForIn], FormOf(ActsForIn)],
    actor: PostedBy,
) -> Response:
    try:
        _change_acts_for(session, actor.user, app_id, form.read())
    except InvalidInput as exc:
        return render(
            request,
            "smart/apps.html",
            {
                "apps": service.list_clients(session, by=actor.user),
                "errors": {},
                "acts_for_errors": {app_id: exc.errors},
                "values": {},
                "created": None,
                "secret": None,
                "done": None,
            },
            status_code=422,
        )
    return RedirectResponse("/admin/smart-apps?done=acts_for", status_code=303)


@router.get("/api/v1/smart/clients", tags=["SMART"])
def api_clients(session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """The apps registered for the organization (administrators)."""
    return [client_json(c) for c in service.list_clients(session, by=actor.user)]


@router.post("/api/v1/smart/clients", status_code=201, tags=["SMART"])
def api_register(data: ClientIn, session: DbSession, actor: ApiWriter) -> dict[str, Any]:
    """Register an app (administrators). A confidential app without keys gets a client_secret,
    shown in this answer only."""
    client, secret = _register(session, actor.user, data)
    return client_json(client, secret)


@router.post("/api/v1/smart/clients/{app_id}/disable", tags=["SMART"])
def api_disable(app_id: str, session: DbSession, actor: ApiWriter) -> dict[str, Any]:
    """Stop an app: its grants and tokens are revoked."""
    return client_json(service.disable_client(session, by=actor.user, ident=app_id))


@router.put("/api/v1/smart/clients/{app_id}/acts-for", tags=["SMART"])
def api_acts_for(
    app_id: str, data: ActsForIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Change whom a backend service acts for (administrators): `acts_for`, a clinician's
    email, or `care_team`, a care team's id (its current lead); neither: no one. A running
    export of the app stops at its next batch."""
    return client_json(_change_acts_for(session, actor.user, app_id, data))


@router.post("/api/v1/smart/launches", status_code=201, tags=["SMART"])
def api_launch(
    data: LaunchIn, request: Request, session: DbSession, actor: ApiActor
) -> dict[str, Any]:
    """An EHR registers the patient an app opens with (by identifier); the answer's `launch`
    goes to the app's launch URL with `iss` (the FHIR base)."""
    launch = service.create_launch(
        session,
        by=actor.user,
        system=data.system,
        value=data.value,
        mrn_system=str(request.app.state.settings.fhir_mrn_system),
    )
    return {
        "launch": launch,
        "iss": fhir_base(request),
        "expires_in": int(service.LAUNCH_LIFETIME.total_seconds()),
    }


# --- the patient's apps ---------------------------------------------------------------------


def grant_json(grant: Any) -> dict[str, Any]:
    return {
        "id": str(grant.id),
        "app": grant.client.name,
        "scopes": grant.scopes,
        "since": grant.created_at.isoformat(),
    }


@router.get("/my/apps")
def my_apps(request: Request, session: DbSession, actor: WebActor) -> Response:
    grants = service.list_patient_apps(session, by=actor.user)
    return render(
        request,
        "smart/my_apps.html",
        {
            "grants": [(g, sc.describe(sc.parse(g.scopes))) for g in grants],
            "done": request.query_params.get("done"),
        },
    )


@router.post("/my/apps/{grant_id}/revoke")
def my_app_revoke(grant_id: str, session: DbSession, actor: PostedBy) -> Response:
    service.revoke_patient_app(session, by=actor.user, grant_id=grant_id)
    return RedirectResponse("/my/apps?done=revoked", status_code=303)


@router.get("/api/v1/my/apps", tags=["SMART"])
def api_my_apps(session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """The apps that may read the patient's record."""
    return [grant_json(g) for g in service.list_patient_apps(session, by=actor.user)]


@router.post("/api/v1/my/apps/{grant_id}/revoke", tags=["SMART"])
def api_my_app_revoke(grant_id: str, session: DbSession, actor: ApiWriter) -> dict[str, Any]:
    """End an app's access to the patient's record (its tokens stop working at once)."""
    return grant_json(service.revoke_patient_app(session, by=actor.user, grant_id=grant_id))
