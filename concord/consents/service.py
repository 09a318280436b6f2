"""Record, list and revoke a patient's consents.

Who may do what (deny by default; every read and change audited):
- The care team records a consent the patient gave on paper (signed and scanned) or, for a
  family member or carer only, verbally; the patient records one by signing in the portal
  (typed name; the date is the day it is signed). Nobody else records consents.
- The patient and the care team see all of the patient's consents. A family member or carer
  sees only the consents naming them. Anyone else gets the stranger's 404 (concord.access).
- The patient or the care team revokes a consent; it takes effect at once. A revoked consent
  is kept, with when, by whom and why.

Written consent for substance-use treatment records: 42 CFR Part 2 § 2.31 requires a written
consent (on paper or electronically signed), so a consent covering substance_use (or the whole
record) may not be verbal, and it names who may disclose (§ 2.31(a)(2)); see
docs/part2-sources.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.access import PatientAccess, deny, owned_by_id, parse_id, refuse_record
from concord.accounts.models import Clinic, User
from concord.audit.service import record as audit
from concord.clock import now
from concord.consents.forms import TEMPLATES
from concord.consents.models import (
    CATEGORIES,
    Consent,
    ConsentState,
    ConsentStatus,
    GranteeKind,
    Method,
    Provision,
    Purpose,
)
from concord.consents.schemas import ConsentIn
from concord.dates import org_today
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg

OBJECT = "Consent"


def active_consents(consents: Iterable[Consent], at: datetime) -> list[Consent]:
    """The consents in force at `at`: not revoked, not entered in error, within their period
    (the start day through the last day, inclusive)."""
    return [c for c in consents if c.state(at) == ConsentState.active]


def _visible(access: PatientAccess, consent: Consent) -> bool:
    if access.on_team or access.is_self:
        return True
    # A family member or carer sees only what names them.
    return consent.grantee_user_id is not None and consent.grantee_user_id == access.by.id


def list_consents(session: Session, *, access: PatientAccess) -> list[Consent]:
    """Every consent of the patient the asker may see, newest first (audited)."""
    rows = session.scalars(
        select(Consent)
        .where(Consent.patient_id == access.patient.id)
        .order_by(Consent.recorded_at.desc(), Consent.id)
    )
    shown = [c for c in rows if _visible(access, c)]
    audit(
        session,
        by=access.by,
        action="list",
        object_type=OBJECT,
        patient_id=access.patient.id,
        detail={"count": len(shown)},
    )
    return shown


def get_consent(
    session: Session, *, access: PatientAccess, consent_id: str | uuid.UUID, audited: bool = True
) -> Consent:
    cid = parse_id(consent_id)
    consent = session.get(Consent, cid) if cid is not None else None
    if consent is None or consent.patient_id != access.patient.id or not _visible(access, consent):
        raise NotFound(Msg("No such consent."))
    if audited:
        audit(
            session,
            by=access.by,
            action="read",
            object_type=OBJECT,
            object_id=consent.id,
            patient_id=access.patient.id,
        )
    return consent


def _check(
    session: Session, access: PatientAccess, data: ConsentIn, related_user_id: uuid.UUID | None
) -> dict[str, Msg]:
    errors: dict[str, Msg] = {}
    today = org_today(access.patient.clinic.organization)
    kind = data.grantee_kind
    if kind == GranteeKind.related_person and (data.grantee_id is None or related_user_id is None):
        errors["grantee_id"] = Msg("must name a family member or carer listed for this patient")
    if kind == GranteeKind.user:
        user = session.get(User, data.grantee_id) if data.grantee_id else None
        if user is None or user.organization_id != access.patient.organization_id:
            errors["grantee_id"] = Msg("must name a person with an account here")
    if kind == GranteeKind.organization:
        if data.grantee_id is not None:
            clinic = session.get(Clinic, data.grantee_id)
            if clinic is None or clinic.organization_id != access.patient.organization_id:
                errors["grantee_id"] = Msg("must name a clinic of this organization")
        elif not data.grantee_name:
            errors["grantee_name"] = Msg("is required: the organization's name")
    if data.scope not in ("all", "categories"):
        errors["scope"] = Msg("must be all or categories")
    elif data.scope == "categories":
        unknown = [c for c in data.categories if c not in CATEGORIES]
        if not data.categories:
            errors["categories"] = Msg("choose at least one kind of record")
        elif unknown:
            errors["categories"] = Msg("must be among: %(allowed)s", allowed=", ".join(CATEGORIES))
    allowed_purposes = [p.value for p in Purpose]
    if not data.purposes:
        errors["purposes"] = Msg("choose at least one purpose")
    elif any(p not in allowed_purposes for p in data.purposes):
        errors["purposes"] = Msg("must be among: %(allowed)s", allowed=", ".join(allowed_purposes))
    elif Purpose.other in data.purposes and not data.purpose_other:
        errors["purpose_other"] = Msg("is required when the purpose is other: name it")
    family = Purpose.family_sharing in data.purposes
    if family and kind != GranteeKind.related_person:
        errors["purposes"] = Msg("family sharing is only with a family member or carer")
    start = data.period_start or today
    if data.period_end is not None and data.period_end < start:
        errors["period_end"] = Msg("must be on or after the start")
    if family and (start > today or data.period_end is not None):
        # Family access is still read from the related person's columns (until the decision
        # function reads consents): a family consent starts now and lasts until withdrawn.
        errors["period_end"] = Msg("family sharing starts today and lasts until withdrawn")
    written = data.scope == "all" or "substance_use" in data.categories
    if access.is_self:
        if data.method != Method.portal_signature:
            errors["method"] = Msg("in the portal, a consent is signed with your typed name")
    elif data.method not in (Method.paper_scanned, Method.verbal):
        errors["method"] = Msg("must be paper_scanned or verbal")
    if data.method == Method.verbal and (kind != GranteeKind.related_person or written):
        errors["method"] = Msg(
            "verbal consent is only for family and carers, and never for substance-use "
            "records (42 CFR Part 2 needs written consent)"
        )
    if data.method in (Method.portal_signature, Method.paper_scanned) and not data.signed_name:
        errors["signed_name"] = Msg("is required: the name as signed")
    if data.method == Method.paper_scanned and data.signed_on is None:
        errors["signed_on"] = Msg("is required: the date on the signed form")
    if data.signed_on is not None and data.signed_on > today:
        errors["signed_on"] = Msg("cannot be in the future")
    if written and data.provision == Provision.permit and not data.discloser:
        errors["discloser"] = Msg(
            "is required for substance-use records: the program that may share them"
        )
    return errors


def record(
    session: Session,
    *,
    access: PatientAccess,
    data: ConsentIn,
    related_user_id: uuid.UUID | None = None,
) -> Consent:
    """Record a consent. `related_user_id`: for a family member or carer, their account, found
    by the caller among the patient's current family and carers (concord.actions.consents)."""
    if not (access.on_team or access.is_self):
        raise deny(
            session,
            access,
            action="consent_record",
            object_type=OBJECT,
            message="Only the patient or their care team can record a consent.",
        )
    errors = _check(session, access, data, related_user_id)
    if errors:
        raise InvalidInput(Msg("Some fields need attention."), errors=errors)
    today = org_today(access.patient.clinic.organization)
    portal = data.method == Method.portal_signature
    consent = Consent(
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        discloser=data.discloser,
        grantee_kind=data.grantee_kind,
        grantee_user_id=related_user_id
        if data.grantee_kind == GranteeKind.related_person
        else (data.grantee_id if data.grantee_kind == GranteeKind.user else None),
        grantee_related_person_id=data.grantee_id
        if data.grantee_kind == GranteeKind.related_person
        else None,
        grantee_clinic_id=data.grantee_id
        if data.grantee_kind == GranteeKind.organization
        else None,
        grantee_name=data.grantee_name,
        scope=data.scope,
        categories=[] if data.scope == "all" else list(dict.fromkeys(data.categories)),
        purposes=list(dict.fromkeys(data.purposes)),
        purpose_other=data.purpose_other if Purpose.other in data.purposes else None,
        provision=data.provision,
        period_start=data.period_start or today,
        period_end=data.period_end,
        method=data.method,
        signed_name=data.signed_name,
        signed_on=today if portal else data.signed_on,
        document_reference=data.document_reference,
        note=data.note,
        recorded_by_id=access.by.id,
        recorded_at=now(),
        status=ConsentStatus.active,
    )
    session.add(consent)
    session.flush()
    audit(
        session,
        by=access.by,
        action="consent_record",
        object_type=OBJECT,
        object_id=consent.id,
        patient_id=access.patient.id,
        detail={
            "grantee_kind": consent.grantee_kind,
            "provision": consent.provision,
            "method": consent.method,
            "categories": consent.categories or ["all"],
            "purposes": consent.purposes,
        },
    )
    return consent


def revoke(
    session: Session,
    *,
    access: PatientAccess,
    consent_id: str | uuid.UUID,
    reason: str | None = None,
) -> Consent:
    """Revoke a consent now. The patient or the care team; a revoked consent stays listed."""
    consent = get_consent(session, access=access, consent_id=consent_id, audited=False)
    if not (access.on_team or access.is_self):
        raise deny(
            session,
            access,
            action="consent_withdraw",
            object_type=OBJECT,
            object_id=consent.id,
            message="Only the patient or their care team can revoke a consent.",
        )
    if consent.status != ConsentStatus.active:
        raise Conflict(Msg("This consent was already revoked or marked as entered in error."))
    consent.status = ConsentStatus.revoked
    consent.revoked_at = now()
    consent.revoked_by_id = access.by.id
    consent.revoked_reason = (reason or "").strip()[:500] or None
    session.flush()
    audit(
        session,
        by=access.by,
        action="consent_withdraw",
        object_type=OBJECT,
        object_id=consent.id,
        patient_id=access.patient.id,
    )
    return consent


def get_form_export(session: Session, *, access: PatientAccess, template_id: str) -> str:
    """A blank consent form to print for the patient's wet signature: the team (or the patient)
    asks for one of the known templates; the print is audited. Answers the language to print in
    (the patient's own)."""
    if not (access.on_team or access.is_self):
        raise refuse_record(session, access, action="read", object_type=OBJECT)
    if template_id not in TEMPLATES:
        raise NotFound(Msg("No such consent form."))
    audit(
        session,
        by=access.by,
        action="read",
        object_type=OBJECT,
        object_id=template_id,
        patient_id=access.patient.id,
        detail={"form": template_id},
    )
    return access.patient.language or ""


def find_consent(session: Session, *, by: User, ident: str) -> tuple[Consent, PatientAccess]:
    """A consent by its id alone (FHIR read): the care team's or the patient's own; NotFound,
    audited, for a missing one and one outside the scope alike. The read is in the trail."""
    return owned_by_id(session, by, Consent, ident, object_type=OBJECT)
