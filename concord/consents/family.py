"""Family and carer sharing as Consent records, kept in step with the RelatedPerson columns.

Before consents were records of their own, a family member's access was four columns on
RelatedPerson (consent_recorded_at/by, consent_note, consent_withdrawn_at), which the access
layer still reads. concord.patients.service is their one writer; after each write it calls
`sync` here, so the two never disagree: a recorded consent has exactly one active permit
Consent (grantee the related person, category care_plan, purpose family_sharing), and a
withdrawn one has none. Migration 0009 made the same rows for what was recorded before.

`link` is a RelatedPerson, passed in (this module does not import concord.patients).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.accounts.models import Organization
from concord.clock import now
from concord.consents.models import (
    Consent,
    ConsentStatus,
    GranteeKind,
    Method,
    Provision,
    Purpose,
)
from concord.dates import local_date

WITHDRAWN = "Withdrawn"


def family_consent(
    link: Any,
    organization_id: uuid.UUID,
    recorded_at: datetime,
    recorded_by_id: Any,
    *,
    where: Any = None,
) -> Consent:
    """The Consent the family-sharing columns stand for."""
    return Consent(
        organization_id=organization_id,
        patient_id=link.patient_id,
        grantee_kind=GranteeKind.related_person,
        grantee_related_person_id=link.id,
        grantee_user_id=link.user_id,
        scope="categories",
        categories=["care_plan"],
        purposes=[Purpose.family_sharing.value],
        provision=Provision.permit,
        period_start=local_date(recorded_at, where),  # the organization's day (ADR 0018)
        method=Method.recorded_by_team,
        note=link.consent_note,
        recorded_by_id=recorded_by_id,
        recorded_at=recorded_at,
        status=ConsentStatus.active,
    )


def active_family_consents(session: Session, related_id: uuid.UUID) -> list[Consent]:
    rows = session.scalars(
        select(Consent).where(
            Consent.grantee_related_person_id == related_id,
            Consent.status == ConsentStatus.active,
        )
    )
    return [c for c in rows if c.is_family_sharing]


def sync(
    session: Session,
    link: Any,
    *,
    organization_id: uuid.UUID,
    by_id: uuid.UUID | None,
    reason: str | None = None,
) -> None:
    """Make the Consent rows say what `link`'s columns say (call after writing them)."""
    session.flush()  # the link has its id
    current = active_family_consents(session, link.id)
    shared = (
        link.consent_recorded_at is not None
        and link.consent_withdrawn_at is None
        and link.ended_at is None
    )
    if shared and not current:
        session.add(
            family_consent(
                link,
                organization_id,
                link.consent_recorded_at,
                link.consent_recorded_by_id,
                where=session.get(Organization, organization_id),
            )
        )
    elif not shared:
        for consent in current:
            consent.status = ConsentStatus.revoked
            consent.revoked_at = link.consent_withdrawn_at or now()
            consent.revoked_by_id = by_id
            consent.revoked_reason = reason or WITHDRAWN
    session.flush()
