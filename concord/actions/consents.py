"""Recording and revoking a consent, with family access kept in step.

A family member's or carer's access is still read from the RelatedPerson columns (their one
writer is concord.patients.service). So a consent to share the care plan with them, a refusal
to, or the revocation of one, also records or withdraws the family consent there, in the same
transaction: the list the patient reads and what the family member can open never disagree.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.consents import family
from concord.consents import service as consents
from concord.consents.models import Consent, GranteeKind, Provision, Purpose
from concord.consents.schemas import ConsentIn
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
                session, access=access, related_id=link.id, consented=True, note=data.note
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
