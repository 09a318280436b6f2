"""Recording and revoking a consent, with family access kept in step.

A family member's or carer's access is still read from the RelatedPerson columns (their one
writer is concord.patients.service). So a consent to share the care plan with them, a refusal
to, or the revocation of one, also records or withdraws the family consent there, in the same
transaction: the list the patient reads and what the family member can open never disagree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.access import PatientAccess, deny, refuse_record
from concord.accounts.models import Clinic
from concord.consents import family
from concord.consents import service as consents
from concord.consents.models import Consent, GranteeKind, Method, Provision, Purpose
from concord.consents.portal import TEMPLATES, PortalTemplate, signature_matches
from concord.consents.schemas import ConsentIn, SignedConsentIn
from concord.dates import org_today
from concord.errors import InvalidInput
from concord.i18n import Msg
from concord.part2 import labels
from concord.patients import service as patients
from concord.patients.models import RelatedPerson


def _covers_plan(consent: Consent) -> bool:
    return consent.scope == "all" or "care_plan" in (consent.categories or [])


def record(session: Session, *, access: PatientAccess, data: ConsentIn) -> Consent:
    related_user_id = None
    link = None
    if data.grantee_kind == GranteeKind.related_person and data.grantee_id is not None:
        link = session.get(RelatedPerson, data.grantee_id)
        if link is not None and link.patient_id == access.patient.id and link.ended_at is None:
            related_user_id = link.user_id
        else:
            link = None
    consent = consents.record(session, access=access, data=data, related_user_id=related_user_id)
    if link is not None:
        if consent.is_family_sharing and _covers_plan(consent):
            patients.set_related_person_consent(
                session,
                access=access,
                related_id=link.id,
                consented=True,
                note=data.note,
                # The patient's own signature in the portal is the written consent itself.
                signed_by_patient=access.is_self and consent.method == Method.portal_signature,
            )
        elif (
            consent.provision == Provision.deny
            and Purpose.family_sharing in consent.purposes
            and _covers_plan(consent)
            and link.has_consent
        ):
            # Deny overrides permit: the family member loses access at once.
            patients.set_related_person_consent(
                session, access=access, related_id=link.id, consented=False
            )
    return consent


def revoke(
    session: Session, *, access: PatientAccess, consent_id: str | uuid.UUID, reason: str | None
) -> Consent:
    consent = consents.revoke(session, access=access, consent_id=consent_id, reason=reason)
    if consent.is_family_sharing and consent.grantee_related_person_id is not None:
        link = session.get(RelatedPerson, consent.grantee_related_person_id)
        still = family.active_family_consents(session, consent.grantee_related_person_id)
        if link is not None and link.has_consent and not still:
            patients.set_related_person_consent(
                session, access=access, related_id=link.id, consented=False
            )
    return consent


# --- the patient's own consent, signed in the portal ("Share my record") ----------------------


@dataclass(frozen=True)
class Choice:
    """Someone the patient may name in a template: a clinician on their team outside the
    program, or a family member or carer listed for them."""

    id: uuid.UUID
    name: str
    detail: str  # the clinic, or the relationship


@dataclass(frozen=True)
class SharingForm:
    """What the portal shows for one template: the filled-in elements and the choices."""

    template: PortalTemplate
    patient_name: str
    discloser: str  # § 2.31(a)(2): the program(s) whose records these are
    program: str  # the same, for the description of what is shared
    choices: list[Choice]
    today: date
    default_end: date | None


def _programs(session: Session, access: PatientAccess) -> list[Clinic]:
    ctx = labels.context(session, access.patient.organization_id, [access.patient.id])
    ids = sorted(ctx.patient_programs.get(access.patient.id, frozenset()))
    if not ids:
        return []
    return list(session.scalars(select(Clinic).where(Clinic.id.in_(ids)).order_by(Clinic.name)))


def _choices(
    session: Session, access: PatientAccess, template: PortalTemplate, programs: list[Clinic]
) -> list[Choice]:
    if template.grantee_kind == GranteeKind.user:
        inside = {c.id for c in programs}
        clinics = {c.id: c.name for c in session.scalars(select(Clinic))}
        members = patients.members_of_patient(session, patient_id=access.patient.id)
        return [
            Choice(m.user.id, m.user.name, clinics.get(m.user.clinic_id, ""))
            for m in members
            if m.user.active and m.user.is_clinician and m.user.clinic_id not in inside
        ]
    if template.grantee_kind == GranteeKind.related_person:
        return [
            Choice(r.id, r.user.name, r.relationship_to_patient)
            for r in patients.list_related_persons(session, access=access)
        ]
    return []


def sharing_form(session: Session, *, access: PatientAccess, template_id: str) -> SharingForm:
    """The template as this patient will sign it. Only the patient signs in the portal."""
    if not access.is_self:
        raise deny(
            session,
            access,
            action="consent_record",
            object_type="Consent",
            message="Only the patient signs a consent in the portal.",
        )
    template = TEMPLATES.get(template_id)
    if template is None:
        raise InvalidInput.field("template", Msg("choose one of the kinds of sharing offered"))
    programs = _programs(session, access)
    names = [c.name for c in programs] or [access.patient.clinic.name]
    today = org_today(access.patient.clinic.organization)
    return SharingForm(
        template=template,
        patient_name=access.patient.full_name,
        discloser=", ".join(names),
        program=", ".join(names),
        choices=_choices(session, access, template, programs),
        today=today,
        default_end=today + timedelta(days=365) if template.ends else None,
    )


def sharing_forms(session: Session, *, access: PatientAccess) -> list[SharingForm]:
    """Every template as this patient would sign it (the JSON API's list): the patient only;
    anyone else gets the stranger's answer, audited."""
    if not access.is_self:
        raise refuse_record(session, access, object_type="Consent")
    return [sharing_form(session, access=access, template_id=t) for t in TEMPLATES]


def sign(session: Session, *, access: PatientAccess, data: SignedConsentIn) -> Consent:
    """The patient signs one of the portal's templates: checked (the typed name is the
    patient's, the date is today, the person chosen is one offered), then recorded as any
    consent is, by `record` (audited there). Errors name the field; nothing is written."""
    form = sharing_form(session, access=access, template_id=data.template)
    template = form.template
    errors: dict[str, Msg] = {}
    if not signature_matches(data.signed_name, form.patient_name):
        errors["signed_name"] = Msg(
            "type your full name as your care team has it: %(name)s", name=form.patient_name
        )
    if data.signed_on != form.today:
        errors["signed_on"] = Msg("must be today's date: %(day)s", day=form.today.isoformat())
    if template.recipient is None and data.grantee_id not in {c.id for c in form.choices}:
        errors["grantee_id"] = Msg("choose one of the people offered")
    if template.ends:
        if data.period_end is None:
            errors["period_end"] = Msg("is required: the last day this consent covers")
        elif data.period_end < form.today:
            errors["period_end"] = Msg("must be today or later")
    if errors:
        raise InvalidInput(Msg("Some fields need attention."), errors=errors)
    return record(
        session,
        access=access,
        data=ConsentIn(
            grantee_kind=template.grantee_kind,
            grantee_id=data.grantee_id if template.recipient is None else None,
            discloser=form.discloser if template.part2 else None,
            scope="categories",
            categories=list(template.categories),
            purposes=list(template.purposes),
            provision=Provision.permit,
            period_end=data.period_end if template.ends else None,
            method=Method.portal_signature,
            signed_name=data.signed_name,
            signed_on=form.today,
            note=None,
        ),
    )
