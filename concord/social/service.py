"""Social needs: concerns from a screen, the directory, and referrals with their loop.

Reads take the access and pass the disclosure decision (`social_needs` records); every read and
change of a patient's social-needs record is audited. The partner's link has no user: its
changes are audited with no actor and `party: partner`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import (
    PatientAccess,
    deny,
    in_scope,
    owned_by_id,
    parse_id,
    records_among,
    refuse_record,
)
from concord.accounts.models import Organization, User
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.clock import now
from concord.dates import org_today
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg
from concord.measures.library import Instrument
from concord.measures.scoring import Scored
from concord.social import referrals as rules
from concord.social.models import (
    CommunityService,
    ConcernStatus,
    PostcodeCentroid,
    Referral,
    ReferralEvent,
    ReferralStatus,
    SocialConcern,
)


class LinkExpired(NotFound):
    """A partner's link Concord made whose time is up (410 Gone): the partner's page says so
    and what to do; a forged or unknown link stays a plain 404."""

    status_code = 410
    code = "expired"


CONCERN = "SocialConcern"
SERVICE = "CommunityService"
REFERRAL = "Referral"
NEEDS_FILE = Path(__file__).parent / "needs.yaml"
LINK_DAYS = 30  # how long a partner's link works
DEFAULT_RESPOND_DAYS = 5  # the clinic's set time for a first answer, unless it sets another


@cache
def _needs() -> Mapping[str, Any]:
    return yaml.safe_load(NEEDS_FILE.read_text())


def domains() -> Mapping[str, Mapping[str, Any]]:
    return _needs()["domains"]


def domain_label(code: str) -> str:
    return str(domains().get(code, {}).get("label", code))


def _can_read(session: Session, access: PatientAccess, action: str, object_type: str) -> None:
    if not access.can_read_record:
        raise refuse_record(session, access, action=action, object_type=object_type)


# --- concerns ---------------------------------------------------------------------------------


def _refined(instrument: Instrument, domain: str, answers: Mapping[str, int]) -> str:
    for rule in _needs().get("refine", {}).get(instrument.code, {}).get(domain, []):
        if answers.get(str(rule["item"])) == rule["equals"]:
            return str(rule["domain"])
    return domain


def concerns_from_screening(
    session: Session,
    *,
    access: PatientAccess,
    response: Any,
    instrument: Instrument,
    scored: Scored,
) -> tuple[list[SocialConcern], list[SocialConcern]]:
    """A screen's positive domains become proposed health concerns (one open concern per
    domain, never a second); an open concern in a domain this screen asks about and found
    negative is resolved ("needs resolved at rescreen"). Returns (new, resolved)."""
    positive: dict[str, str] = {}
    asked: set[str] = set()
    for flag in instrument.flags:
        if not flag.domain:
            continue
        asked.add(flag.domain)
        if any(f.id == flag.id for f in scored.flags):
            positive[_refined(instrument, flag.domain, response.answers)] = flag.domain
    housing_family = {"housing-instability", "homelessness", "inadequate-housing"}
    open_concerns = list(
        session.scalars(
            select(SocialConcern).where(
                SocialConcern.patient_id == access.patient.id,
                SocialConcern.status.in_([ConcernStatus.proposed, ConcernStatus.confirmed]),
            )
        )
    )
    by_domain = {c.domain: c for c in open_concerns}
    created: list[SocialConcern] = []
    for domain in positive:
        if domain in by_domain:
            continue
        spec = domains().get(domain, {})
        concern = SocialConcern(
            organization_id=access.patient.organization_id,
            patient_id=access.patient.id,
            domain=domain,
            snomed=(spec.get("snomed") or {}).get("code"),
            icd10=(spec.get("icd10") or {}).get("code"),
            status=ConcernStatus.proposed,
            sensitive=bool(spec.get("sensitive", False)),
            source_response_id=response.id,
            created_at=now(),
            updated_at=now(),
        )
        session.add(concern)
        created.append(concern)
    resolved: list[SocialConcern] = []
    for concern in open_concerns:
        family = housing_family if concern.domain in housing_family else {concern.domain}
        screened = bool(family & asked) or (
            concern.domain in housing_family and "housing-instability" in asked
        )
        if screened and not any(d in family for d in positive):
            concern.status = ConcernStatus.resolved
            concern.resolved_at = now()
            concern.updated_at = now()
            resolved.append(concern)
    session.flush()
    for concern in created:
        record(
            session,
            by=access.by,
            action="create",
            object_type=CONCERN,
            object_id=concern.id,
            patient_id=access.patient.id,
            detail={"domain": concern.domain, "from": "screening"},
        )
    for concern in resolved:
        record(
            session,
            by=access.by,
            action="resolve",
            object_type=CONCERN,
            object_id=concern.id,
            patient_id=access.patient.id,
            detail={"domain": concern.domain, "from": "rescreen"},
        )
    return created, resolved


@disclosure.discloses(CONCERN)
def list_concerns(session: Session, *, access: PatientAccess) -> list[SocialConcern]:
    _can_read(session, access, "list", CONCERN)
    concerns = list(
        session.scalars(
            select(SocialConcern)
            .where(SocialConcern.patient_id == access.patient.id)
            .order_by(SocialConcern.created_at.desc())
        )
    )
    record(
        session,
        by=access.by,
        action="list",
        object_type=CONCERN,
        patient_id=access.patient.id,
        detail={"count": len(concerns)},
    )
    return concerns


@disclosure.discloses(CONCERN)
def get_concern(
    session: Session, *, access: PatientAccess, concern_id: Any, audit: bool = True
) -> SocialConcern:
    _can_read(session, access, "read", CONCERN)
    key = parse_id(concern_id)
    concern = session.get(SocialConcern, key) if key else None
    if concern is None or concern.patient_id != access.patient.id:
        raise NotFound(Msg("No such social need."))
    if audit:
        record(
            session,
            by=access.by,
            action="read",
            object_type=CONCERN,
            object_id=concern.id,
            patient_id=access.patient.id,
        )
    return concern


def concerns_shown(
    session: Session, *, access: PatientAccess, ids: Iterable[uuid.UUID | None]
) -> set[uuid.UUID]:
    """Which of `ids` name a social need of this patient that `access` may see: what another
    record may point at (a plan goal's `Goal.addresses`, its `social_concern_id` in the JSON
    API). A need the reader may not see (no record access, or a consent refusing social
    needs) is not named, not even by its id; the withheld count is audited as for a list."""
    wanted = {i for i in ids if i is not None}
    if not wanted or not access.can_read_record:
        return set()
    return {c.id for c in _concerns_among(session, access=access, ids=wanted)}


@disclosure.discloses(CONCERN)
def _concerns_among(
    session: Session, *, access: PatientAccess, ids: set[uuid.UUID]
) -> list[SocialConcern]:
    return list(
        session.scalars(
            select(SocialConcern).where(
                SocialConcern.id.in_(ids), SocialConcern.patient_id == access.patient.id
            )
        )
    )


def find_concern(session: Session, *, by: User, ident: Any) -> tuple[SocialConcern, PatientAccess]:
    """A concern by its id alone (the FHIR door): the patient's record access decides, then
    `get_concern` (the disclosure decision and the trail). A malformed id, a missing concern
    and one outside the caller's scope get the same NotFound, audited."""
    concern, acc = owned_by_id(session, by, SocialConcern, str(ident), object_type=CONCERN)
    return get_concern(session, access=acc, concern_id=concern.id), acc


def patients_with(session: Session, *, by: User, object_type: str) -> list[PatientAccess]:
    """For a search that names no patient (the FHIR door): the patients whose record `by` may
    read (their care teams' patients; a patient themself) that hold a concern (CONCERN) or a
    referral (REFERRAL), each through the record's access as a search by patient."""
    model = SocialConcern if object_type == CONCERN else Referral
    ids = session.scalars(
        select(model.patient_id).where(in_scope(by, None, model.patient_id)).distinct()
    )
    return records_among(session, by, {str(i) for i in ids}, object_type=object_type) or []


DECISIONS = ("confirm", "decline", "resolve")


def decide_concern(
    session: Session,
    *,
    access: PatientAccess,
    concern_id: Any,
    decision: str,
    words: str | None = None,
    reason: str | None = None,
) -> SocialConcern:
    """The patient (or the team with them) confirms a need, maybe in their own words,
    declines it, or marks it resolved. Declining is the patient's: the team records it only
    as the patient's answer."""
    concern = get_concern(session, access=access, concern_id=concern_id, audit=False)
    if not (access.on_team or access.is_self):
        raise deny(session, access, action="update", object_type=CONCERN, message="Not allowed.")
    if decision not in DECISIONS:
        raise InvalidInput.field("decision", Msg("must be confirm, decline or resolve"))
    if words is not None and len(words) > 500:
        raise InvalidInput.field("words", Msg("must be at most 500 characters"))
    if concern.status in (ConcernStatus.declined, ConcernStatus.resolved) and decision != "confirm":
        raise Conflict(Msg("This need is already closed."))
    if decision == "confirm":
        concern.status = ConcernStatus.confirmed
        if words:
            concern.patient_words = words
    elif decision == "decline":
        concern.status = ConcernStatus.declined
        concern.decline_reason = reason or None
    else:
        concern.status = ConcernStatus.resolved
        concern.resolved_at = now()
    concern.decided_by_id = access.by.id
    concern.updated_at = now()
    record(
        session,
        by=access.by,
        action="update",
        object_type=CONCERN,
        object_id=concern.id,
        patient_id=access.patient.id,
        detail={"decision": decision, "reworded": bool(words)},
    )
    return concern


# --- the directory -----------------------------------------------------------------------------

SERVICE_FIELDS = (
    "provider_name",
    "name",
    "description",
    "categories",
    "eligibility",
    "languages",
    "hours",
    "address",
    "postcode",
    "phone",
    "email",
    "website",
    "electronic_referrals",
)
LIMITS = {
    "provider_name": 200,
    "name": 200,
    "description": 4000,
    "eligibility": 500,
    "hours": 300,
    "address": 300,
    "postcode": 12,
    "phone": 40,
    "email": 200,
    "website": 300,
}


def _clean_service(data: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    errors: dict[str, Msg] = {}
    clean: dict[str, Any] = {}
    for name in SERVICE_FIELDS:
        value = data.get(name)
        if name in ("categories", "languages"):
            items = value if isinstance(value, list) else str(value or "").split(",")
            clean[name] = [str(v).strip() for v in items if str(v).strip()]
        elif name == "electronic_referrals":
            clean[name] = value in (True, "true", "on", "yes", "1", 1)
        else:
            text = str(value).strip() if value not in (None, "") else None
            if text is not None and len(text) > LIMITS[name]:
                errors[f"{where}{name}"] = Msg("must be at most %(n)s characters", n=LIMITS[name])
            clean[name] = text
    for name in ("provider_name", "name"):
        if not clean.get(name):
            errors[f"{where}{name}"] = Msg("is required")
    unknown = [c for c in clean["categories"] if c not in domains()]
    if not clean["categories"]:
        errors[f"{where}categories"] = Msg("choose at least one need the service meets")
    elif unknown:
        errors[f"{where}categories"] = Msg(
            "must be among: %(allowed)s", allowed=", ".join(domains())
        )
    bad_lang = [v for v in clean["languages"] if len(v) != 2 or not v.isalpha()]
    if bad_lang:
        errors[f"{where}languages"] = Msg("must be two-letter language codes (en, es, ...)")
    clean["languages"] = [v.lower() for v in clean["languages"]]
    if clean.get("postcode"):
        clean["postcode"] = clean["postcode"].upper().replace(" ", "")
    if errors:
        raise InvalidInput(Msg("Some fields need attention."), errors=errors)
    return clean


def _admin_or_clinician(by: User) -> bool:
    return by.is_clinician or by.role == "admin"


def add_service(session: Session, *, by: User, data: Mapping[str, Any]) -> CommunityService:
    if not _admin_or_clinician(by):
        raise NotFound(Msg("Not found."))
    service = CommunityService(organization_id=by.organization_id, **_clean_service(data))
    service.updated_at = now()
    session.add(service)
    session.flush()
    record(session, by=by, action="create", object_type=SERVICE, object_id=service.id)
    return service


def update_service(
    session: Session, *, by: User, service_id: Any, data: Mapping[str, Any]
) -> CommunityService:
    service = get_service(session, by=by, service_id=service_id)
    if not _admin_or_clinician(by):
        raise NotFound(Msg("Not found."))
    for name, value in _clean_service(data).items():
        setattr(service, name, value)
    if "active" in data:
        service.active = data["active"] in (True, "true", "on", "1", 1)
    service.updated_at = now()
    record(session, by=by, action="update", object_type=SERVICE, object_id=service.id)
    return service


def get_service(session: Session, *, by: User, service_id: Any) -> CommunityService:
    key = parse_id(service_id)
    service = session.get(CommunityService, key) if key else None
    if service is None or service.organization_id != by.organization_id:
        raise NotFound(Msg("No such service."))
    return service


def import_hsds(session: Session, *, by: User, content: str, kind: str) -> list[CommunityService]:
    """Services from an Open Referral HSDS file: JSON (a list of services, each with its
    organization, or {"services": [...]}) or the CSV of services.csv with organization_name.
    A service already imported (same HSDS id) is updated, never duplicated. All or nothing:
    one bad row refuses the file, naming the row and field."""
    if not _admin_or_clinician(by):
        raise NotFound(Msg("Not found."))
    rows = _hsds_rows(content, kind)
    cleaned: list[tuple[str | None, dict[str, Any]]] = []
    errors: dict[str, Any] = {}
    for n, row in enumerate(rows):
        try:
            cleaned.append((row.get("id"), _clean_service(row, where=f"services[{n}].")))
        except InvalidInput as exc:
            errors.update(exc.errors)
    if errors:
        raise InvalidInput(Msg("The file cannot be imported."), errors=errors)
    done = []
    for hsds_id, data in cleaned:
        source = f"hsds:{hsds_id}"[:120] if hsds_id else None
        existing = (
            session.scalar(
                select(CommunityService).where(
                    CommunityService.organization_id == by.organization_id,
                    CommunityService.source == source,
                )
            )
            if source
            else None
        )
        service = existing or CommunityService(organization_id=by.organization_id, source=source)
        for name, value in data.items():
            setattr(service, name, value)
        service.updated_at = now()
        session.add(service)
        done.append(service)
    session.flush()
    record(
        session, by=by, action="directory_import", object_type=SERVICE, detail={"count": len(done)}
    )
    return done


def _hsds_rows(content: str, kind: str) -> list[dict[str, Any]]:
    if kind == "json":
        try:
            data = json.loads(content)
        except ValueError:
            raise InvalidInput.field("file", Msg("is not valid JSON")) from None
        items = data.get("services", data.get("contents")) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise InvalidInput.field("file", Msg("must hold a list of HSDS services"))
        return [_from_hsds(i) for i in items if isinstance(i, dict)]
    if kind == "csv":
        reader = csv.DictReader(io.StringIO(content))
        return [_from_hsds_csv(row) for row in reader]
    raise InvalidInput.field("kind", Msg("must be json or csv"))


def _from_hsds(item: Mapping[str, Any]) -> dict[str, Any]:
    """One HSDS 3.0 service (with its organization, service_at_locations, phones, languages,
    schedules and attributes as the HSDS JSON schema names them)."""
    org = item.get("organization") or {}
    locations = [
        (sal.get("location") or {}) for sal in item.get("service_at_locations") or []
    ] or list(item.get("locations") or [])
    address = {}
    for loc in locations:
        addresses = loc.get("addresses") or ([loc["address"]] if loc.get("address") else [])
        if addresses:
            address = addresses[0]
            break
    phones = item.get("phones") or org.get("phones") or []
    languages = [
        (lang.get("code") or lang.get("name") or "")[:2] if isinstance(lang, dict) else str(lang)
        for lang in item.get("languages") or []
    ]
    categories = [
        str(a.get("taxonomy_term", {}).get("code") or a.get("value") or "")
        for a in item.get("attributes") or []
        if isinstance(a, dict)
    ]
    schedules = item.get("schedules") or []
    return {
        "id": item.get("id"),
        "provider_name": org.get("name") or item.get("organization_name"),
        "name": item.get("name"),
        "description": item.get("description"),
        "categories": [c for c in categories if c] or item.get("categories") or [],
        "eligibility": item.get("eligibility_description"),
        "languages": [v for v in languages if v],
        "hours": "; ".join(str(s.get("description")) for s in schedules if s.get("description"))
        or None,
        "address": ", ".join(
            str(address[k]) for k in ("address_1", "city", "state_province") if address.get(k)
        )
        or None,
        "postcode": address.get("postal_code"),
        "phone": phones[0].get("number") if phones and isinstance(phones[0], dict) else None,
        "email": item.get("email") or org.get("email"),
        "website": item.get("url") or org.get("website"),
        "electronic_referrals": bool(item.get("electronic_referrals", False)),
    }


def _from_hsds_csv(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row.get("id"),
        "provider_name": row.get("organization_name"),
        "name": row.get("name"),
        "description": row.get("description"),
        "categories": row.get("categories") or "",
        "eligibility": row.get("eligibility_description"),
        "languages": row.get("languages") or "",
        "hours": row.get("hours"),
        "address": row.get("address"),
        "postcode": row.get("postal_code"),
        "phone": row.get("phone"),
        "email": row.get("email"),
        "website": row.get("url"),
        "electronic_referrals": row.get("electronic_referrals") in ("true", "yes", "1"),
    }


def load_postcodes(session: Session, rows: Iterable[tuple[str, float, float]]) -> int:
    count = 0
    for code, lat, lon in rows:
        key = code.upper().replace(" ", "")
        found = session.get(PostcodeCentroid, key)
        if found is None:
            session.add(PostcodeCentroid(postcode=key, latitude=lat, longitude=lon))
        else:
            found.latitude, found.longitude = lat, lon
        count += 1
    session.flush()
    return count


def km_between(a: PostcodeCentroid, b: PostcodeCentroid) -> float:
    """Great-circle distance (haversine, Earth radius 6371 km)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


@dataclass(frozen=True)
class Found:
    service: CommunityService
    km: float | None


def search_services(
    session: Session,
    *,
    by: User,
    need: str | None = None,
    language: str | None = None,
    near: str | None = None,
    within_km: float | None = None,
) -> list[Found]:
    """The organization's active services, by need, language and distance from a postcode
    (nearest first; a service without a known postcode comes last and is left out when a
    radius is asked)."""
    if need and need not in domains():
        raise InvalidInput.field(
            "need", Msg("must be among: %(allowed)s", allowed=", ".join(domains()))
        )
    services = session.scalars(
        select(CommunityService)
        .where(
            CommunityService.organization_id == by.organization_id,
            CommunityService.active.is_(True),
        )
        .order_by(CommunityService.provider_name, CommunityService.name)
    )
    origin = session.get(PostcodeCentroid, near.upper().replace(" ", "")) if near else None
    if near and origin is None:
        raise InvalidInput.field("near", Msg("is not a postcode Concord knows"))
    found = []
    for service in services:
        if need and need not in (service.categories or []):
            continue
        if language and language.lower() not in (service.languages or []):
            continue
        km = None
        if origin is not None and service.postcode:
            there = session.get(PostcodeCentroid, service.postcode)
            km = round(km_between(origin, there), 1) if there is not None else None
        if within_km is not None and (km is None or km > within_km):
            continue
        found.append(Found(service, km))
    found.sort(key=lambda f: (f.km is None, f.km or 0))
    return found


# --- referrals ---------------------------------------------------------------------------------


@dataclass
class NewReferral:
    service: CommunityService
    domain: str
    shared_summary: str
    contact: str | None
    concern: SocialConcern | None
    consent_id: uuid.UUID | None
    self_referral: bool = False
    respond_days: int = DEFAULT_RESPOND_DAYS
    replaces: Referral | None = None


def create_referral(
    session: Session, *, access: PatientAccess, new: NewReferral, secret: str
) -> tuple[Referral, str]:
    """Send a referral (status requested) and make the partner's link. Returns the referral
    and the link's token (shown once, to give to the partner; only its hash is kept)."""
    if not (access.can_edit_plan or (access.is_self and new.self_referral)):
        raise deny(session, access, action="create", object_type=REFERRAL, message="Not allowed.")
    errors: dict[str, Msg] = {}
    if not new.shared_summary or len(new.shared_summary) > 1000:
        errors["shared_summary"] = Msg(
            "is required (at most 1000 characters): only what the service needs to help"
        )
    if new.contact is not None and len(new.contact) > 200:
        errors["contact"] = Msg("must be at most 200 characters")
    if new.domain not in domains():
        errors["domain"] = Msg("must be among: %(allowed)s", allowed=", ".join(domains()))
    if not 1 <= new.respond_days <= 60:
        errors["respond_days"] = Msg("must be between 1 and 60 days")
    if new.service.organization_id != access.patient.organization_id or not new.service.active:
        errors["service_id"] = Msg("must be an active service in the directory")
    if errors:
        raise InvalidInput(Msg("Some fields need attention."), errors=errors)
    token, digest = rules.new_token(secret)
    today = org_today(access.patient.clinic.organization)
    referral = Referral(
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        concern_id=new.concern.id if new.concern else None,
        service_id=new.service.id,
        domain=new.domain,
        status=ReferralStatus.requested,
        self_referral=new.self_referral,
        shared_summary=new.shared_summary,
        contact=new.contact,
        consent_id=new.consent_id,
        requested_at=now(),
        respond_by=today + timedelta(days=new.respond_days),
        token_hash=digest,
        token_expires_at=now() + timedelta(days=LINK_DAYS),
        replaces_id=new.replaces.id if new.replaces else None,
        created_by_id=access.by.id,
        updated_at=now(),
    )
    referral.service = new.service
    session.add(referral)
    session.flush()
    _event(
        session,
        referral,
        by=access.by,
        party="patient" if access.is_self else "requester",
        from_status=None,
        to_status=ReferralStatus.requested,
        note=None,
    )
    record(
        session,
        by=access.by,
        action="create",
        object_type=REFERRAL,
        object_id=referral.id,
        patient_id=access.patient.id,
        detail={"domain": referral.domain, "self_referral": referral.self_referral},
    )
    return referral, token


def _event(
    session: Session,
    referral: Referral,
    *,
    by: User | None,
    party: str,
    from_status: str | None,
    to_status: str,
    note: str | None,
) -> None:
    earlier = session.scalar(
        select(func.count())
        .select_from(ReferralEvent)
        .where(ReferralEvent.referral_id == referral.id)
    )
    session.add(
        ReferralEvent(
            referral_id=referral.id,
            seq=(earlier or 0) + 1,
            at=now(),
            by_id=by.id if by else None,
            party=party,
            from_status=from_status,
            to_status=to_status,
            note=note,
        )
    )


@disclosure.discloses(REFERRAL)
def list_referrals(session: Session, *, access: PatientAccess) -> list[Referral]:
    _can_read(session, access, "list", REFERRAL)
    found = list(
        session.scalars(
            select(Referral)
            .where(Referral.patient_id == access.patient.id)
            .order_by(Referral.requested_at.desc())
        )
    )
    record(
        session,
        by=access.by,
        action="list",
        object_type=REFERRAL,
        patient_id=access.patient.id,
        detail={"count": len(found)},
    )
    return found


@disclosure.discloses(REFERRAL)
def get_referral(
    session: Session, *, access: PatientAccess, referral_id: Any, audit: bool = True
) -> Referral:
    _can_read(session, access, "read", REFERRAL)
    key = parse_id(referral_id)
    referral = session.get(Referral, key) if key else None
    if referral is None or referral.patient_id != access.patient.id:
        raise NotFound(Msg("No such referral."))
    if audit:
        record(
            session,
            by=access.by,
            action="read",
            object_type=REFERRAL,
            object_id=referral.id,
            patient_id=access.patient.id,
        )
    return referral


def find_referral(session: Session, *, by: User, ident: Any) -> tuple[Referral, PatientAccess]:
    """A referral by its id alone (the FHIR door), as `find_concern`."""
    referral, acc = owned_by_id(session, by, Referral, str(ident), object_type=REFERRAL)
    return get_referral(session, access=acc, referral_id=referral.id), acc


def events(session: Session, referral: Referral) -> list[ReferralEvent]:
    return list(
        session.scalars(
            select(ReferralEvent)
            .where(ReferralEvent.referral_id == referral.id)
            .order_by(ReferralEvent.seq)
        )
    )


def history_of(
    session: Session, referrals: Iterable[Referral]
) -> dict[uuid.UUID, list[ReferralEvent]]:
    """Each referral's recorded changes, in order, in one query: for referrals already read
    through `list_referrals` (its access check, disclosure decision and audit event)."""
    ids = [r.id for r in referrals]
    found: dict[uuid.UUID, list[ReferralEvent]] = {i: [] for i in ids}
    if ids:
        rows = session.scalars(
            select(ReferralEvent)
            .where(ReferralEvent.referral_id.in_(ids))
            .order_by(ReferralEvent.referral_id, ReferralEvent.seq)
        )
        for event in rows:
            found[event.referral_id].append(event)
    return found


def _move(
    session: Session,
    referral: Referral,
    *,
    to: str,
    party: str,
    by: User | None,
    reason: str | None,
    outcome: str | None,
) -> Referral:
    current = referral.status
    if to not in {s.value for s in ReferralStatus}:
        raise InvalidInput.field(
            "status",
            Msg("must be one of: %(allowed)s", allowed=", ".join(s.value for s in ReferralStatus)),
        )
    if not rules.allowed(current, to, party):
        record(
            session,
            by=by,
            action="update",
            object_type=REFERRAL,
            object_id=referral.id,
            patient_id=referral.patient_id,
            organization_id=referral.organization_id,
            outcome=Outcome.denied,
            detail={"from": current, "to": to, "party": party},
        )
        allowed = rules.next_for(current, party)
        raise Conflict(
            Msg(
                "A referral that is %(current)s cannot be made %(to)s here. Allowed: %(allowed)s.",
                current=current,
                to=to,
                allowed=", ".join(allowed) or "none",
            )
        )
    reason = (reason or "").strip() or None
    outcome = (outcome or "").strip() or None
    if to in rules.NEEDS_REASON and not reason:
        raise InvalidInput.field("reason", Msg("is required: say why"))
    if to in rules.NEEDS_OUTCOME and not outcome:
        raise InvalidInput.field("outcome", Msg("is required: say what was done"))
    for name, text in (("reason", reason), ("outcome", outcome)):
        if text is not None and len(text) > (500 if name == "reason" else 1000):
            raise InvalidInput.field(name, Msg("is too long"))
    referral.status = to
    if reason:
        referral.status_reason = reason
    if outcome:
        referral.outcome = outcome
    referral.updated_at = now()
    if to in rules.CLOSED and referral.closed_at is None:
        referral.closed_at = now()  # the first close (entered in error may follow it)
    _event(
        session,
        referral,
        by=by,
        party=party,
        from_status=current,
        to_status=to,
        note=reason or outcome,
    )
    record(
        session,
        by=by,
        action="update",
        object_type=REFERRAL,
        object_id=referral.id,
        patient_id=referral.patient_id,
        organization_id=referral.organization_id,
        detail={"from": current, "to": to, "party": party},
    )
    return referral


def team_transition(
    session: Session,
    *,
    access: PatientAccess,
    referral_id: Any,
    to: str,
    reason: str | None = None,
) -> Referral:
    """The requester's changes (cancel, entered in error)."""
    referral = get_referral(session, access=access, referral_id=referral_id, audit=False)
    if not access.can_edit_plan:
        raise deny(session, access, action="update", object_type=REFERRAL, message="Not allowed.")
    return _move(
        session, referral, to=to, party=rules.REQUESTER, by=access.by, reason=reason, outcome=None
    )


def referral_for_link(session: Session, *, token: str, secret: str) -> Referral:
    """The referral a partner's link opens, or NotFound (audited) for a forged, unknown or
    expired link: the same answer for each, so a link reveals nothing."""
    digest = rules.verify_token(secret, token)
    referral = (
        session.scalar(select(Referral).where(Referral.token_hash == digest)) if digest else None
    )
    if referral is None or referral.token_expires_at is None:
        record(
            session,
            by=None,
            action="read",
            object_type="ReferralLink",
            outcome=Outcome.denied,
            organization_id=referral.organization_id if referral else None,
        )
        raise NotFound(Msg("This link is not valid or has expired. Ask the clinic for a new one."))
    if referral.token_expires_at < now():
        # A link Concord made (its HMAC holds) whose time is up: saying so tells the holder
        # nothing they did not know, and tells them what to do. Nothing of the referral is
        # shown; the team sees the attempt in the trail.
        record(
            session,
            by=None,
            action="read",
            object_type="ReferralLink",
            object_id=referral.id,
            patient_id=referral.patient_id,
            outcome=Outcome.denied,
            organization_id=referral.organization_id,
            detail={"reason": "expired"},
        )
        raise LinkExpired(
            Msg(
                "This referral link has expired. Links work for %(days)s days. Ask the clinic "
                "that sent it for a new link.",
                days=LINK_DAYS,
            )
        )
    return referral


def renew_link(
    session: Session, *, access: PatientAccess, referral_id: Any, secret: str
) -> tuple[Referral, str]:
    """A fresh link for the partner (the old one expired, or was lost): a new token with its
    own 30 days; the old link stops working at once, as only the new token's hash is kept.
    The team's, for a referral still open. Returns the referral and the new token (shown
    once)."""
    referral = get_referral(session, access=access, referral_id=referral_id, audit=False)
    if not access.can_edit_plan:
        raise deny(session, access, action="update", object_type=REFERRAL, message="Not allowed.")
    if referral.status not in rules.OPEN:
        raise Conflict(
            Msg(
                "A referral that is %(current)s is closed: it needs no new link.",
                current=referral.status,
            )
        )
    token, digest = rules.new_token(secret)
    referral.token_hash = digest
    referral.token_expires_at = now() + timedelta(days=LINK_DAYS)
    referral.updated_at = now()
    record(
        session,
        by=access.by,
        action="update",
        object_type=REFERRAL,
        object_id=referral.id,
        patient_id=referral.patient_id,
        detail={"link": "renewed"},
    )
    return referral, token


def link_expired(referral: Referral, at: datetime | None = None) -> bool:
    """Whether the partner's link has stopped working (for the team's page)."""
    expires = referral.token_expires_at
    return expires is None or expires < (at or now())


def read_by_partner(session: Session, *, token: str, secret: str) -> Referral:
    referral = referral_for_link(session, token=token, secret=secret)
    record(
        session,
        by=None,
        action="read",
        object_type=REFERRAL,
        object_id=referral.id,
        patient_id=referral.patient_id,
        organization_id=referral.organization_id,
        detail={"party": "partner"},
    )
    return referral


def partner_transition(
    session: Session,
    *,
    token: str,
    secret: str,
    to: str,
    reason: str | None = None,
    outcome: str | None = None,
) -> Referral:
    referral = referral_for_link(session, token=token, secret=secret)
    return _move(
        session, referral, to=to, party=rules.PARTNER, by=None, reason=reason, outcome=outcome
    )


PATIENT_REPORTS = ("got_help", "nobody_called")


def patient_report(
    session: Session, *, access: PatientAccess, referral_id: Any, report: str
) -> Referral:
    """The patient says "I got help" or "nobody called me"; the team sees it on the loop."""
    referral = get_referral(session, access=access, referral_id=referral_id, audit=False)
    if not access.is_self:
        raise deny(session, access, action="update", object_type=REFERRAL, message="Not allowed.")
    if report not in PATIENT_REPORTS:
        raise InvalidInput.field("report", Msg("must be got_help or nobody_called"))
    referral.patient_report = report
    referral.patient_report_at = now()
    referral.updated_at = now()
    _event(
        session,
        referral,
        by=access.by,
        party="patient",
        from_status=referral.status,
        to_status=referral.status,
        note=report,
    )
    record(
        session,
        by=access.by,
        action="update",
        object_type=REFERRAL,
        object_id=referral.id,
        patient_id=referral.patient_id,
        detail={"report": report},
    )
    return referral


def overdue_referrals(session: Session, *, at: datetime | None = None) -> list[Referral]:
    """Referrals still waiting for the partner's first answer after the clinic's set time
    (for the worker, which has no user: a system read)."""
    waiting = session.scalars(select(Referral).where(Referral.status == ReferralStatus.requested))
    result = []
    for referral in waiting:
        organization = session.get(Organization, referral.organization_id)
        if organization is not None and org_today(organization) > referral.respond_by:
            result.append(referral)
    return result
