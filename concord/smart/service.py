"""SMART App Launch: registering apps, launch contexts, the authorization code with PKCE,
refresh tokens, backend services (client_credentials with private_key_jwt), and the one
function every door asks what a bearer token may do (resolve_bearer).

Access tokens are api_token rows (hashed, expiring, revocable, audited when made); a
smart_token row says which app, grant, scopes and patient context each carries. JWTs (the
id_token, a backend's client assertion) go through joserfc, never hand-written code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet
from joserfc.jws import JWSRegistry
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from concord.access import readable_patients, record_access
from concord.accounts.models import ApiToken, Organization, Role, TokenScope, User
from concord.accounts.passwords import hash_password
from concord.accounts.sessions import token_hash
from concord.accounts.tokens import (
    client_email,
    create_api_token,
    revoke_api_token,
    user_for_api_token,
)
from concord.accounts.users import get_user_by_email
from concord.audit.models import Outcome
from concord.audit.service import record, refused
from concord.clock import now
from concord.errors import InvalidInput, NotFound, PermissionDenied
from concord.i18n import Msg
from concord.patients.models import CareTeam, CareTeamMember, Patient
from concord.smart import scopes as sc
from concord.smart.models import (
    SmartClient,
    SmartCode,
    SmartGrant,
    SmartKey,
    SmartLaunch,
    SmartToken,
)

ACCESS_LIFETIME = timedelta(hours=1)
# Backend services: short-lived (SMART Backend Services: five minutes is recommended).
SYSTEM_LIFETIME = timedelta(minutes=5)
CODE_LIFETIME = timedelta(minutes=2)
LAUNCH_LIFETIME = timedelta(minutes=10)
REFRESH_LIFETIME = timedelta(days=90)
ALGORITHMS = ["RS384", "ES384"]
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_URIS = 10


class OAuthError(Exception):
    """An answer in OAuth's own words (RFC 6749 5.2): `error` and a description."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


# --- registration ---------------------------------------------------------------------------


def _check_url(value: str, field: str, *, https_only: bool = False) -> str:
    value = (value or "").strip()
    parts = urlsplit(value)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
        raise InvalidInput.field(field, Msg("must be an absolute http(s) URL without a #fragment"))
    if parts.scheme == "http" and not local:
        raise InvalidInput.field(field, Msg("must use https (http only for localhost)"))
    if https_only and parts.scheme != "https" and not local:
        raise InvalidInput.field(field, Msg("must use https"))
    if len(value) > 500:
        raise InvalidInput.field(field, Msg("must be at most 500 characters"))
    return value


def _check_origin(value: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.path or parts.query:
        raise InvalidInput.field(
            "origins", Msg("each must be an origin: scheme://host[:port], e.g. https://ehr.example")
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


def _check_jwks(jwks: Any) -> dict[str, Any]:
    try:
        keys = KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError, KeyError, AttributeError):
        keys = None
    if keys is None or not keys.keys:
        raise InvalidInput.field("jwks", Msg('must be a JSON Web Key Set: {"keys": [...]}'))
    for key in keys.keys:
        if key.is_private:
            raise InvalidInput.field("jwks", Msg("must hold public keys only"))
    return dict(jwks)


def register_client(
    session: Session,
    *,
    by: User,
    name: str,
    redirect_uris: list[str],
    scopes: str,
    confidential: bool = False,
    launch_url: str | None = None,
    jwks: Any = None,
    jwks_url: str | None = None,
    origins: list[str] | None = None,
    acts_for: str | None = None,
) -> tuple[SmartClient, str | None]:
    """Register an app (administrators only). Returns the app and, for a confidential app
    with no keys, its client secret (shown once; only its hash is kept). A backend service
    may name (`acts_for`, an email) the clinician whose access its Bulk exports borrow."""
    if not by.can_administer:
        raise _not_admin(session, by, "smart_client_register")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput.field("name", Msg("must be 1-100 characters"))
    allowed = sc.parse(scopes, strict=True)
    if not allowed.resources:
        raise InvalidInput.field(
            "scope", Msg("name at least one resource scope, e.g. patient/*.rs")
        )
    uris = [_check_url(u, "redirect_uris") for u in redirect_uris if u and u.strip()]
    if len(uris) > MAX_URIS:
        raise InvalidInput.field("redirect_uris", Msg("at most 10"))
    if not uris and not allowed.system:
        raise InvalidInput.field("redirect_uris", Msg("name at least one for an app people open"))
    launch = _check_url(launch_url, "launch_url") if launch_url and launch_url.strip() else None
    keys = _check_jwks(jwks) if jwks else None
    key_url = _check_url(jwks_url, "jwks_url", https_only=True) if jwks_url else None
    if allowed.system and keys is None and key_url is None:
        raise InvalidInput.field(
            "jwks",
            Msg("a backend service (system/ scopes) needs its public keys: jwks or jwks_url"),
        )
    person = _acts_for(session, by, acts_for, backend=allowed.system)
    if keys is not None or key_url is not None:
        confidential = True
    secret = None
    if confidential and keys is None and key_url is None:
        secret = secrets.token_urlsafe(32)
    client = SmartClient(
        organization_id=by.organization_id,
        # Hex, so an id never starts with '-' and is read as an option on a command line.
        client_id=secrets.token_hex(16),
        name=name,
        redirect_uris=uris,
        launch_url=launch,
        allowed_scopes=str(allowed),
        confidential=confidential,
        secret_hash=token_hash(secret) if secret else None,
        jwks=keys,
        jwks_url=key_url,
        origins=sorted({_check_origin(o) for o in origins or [] if o.strip()}),
        acts_for_id=person.id if person else None,
        created_by_id=by.id,
    )
    session.add(client)
    session.flush()
    if allowed.system:
        client.service_user_id = _service_user(session, by.organization, client).id
    record(
        session,
        by=by,
        action="smart_client_register",
        object_type="SmartClient",
        object_id=client.id,
        detail={
            "scopes": client.allowed_scopes,
            "confidential": confidential,
            **({"acts_for": str(person.id)} if person else {}),
        },
    )
    _ORIGINS.forget()
    return client, secret


def _acts_for(session: Session, by: User, email: str | None, *, backend: bool) -> User | None:
    """The clinician a backend service reads as (ADR 0028): an active clinician of the
    administrator's organization, named by email."""
    email = (email or "").strip()
    if not email:
        return None
    if not backend:
        raise InvalidInput.field(
            "acts_for", Msg("only a backend service (system/ scopes) acts for a clinician")
        )
    person = get_user_by_email(session, email[:254])
    if (
        person is None
        or person.organization_id != by.organization_id
        or not person.active
        or not person.is_clinician
    ):
        raise InvalidInput.field(
            "acts_for", Msg("must be the email of an active clinician of this organization")
        )
    return person


def change_acts_for(
    session: Session,
    *,
    by: User,
    ident: str,
    acts_for: str | None = None,
    care_team: str | None = None,
) -> SmartClient:
    """An administrator changes whom a backend service acts for (ADR 0028): a clinician named
    by email (`acts_for`), or the current lead of a care team (`care_team`, the CareTeam's id,
    as the Group export names it; the lead *now* is recorded, and a later change of lead does
    not move the app). Neither: it acts for no one, and reads nothing. Audited, old and new.
    A running export of the app reads no further batch: it read as the former clinician
    (concord.fhir.bulk asks still_authorized before each one)."""
    client = get_client(session, by=by, ident=ident)
    acts_for = (acts_for or "").strip()
    care_team = (care_team or "").strip()
    if client.service_user_id is None:
        raise InvalidInput.field(
            "acts_for", Msg("only a backend service (system/ scopes) acts for a clinician")
        )
    if client.disabled_at is not None:
        raise InvalidInput.field("acts_for", Msg("this app is stopped"))
    if acts_for and care_team:
        raise InvalidInput.field("care_team", Msg("name a clinician or a care team, not both"))
    person = _acts_for(session, by, acts_for, backend=True) if acts_for else None
    team_id = None
    if care_team:
        person, team_id = _team_lead(session, by, care_team), care_team
    before = client.acts_for_id
    client.acts_for_id = person.id if person else None
    record(
        session,
        by=by,
        action="smart_client_acts_for",
        object_type="SmartClient",
        object_id=client.id,
        detail={
            "from": str(before) if before else None,
            "to": str(person.id) if person else None,
            **({"care_team": team_id} if team_id else {}),
        },
    )
    return client


def _team_lead(session: Session, by: User, care_team: str) -> User:
    """The current lead of a care team of the administrator's organization, an active
    clinician; InvalidInput naming `care_team` otherwise (a team not found says the same)."""
    try:
        team_id = uuid.UUID(care_team)
    except ValueError:
        team_id = None
    lead = None
    if team_id is not None:
        lead = session.scalar(
            select(User)
            .join(CareTeamMember, CareTeamMember.user_id == User.id)
            .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
            .join(Patient, Patient.id == CareTeam.patient_id)
            .where(
                CareTeam.id == team_id,
                CareTeamMember.is_lead.is_(True),
                CareTeamMember.ended_at.is_(None),
                Patient.organization_id == by.organization_id,
            )
        )
    if lead is None or not lead.active or not lead.is_clinician:
        raise InvalidInput.field(
            "care_team",
            Msg("must be the id of a care team of this organization led by an active clinician"),
        )
    return lead


def acting_person(session: Session, smart: SmartAccess) -> User | None:
    """The person a backend service's token reads as: the clinician its registration names,
    while they are an active clinician of the app's organization; None otherwise."""
    return acts_for_person(session, smart.client)


def acts_for_person(session: Session, client: SmartClient) -> User | None:
    """The clinician a backend service's registration names, while they are an active
    clinician of the app's organization; None otherwise."""
    if client.acts_for_id is None:
        return None
    person = session.get(User, client.acts_for_id)
    if (
        person is None
        or not person.active
        or not person.is_clinician
        or person.organization_id != client.organization_id
    ):
        return None
    return person


def still_authorized(
    session: Session, *, token_id: uuid.UUID, client_id: uuid.UUID | None, user_id: uuid.UUID
) -> bool:
    """Whether the access a running Bulk export reads with still stands (asked by the worker
    before each batch). A backend service's export: the app is not disabled and still acts
    for the same clinician (an administrator may have changed it). Any other: the token that
    asked is not revoked, its person still active, and, for a SMART app's token, the app not
    disabled nor the person's grant revoked."""
    if client_id is not None:
        client = session.get(SmartClient, client_id)
        if client is None or client.disabled_at is not None:
            return False
        person = acts_for_person(session, client)
        return person is not None and person.id == user_id
    token = session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None or not token.user.active:
        return False
    if session.get(SmartToken, token.id) is not None:
        return smart_access(session, token) is not None
    return True


def is_backend(smart: SmartAccess | None) -> bool:
    """Whether a SMART token is a backend service's own (client_credentials)."""
    return smart is not None and smart.user.id == smart.client.service_user_id


def _service_user(session: Session, organization: Organization, client: SmartClient) -> User:
    """The account a backend service acts as: role client, no password anyone knows."""
    user = User(
        organization_id=organization.id,
        email=client_email(organization, f"smart-{client.client_id.lower()[:20]}"),
        name=client.name[:100],
        role=str(Role.client),
        password_hash=hash_password(secrets.token_urlsafe(32)),
        password_changed_at=now(),
    )
    session.add(user)
    session.flush()
    record(
        session,
        by=None,
        action="user_create",
        object_type="User",
        object_id=user.id,
        organization_id=organization.id,
        detail={"role": str(Role.client)},
    )
    return user


def _not_admin(session: Session, by: User, action: str) -> PermissionDenied:
    record(session, by=by, action=action, object_type="SmartClient", outcome=Outcome.denied)
    return PermissionDenied(Msg("Only an administrator may manage apps."))


def list_clients(session: Session, *, by: User) -> list[SmartClient]:
    if not by.can_administer:
        raise _not_admin(session, by, "read")
    return list(
        session.scalars(
            select(SmartClient)
            .where(SmartClient.organization_id == by.organization_id)
            .order_by(SmartClient.created_at, SmartClient.name)
        )
    )


def get_client(session: Session, *, by: User, ident: str) -> SmartClient:
    for client in list_clients(session, by=by):
        if str(client.id) == ident or client.client_id == ident:
            return client
    raise NotFound(Msg("No such app."))


def disable_client(session: Session, *, by: User, ident: str) -> SmartClient:
    """Stop an app: no new authorization, and every grant and token it holds revoked."""
    client = get_client(session, by=by, ident=ident)
    if client.disabled_at is None:
        client.disabled_at = now()
        for grant in session.scalars(
            select(SmartGrant).where(
                SmartGrant.client_id == client.id, SmartGrant.revoked_at.is_(None)
            )
        ):
            _revoke_grant(session, grant, by=by)
        _revoke_tokens(
            session, select(SmartToken.api_token_id).where(SmartToken.client_id == client.id), by
        )
        record(
            session,
            by=by,
            action="smart_client_disable",
            object_type="SmartClient",
            object_id=client.id,
        )
        _ORIGINS.forget()
    return client


# --- launch contexts ------------------------------------------------------------------------


def create_launch(session: Session, *, by: User, system: str, value: str, mrn_system: str) -> str:
    """An EHR's launch context for the patient it names by identifier (Concord's MRN system):
    an opaque value the app brings to /oauth2/authorize. The EHR's account (an integration
    client of the organization) or a clinician who may read the patient's record."""
    # The MRN system setting names the organization by its slug (as the EHR import reads it).
    mrn_system = mrn_system.replace("{organization}", by.organization.slug)
    if system != mrn_system:
        raise InvalidInput.field(
            "identifier",
            Msg("the system must be %(system)s (this server's MRNs)", system=mrn_system),
        )
    value = (value or "").strip()
    if not value or len(value) > 40:
        raise InvalidInput.field("identifier", Msg("the value must be 1-40 characters"))
    patient = session.scalar(
        select(Patient).where(Patient.organization_id == by.organization_id, Patient.mrn == value)
    )
    if not (by.is_clinician or by.is_client):
        # A launch opens an app for a clinician, from the EHR: no one else makes one.
        record(
            session,
            by=by,
            action="smart_launch",
            object_type="Patient",
            object_id="identifier",
            outcome=Outcome.denied,
        )
        raise NotFound(Msg("No such patient."))
    if by.is_client and by.active:
        if patient is None:
            record(
                session,
                by=by,
                action="smart_launch",
                object_type="Patient",
                object_id="identifier",
                outcome=Outcome.denied,
            )
            raise NotFound(Msg("No such patient."))
    else:
        record_access(session, by, patient.id if patient else "identifier", action="smart_launch")
    assert patient is not None
    launch = secrets.token_urlsafe(24)
    session.add(
        SmartLaunch(
            organization_id=by.organization_id,
            launch_hash=token_hash(launch),
            patient_id=patient.id,
            created_by_id=by.id,
            expires_at=now() + LAUNCH_LIFETIME,
        )
    )
    record(
        session,
        by=by,
        action="smart_launch",
        object_type="Patient",
        object_id=patient.id,
        patient_id=patient.id,
    )
    return launch


# --- authorization --------------------------------------------------------------------------


@dataclass
class AuthRequest:
    client: SmartClient
    redirect_uri: str
    state: str
    scopes: sc.Scopes  # asked for, narrowed to the app's registration
    code_challenge: str
    nonce: str | None
    launch: str | None

    def params(self) -> dict[str, str]:
        """The request as the consent form carries it back."""
        out = {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "scope": str(self.scopes),
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }
        if self.nonce:
            out["nonce"] = self.nonce
        if self.launch:
            out["launch"] = self.launch
        return out

    @property
    def needs_patient(self) -> bool:
        return self.launch is None and (
            "launch/patient" in self.scopes.other or self.scopes.patient_level
        )


def redirect_with(uri: str, **params: str) -> str:
    from urllib.parse import urlencode

    return uri + ("&" if "?" in uri else "?") + urlencode(params)


class AuthorizeError(Exception):
    """A bad authorization request. With `redirect`, the app is told (RFC 6749 4.1.2.1);
    without (unknown app, unregistered redirect URI), only the person sees it."""

    def __init__(self, message: Msg, *, redirect: str | None = None) -> None:
        super().__init__(str(message))
        self.message = message
        self.redirect = redirect


def check_authorize(
    session: Session, *, params: dict[str, str], fhir_base: str, organization_id: uuid.UUID | None
) -> AuthRequest:
    client_id = params.get("client_id", "")
    client = session.scalar(select(SmartClient).where(SmartClient.client_id == client_id[:80]))
    if client is None or client.disabled_at is not None:
        raise AuthorizeError(Msg("This app is not registered here (client_id)."))
    if organization_id is not None and client.organization_id != organization_id:
        raise AuthorizeError(Msg("This app is not registered here (client_id)."))
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        # Never redirect to a URI the app did not register: that is how codes are stolen.
        raise AuthorizeError(Msg("The redirect_uri is not one this app registered."))
    state = params.get("state", "")

    def fail(error: str, description: str) -> AuthorizeError:
        target = redirect_with(
            redirect_uri,
            error=error,
            error_description=description,
            **({"state": state} if state else {}),
        )
        return AuthorizeError(Msg(description), redirect=target)

    if params.get("response_type") != "code":
        raise fail("unsupported_response_type", "response_type must be code")
    if not state or len(state) > 500:
        raise fail("invalid_request", "state is required (at most 500 characters)")
    challenge = params.get("code_challenge", "")
    if params.get("code_challenge_method") != "S256" or not (43 <= len(challenge) <= 128):
        raise fail(
            "invalid_request", "PKCE is required: code_challenge with code_challenge_method S256"
        )
    aud = (params.get("aud") or "").rstrip("/")
    if aud != fhir_base.rstrip("/"):
        raise fail("invalid_request", f"aud must be this server's FHIR base URL, {fhir_base}")
    asked = sc.parse(params.get("scope", ""))
    granted = sc.without(sc.narrow(asked, sc.parse(client.allowed_scopes)), ["system"])
    if not granted.resources:
        raise fail("invalid_scope", "none of the scopes asked for is one this app may have")
    nonce = params.get("nonce") or None
    launch = params.get("launch") or None
    if launch is not None and "launch" not in granted.other:
        raise fail("invalid_scope", "a launch parameter needs the launch scope")
    return AuthRequest(
        client,
        redirect_uri,
        state,
        granted,
        challenge,
        nonce[:200] if nonce else None,
        launch[:100] if launch else None,
    )


def pickable_patients(session: Session, *, by: User, limit: int = 200) -> list[Patient]:
    """The patients a member of staff may open an app for (their own readable ones)."""
    query = readable_patients(by).order_by(Patient.family_name, Patient.given_name).limit(limit)
    return list(session.scalars(query))


def own_patient(session: Session, *, by: User) -> Patient | None:
    if not by.is_patient:
        return None
    return session.scalar(select(Patient).where(Patient.user_id == by.id))


def approve(session: Session, *, by: User, req: AuthRequest, patient_id: str | None) -> str:
    """The person agreed: a grant and a one-time code. The patient in context is the EHR's
    launch, the patient picked (staff) or the patient themself; each must be one `by` may
    read, so a token never reaches further than its person."""
    if by.organization_id != req.client.organization_id:
        raise NotFound(Msg("This app is not registered here (client_id)."))
    patient: Patient | None = None
    if req.launch is not None:
        launch = session.scalar(
            select(SmartLaunch).where(SmartLaunch.launch_hash == token_hash(req.launch))
        )
        if (
            launch is None
            or launch.used_at is not None
            or launch.expires_at <= now()
            or launch.organization_id != by.organization_id
        ):
            raise InvalidInput.field(
                "launch",
                Msg("this launch has expired or was used; open the app from the EHR again"),
            )
        launch.used_at = now()
        patient = record_access(session, by, launch.patient_id, action="smart_authorize").patient
    elif by.is_patient:
        patient = own_patient(session, by=by)
        if patient is None:
            raise NotFound(Msg("No such patient."))
    elif req.needs_patient:
        if not patient_id:
            raise InvalidInput.field("patient", Msg("choose a patient"))
        patient = record_access(session, by, patient_id, action="smart_authorize").patient
    scopes = req.scopes
    if patient is None:
        scopes = sc.without(scopes, ["patient"])
        if not scopes.resources:
            raise InvalidInput.field("patient", Msg("choose a patient"))
    grant = SmartGrant(
        client_id=req.client.id,
        user_id=by.id,
        patient_id=patient.id if patient else None,
        scopes=str(scopes),
        nonce=req.nonce,
    )
    session.add(grant)
    session.flush()
    code = secrets.token_urlsafe(32)
    session.add(
        SmartCode(
            code_hash=token_hash(code),
            grant_id=grant.id,
            redirect_uri=req.redirect_uri,
            code_challenge=req.code_challenge,
            expires_at=now() + CODE_LIFETIME,
        )
    )
    record(
        session,
        by=by,
        action="smart_authorize",
        object_type="SmartClient",
        object_id=req.client.id,
        patient_id=grant.patient_id,
        detail={"scopes": grant.scopes},
    )
    return code


# --- the token endpoint ---------------------------------------------------------------------


def authenticate_client(
    session: Session, *, form: dict[str, str], basic: tuple[str, str] | None, token_url: str
) -> SmartClient:
    """Who is asking at the token endpoint: a public app by its client_id, a confidential one
    by its secret (HTTP Basic or the form) or its signed assertion (private_key_jwt)."""
    assertion = form.get("client_assertion")
    if assertion:
        return _assertion_client(session, form, assertion, token_url)
    client_id = basic[0] if basic else form.get("client_id", "")
    client = session.scalar(select(SmartClient).where(SmartClient.client_id == client_id[:80]))
    if client is None or client.disabled_at is not None:
        raise OAuthError("invalid_client", "unknown client_id", 401)
    if client.confidential:
        secret = basic[1] if basic else form.get("client_secret", "")
        if client.secret_hash is None:
            raise OAuthError("invalid_client", "this app authenticates with private_key_jwt", 401)
        if not secret or not hmac.compare_digest(token_hash(secret), client.secret_hash):
            raise OAuthError("invalid_client", "the client secret is wrong", 401)
    return client


def _assertion_client(
    session: Session, form: dict[str, str], assertion: str, token_url: str
) -> SmartClient:
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError("invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}", 401)
    try:
        # Only to find whose keys to check it with; nothing is trusted before that check.
        claims = json.loads(_b64(assertion.split(".")[1]))
    except (ValueError, IndexError):
        raise OAuthError("invalid_client", "client_assertion is not a JWT", 401) from None
    issuer = str(claims.get("iss", ""))[:80]
    client = session.scalar(select(SmartClient).where(SmartClient.client_id == issuer))
    if client is None or client.disabled_at is not None:
        raise OAuthError("invalid_client", "unknown client (the assertion's iss)", 401)
    keys = _client_keys(client)
    try:
        # Header parameters beyond the registered ones (Bulk Data clients send `kty`) are
        # ignored rather than refused; the signature, alg and claims are still checked.
        token = jwt.decode(assertion, keys, algorithms=ALGORITHMS, registry=_ASSERTION_HEADERS)
        jku = token.header.get("jku")
        if jku is not None and jku != client.jwks_url:
            # SMART Backend Services: a jku must be the app's registered JWKS URL.
            raise OAuthError(
                "invalid_client", "the assertion's jku is not this app's registered jwks_url", 401
            )
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": client.client_id},
            sub={"essential": True, "value": client.client_id},
            aud={"essential": True, "value": token_url},
            exp={"essential": True},
            jti={"essential": True},
        ).validate(token.claims)
    except (JoseError, ValueError) as exc:
        raise OAuthError(
            "invalid_client", f"client_assertion refused: {type(exc).__name__}", 401
        ) from None
    exp = int(token.claims["exp"])
    if exp > time.time() + 300:
        raise OAuthError("invalid_client", "client_assertion must expire within five minutes", 401)
    if not _JTIS.first_use(f"{client.client_id}:{token.claims['jti']}", exp):
        raise OAuthError("invalid_client", "client_assertion was already used (jti)", 401)
    return client


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class _SeenJtis:
    """Assertion ids seen in this process until they expire: one assertion, one token."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, key: str, exp: float) -> bool:
        with self._lock:
            current = time.time()
            self._seen = {k: v for k, v in self._seen.items() if v > current}
            if key in self._seen:
                return False
            self._seen[key] = exp
            return True


_JTIS = _SeenJtis()
_ASSERTION_HEADERS = JWSRegistry(algorithms=ALGORITHMS, strict_check_header=False)
_JWKS_CACHE: dict[str, tuple[float, dict[str, Any]]] = {}


def _client_keys(client: SmartClient) -> KeySet:
    if client.jwks:
        return KeySet.import_key_set(client.jwks)
    if client.jwks_url:
        cached = _JWKS_CACHE.get(client.jwks_url)
        if cached is None or cached[0] < time.time():
            try:
                with urllib.request.urlopen(client.jwks_url, timeout=5) as answer:  # noqa: S310
                    data = json.loads(answer.read(200_000))
            except (OSError, ValueError):
                raise OAuthError(
                    "invalid_client", "the app's jwks_url could not be read", 401
                ) from None
            cached = (time.time() + 300, data)
            _JWKS_CACHE[client.jwks_url] = cached
        return KeySet.import_key_set(cached[1])
    raise OAuthError("invalid_client", "this app has no keys registered", 401)


def exchange_code(
    session: Session,
    *,
    client: SmartClient,
    code: str,
    redirect_uri: str,
    verifier: str,
    issuer: str,
) -> dict[str, Any]:
    found = session.scalar(select(SmartCode).where(SmartCode.code_hash == token_hash(code or "")))
    if found is None or found.grant.client_id != client.id:
        raise OAuthError("invalid_grant", "unknown authorization code")
    if found.used_at is not None:
        # A code used twice: someone else may hold it. The grant made with it ends (RFC 6749 4.1.2).
        _revoke_grant(session, found.grant, by=None)
        raise OAuthError("invalid_grant", "the authorization code was already used")
    if found.expires_at <= now():
        raise OAuthError("invalid_grant", "the authorization code has expired")
    if redirect_uri != found.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    if not verifier or not (43 <= len(verifier) <= 128):
        raise OAuthError("invalid_grant", "code_verifier is required (PKCE, 43-128 characters)")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    if not hmac.compare_digest(challenge.decode(), found.code_challenge):
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge (PKCE)")
    found.used_at = now()
    grant = found.grant
    if grant.revoked_at is not None:
        raise OAuthError("invalid_grant", "this authorization was revoked")
    return _token_answer(session, grant=grant, issuer=issuer, new_refresh=True, with_id_token=True)


def refresh(
    session: Session, *, client: SmartClient, refresh_token: str, issuer: str
) -> dict[str, Any]:
    hashed = token_hash(refresh_token or "")
    grant = session.scalar(select(SmartGrant).where(SmartGrant.refresh_hash == hashed))
    if grant is None:
        stale = session.scalar(select(SmartGrant).where(SmartGrant.previous_refresh_hash == hashed))
        if stale is not None and stale.revoked_at is None:
            # A rotated-out refresh token sent again: it was copied. End the grant.
            _revoke_grant(session, stale, by=None)
        raise OAuthError("invalid_grant", "unknown, used or revoked refresh token")
    if grant.client_id != client.id:
        raise OAuthError("invalid_grant", "this refresh token belongs to another app")
    if grant.revoked_at is not None or (
        grant.refresh_expires_at and grant.refresh_expires_at <= now()
    ):
        raise OAuthError("invalid_grant", "this authorization was revoked or has expired")
    user = session.get(User, grant.user_id)
    if user is None or not user.active:
        raise OAuthError(
            "invalid_grant", "the person who authorized this app cannot sign in any more"
        )
    return _token_answer(session, grant=grant, issuer=issuer, new_refresh=True, with_id_token=False)


def client_credentials(
    session: Session,
    *,
    client: SmartClient,
    scope: str,
    known_types: frozenset[str] | None = None,
) -> dict[str, Any]:
    """A backend service's token: system/ scopes only, five minutes, no refresh. With
    `known_types`, a scope naming another type is refused (invalid_scope), not granted."""
    if client.service_user_id is None:
        raise OAuthError("unauthorized_client", "this app is not registered as a backend service")
    asked = sc.parse(scope)
    if known_types is not None:
        unknown = [r for r in asked.resources if r.kind != "*" and r.kind not in known_types]
        if unknown:
            raise OAuthError("invalid_scope", f"no such resource type here: {unknown[0].kind[:40]}")
    granted = sc.narrow(asked, sc.parse(client.allowed_scopes))
    granted = sc.Scopes(tuple(r for r in granted.resources if r.context == "system"), frozenset())
    if not granted.resources:
        raise OAuthError("invalid_scope", "ask for system/ scopes this app was registered with")
    user = session.get(User, client.service_user_id)
    assert user is not None
    token, api_token = create_api_token(
        session,
        user=user,
        by=user,
        name=f"SMART {client.name}"[:100],
        expires_in=SYSTEM_LIFETIME,
        scope=TokenScope.smart,
    )
    session.add(SmartToken(api_token_id=api_token.id, client_id=client.id, scopes=str(granted)))
    record(
        session,
        by=user,
        action="smart_token_issue",
        object_type="SmartClient",
        object_id=client.id,
        detail={"scopes": str(granted), "grant_type": "client_credentials"},
    )
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": int(SYSTEM_LIFETIME.total_seconds()),
        "scope": sc.as_asked(granted, scope),
    }


def _token_answer(
    session: Session, *, grant: SmartGrant, issuer: str, new_refresh: bool, with_id_token: bool
) -> dict[str, Any]:
    user = session.get(User, grant.user_id)
    assert user is not None
    granted = sc.parse(grant.scopes)
    token, api_token = create_api_token(
        session,
        user=user,
        by=user,
        name=f"SMART {grant.client.name}"[:100],
        expires_in=ACCESS_LIFETIME,
        scope=TokenScope.smart,
    )
    session.add(
        SmartToken(
            api_token_id=api_token.id,
            client_id=grant.client_id,
            grant_id=grant.id,
            scopes=grant.scopes,
            patient_id=grant.patient_id,
        )
    )
    answer: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": int(ACCESS_LIFETIME.total_seconds()),
        "scope": grant.scopes,
        "need_patient_banner": True,
    }
    if grant.patient_id is not None:
        answer["patient"] = str(grant.patient_id)
    if new_refresh and granted.other & {"offline_access", "online_access"}:
        refresh_token = secrets.token_urlsafe(32)
        grant.previous_refresh_hash = grant.refresh_hash
        grant.refresh_hash = token_hash(refresh_token)
        if grant.refresh_expires_at is None:
            grant.refresh_expires_at = now() + REFRESH_LIFETIME
        answer["refresh_token"] = refresh_token
    if with_id_token and "openid" in granted.other:
        answer["id_token"] = id_token(session, user=user, grant=grant, issuer=issuer)
    record(
        session,
        by=user,
        action="smart_token_issue",
        object_type="SmartClient",
        object_id=grant.client_id,
        patient_id=grant.patient_id,
        detail={"scopes": grant.scopes, "token": str(api_token.id)},
    )
    return answer


# --- id_token and the server's key ----------------------------------------------------------


def fhir_user(session: Session, user: User) -> str | None:
    if user.is_patient:
        patient = own_patient(session, by=user)
        return f"Patient/{patient.id}" if patient else None
    if user.is_clinician:
        return f"Practitioner/{user.id}"
    return None


def signing_key(session: Session) -> tuple[str, ECKey]:
    row = session.scalar(select(SmartKey).order_by(SmartKey.created_at.desc()).limit(1))
    if row is None:
        key = ECKey.generate_key("P-384", private=True)
        row = SmartKey(kid=key.thumbprint(), private_jwk=key.as_dict(private=True))
        session.add(row)
        session.flush()
    return row.kid, ECKey.import_key(row.private_jwk)


def public_jwks(session: Session) -> dict[str, Any]:
    kid, key = signing_key(session)
    public = key.as_dict(private=False)
    return {"keys": [{**public, "kid": kid, "use": "sig", "alg": "ES384"}]}


def id_token(session: Session, *, user: User, grant: SmartGrant, issuer: str) -> str:
    kid, key = signing_key(session)
    issued = int(now().timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": str(user.id),
        "aud": grant.client.client_id,
        "iat": issued,
        "exp": issued + int(ACCESS_LIFETIME.total_seconds()),
    }
    if grant.nonce:
        claims["nonce"] = grant.nonce
    granted = sc.parse(grant.scopes)
    if "fhirUser" in granted.other:
        who = fhir_user(session, user)
        if who:
            claims["fhirUser"] = f"{issuer}/{who}"
    return jwt.encode({"alg": "ES384", "kid": kid, "typ": "JWT"}, claims, key, algorithms=["ES384"])


# --- what a bearer token may do -------------------------------------------------------------


@dataclass(frozen=True)
class SmartAccess:
    """A SMART token's app, person (or backend service account), scopes and patient."""

    client: SmartClient
    user: User
    token: ApiToken
    scopes: sc.Scopes
    patient_id: uuid.UUID | None


def smart_access(session: Session, api_token: ApiToken) -> SmartAccess | None:
    """For a token already found usable (concord.accounts.tokens.user_for_api_token): its
    SMART side, or None for a token made any other way."""
    row = session.get(SmartToken, api_token.id)
    if row is None:
        return None
    client = session.get(SmartClient, row.client_id)
    if client is None or client.disabled_at is not None:
        return None
    if row.grant_id is not None:
        grant = session.get(SmartGrant, row.grant_id)
        if grant is None or grant.revoked_at is not None:
            return None
    return SmartAccess(client, api_token.user, api_token, sc.parse(row.scopes), row.patient_id)


def resolve_bearer(session: Session, token: str) -> SmartAccess | None:
    """A bearer token -> (app, actor, scopes), or None when it is not a usable SMART token.
    The one answer /fhir and Bulk export use."""
    found = user_for_api_token(session, token)
    if found is None:
        return None
    return smart_access(session, found[1])


# --- grants a person holds ------------------------------------------------------------------


def list_patient_apps(session: Session, *, by: User) -> list[SmartGrant]:
    """The apps that may read the signed-in patient's record: grants naming them, or made by
    them, not revoked."""
    patient = own_patient(session, by=by)
    if patient is None:
        record(session, by=by, action="read", object_type="SmartGrant", outcome=Outcome.denied)
        raise NotFound(Msg("This page is for patients."))
    record(session, by=by, action="read", object_type="SmartGrant", patient_id=patient.id)
    return list(
        session.scalars(
            select(SmartGrant)
            .where(
                (SmartGrant.patient_id == patient.id) | (SmartGrant.user_id == by.id),
                SmartGrant.revoked_at.is_(None),
            )
            .order_by(SmartGrant.created_at.desc())
        )
    )


def revoke_patient_app(session: Session, *, by: User, grant_id: str) -> SmartGrant:
    """A patient ends an app's access to their record: the grant, its refresh token and every
    access token made under it."""
    for grant in list_patient_apps(session, by=by):
        if str(grant.id) == grant_id:
            _revoke_grant(session, grant, by=by)
            return grant
    raise refused(
        session,
        by=by,
        action="smart_revoke",
        object_type="SmartGrant",
        asked_for=grant_id,
        message=Msg("No such app."),
    )


def _revoke_grant(session: Session, grant: SmartGrant, *, by: User | None) -> None:
    if grant.revoked_at is None:
        grant.revoked_at = now()
        grant.refresh_hash = None
        record(
            session,
            by=by,
            action="smart_revoke",
            object_type="SmartGrant",
            object_id=grant.id,
            patient_id=grant.patient_id,
            organization_id=grant.client.organization_id,
        )
    _revoke_tokens(
        session, select(SmartToken.api_token_id).where(SmartToken.grant_id == grant.id), by
    )


def _revoke_tokens(session: Session, ids: Any, by: User | None) -> None:
    for token_id in list(session.scalars(ids)):
        revoke_api_token(session, token_id=token_id, by=by)


# --- origins an app's browser may call from, or embed Concord in ----------------------------


class _Origins:
    """The registered origins, read at most every TTL seconds per process (the security
    headers ask on every answer); registering or disabling an app here forgets at once."""

    TTL = 30.0

    def __init__(self) -> None:
        self._until = 0.0
        self._value: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def get(self, factory: Any) -> frozenset[str]:
        if time.monotonic() < self._until:
            return self._value
        with self._lock:
            try:
                with factory() as session:
                    rows = session.scalars(
                        select(SmartClient.origins).where(SmartClient.disabled_at.is_(None))
                    ).all()
            except SQLAlchemyError:
                # The database unreachable: the last list stands (none at first), and every
                # request is not made to fail on its headers; asked again after TTL.
                self._until = time.monotonic() + self.TTL
                return self._value
            self._value = frozenset(o for row in rows for o in (row or []))
            self._until = time.monotonic() + self.TTL
            return self._value

    def forget(self) -> None:
        self._until = 0.0


_ORIGINS = _Origins()


def registered_origins(factory: Any) -> frozenset[str]:
    return _ORIGINS.get(factory)


def capability_security(root: str) -> dict[str, Any]:
    """The CapabilityStatement's rest.security: SMART's oauth-uris extension and service."""
    return {
        "cors": True,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
            }
        ],
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [
                    {"url": "authorize", "valueUri": f"{root}/oauth2/authorize"},
                    {"url": "token", "valueUri": f"{root}/oauth2/token"},
                ],
            }
        ],
        "description": "SMART App Launch 2.x: authorization code with PKCE (S256), refresh "
        "tokens, and backend services for Bulk Data export (grant_type client_credentials, "
        "client authentication private_key_jwt with RS384 or ES384, system/ scopes such as "
        "system/*.rs; the token endpoint is in the oauth-uris extension); API tokens made by "
        "Concord also work (Authorization: Bearer). See docs/smart.md and "
        "docs/bulk-export.md.",
    }
