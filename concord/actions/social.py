"""Social needs across domains: a screen arrives (measures -> social concerns, and the safety
rule for an interpersonal-safety need), a referral is sent with the patient's consent to share
(consents -> social), the loop is watched (social -> registry tasks for the care manager).
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.careplans import service as plans
from concord.careplans.models import GoalCategory
from concord.careplans.schemas import BarrierIn, GoalProposal
from concord.categories import DataCategory
from concord.clock import now
from concord.consents import service as consents
from concord.consents.models import ConsentState, GranteeKind, Method, Provision
from concord.consents.schemas import ConsentIn
from concord.dates import org_today
from concord.errors import InvalidInput
from concord.i18n import Msg
from concord.measures.library import Instrument
from concord.measures.scoring import Scored
from concord.registry.models import WorkTask
from concord.registry.tasks import care_manager_of, open_task
from concord.social import service as social
from concord.social.models import Referral, ReferralStatus
from concord.social.schemas import ConcernToPlanIn, ReferralIn

SAFETY_TASK = "social-safety"
OVERDUE_TASK = "referral-overdue"
NOBODY_TASK = "referral-nobody-called"


def screening_arrived(
    session: Session,
    *,
    access: PatientAccess,
    response: Any,
    instrument: Instrument,
    scored: Scored,
) -> None:
    """A social-needs screen was completed: its positive domains become concerns for the
    patient to confirm, reword or decline. An interpersonal-safety need goes to the care
    manager at once as an urgent task (talk with the patient in private; never to a community
    organization without the patient's say)."""
    if instrument.category != DataCategory.social_needs:
        return
    created, _resolved = social.concerns_from_screening(
        session, access=access, response=response, instrument=instrument, scored=scored
    )
    for concern in created:
        if concern.sensitive:
            open_task(
                session,
                organization_id=access.patient.organization_id,
                patient_id=access.patient.id,
                owner_id=care_manager_of(session, access.patient.id),
                title="Safety screen positive: talk with the patient in private",
                source=f"{SAFETY_TASK}:{concern.id}",
                due_on=org_today(access.patient.clinic.organization),
                priority="urgent",
                by=access.by,
            )


def _check_consent(
    session: Session, access: PatientAccess, consent_id: Any, provider: str
) -> uuid.UUID:
    consent = consents.get_consent(session, access=access, consent_id=consent_id)
    ok = (
        consent.state(now()) == ConsentState.active
        and consent.provision == Provision.permit
        and consent.grantee_kind == GranteeKind.organization
        and (consent.grantee_name or "").strip().lower() == provider.strip().lower()
        and (consent.scope == "all" or "social_needs" in (consent.categories or []))
    )
    if not ok:
        raise InvalidInput.field(
            "consent_id",
            Msg(
                "must be the patient's consent, in effect, to share their social needs with "
                "%(provider)s",
                provider=provider,
            ),
        )
    return consent.id


def send_referral(
    session: Session,
    *,
    access: PatientAccess,
    service_id: Any,
    concern_id: Any | None,
    shared_summary: str,
    contact: str | None,
    consent_id: Any | None = None,
    consent: ConsentIn | None = None,
    share_safety_need: bool = False,
    respond_days: int = social.DEFAULT_RESPOND_DAYS,
    replaces_id: Any | None = None,
    self_referral: bool = False,
    secret: str,
) -> tuple[Referral, str]:
    """A referral from the plan (or the patient's own, from the directory) to a service, with
    the patient's consent to share what it says: an existing consent, or one recorded now
    (consents.record: the patient's signature in the portal, or the signed paper form)."""
    service = social.get_service(session, by=access.by, service_id=service_id)
    concern = (
        social.get_concern(session, access=access, concern_id=concern_id, audit=False)
        if concern_id
        else None
    )
    if concern is not None and concern.sensitive and not share_safety_need:
        raise InvalidInput.field(
            "share_safety_need",
            Msg(
                "a safety need is shared with a community organization only when the patient "
                "says so for this referral"
            ),
        )
    if consent is not None:
        data = consent.model_copy(
            update={
                "grantee_kind": GranteeKind.organization,
                "grantee_id": None,
                "grantee_name": service.provider_name,
                "scope": "categories",
                "categories": ["social_needs"],
                "purposes": ["treatment"],
            }
        )
        consent_id = consents.record(session, access=access, data=data).id
    if consent_id is None:
        raise InvalidInput.field(
            "consent_id", Msg("is required: the patient's consent to share with the service")
        )
    checked = _check_consent(session, access, consent_id, service.provider_name)
    replaces = (
        social.get_referral(session, access=access, referral_id=replaces_id, audit=False)
        if replaces_id
        else None
    )
    domain = concern.domain if concern else (service.categories or ["sdoh-category-unspecified"])[0]
    return social.create_referral(
        session,
        access=access,
        new=social.NewReferral(
            service=service,
            domain=domain,
            shared_summary=shared_summary,
            contact=contact,
            concern=concern,
            consent_id=checked,
            self_referral=self_referral,
            respond_days=respond_days,
            replaces=replaces,
        ),
        secret=secret,
    )


def patient_report(
    session: Session, *, access: PatientAccess, referral_id: Any, report: str
) -> Referral:
    """ "I got help" closes nothing by itself (the partner closes the Task) but the team sees
    it; "nobody called me" on an open referral is a task for the care manager."""
    referral = social.patient_report(session, access=access, referral_id=referral_id, report=report)
    if report == "nobody_called" and referral.status in (
        ReferralStatus.requested,
        ReferralStatus.accepted,
    ):
        open_task(
            session,
            organization_id=referral.organization_id,
            patient_id=referral.patient_id,
            owner_id=care_manager_of(session, referral.patient_id),
            title="Patient says nobody called about a referral",
            source=f"{NOBODY_TASK}:{referral.id}",
            due_on=org_today(access.patient.clinic.organization) + timedelta(days=1),
            priority="routine",
            by=access.by,
        )
    return referral


def overdue_tasks(session: Session) -> int:
    """The worker's job: a referral with no answer from the partner by the clinic's set time
    is a task for the care manager (one per referral, never a second)."""
    opened = 0
    for referral in social.overdue_referrals(session):
        source = f"{OVERDUE_TASK}:{referral.id}"
        if session.scalar(select(WorkTask.id).where(WorkTask.source == source)) is not None:
            continue  # one task per referral: a closed one is not opened again
        open_task(
            session,
            organization_id=referral.organization_id,
            patient_id=referral.patient_id,
            owner_id=care_manager_of(session, referral.patient_id),
            title="Referral not answered: follow up with the service",
            source=source,
            due_on=referral.respond_by + timedelta(days=1),
            priority="routine",
            by=None,
        )
        opened += 1
    return opened


def send_referral_in(
    session: Session, *, access: PatientAccess, data: ReferralIn, secret: str
) -> tuple[Referral, str]:
    """A referral as a page or the API sends it: the consent given with it is the patient's
    signature in the portal, or the signed paper form the team holds."""
    consent = None
    if data.consent_id is None and data.signed_name:
        signed_on = None
        if data.signed_on:
            try:
                signed_on = date.fromisoformat(data.signed_on)
            except ValueError:
                raise InvalidInput.field("signed_on", Msg("must be a date (YYYY-MM-DD)")) from None
        consent = ConsentIn(
            grantee_kind=GranteeKind.organization,
            grantee_name="(the service)",
            categories=["social_needs"],
            purposes=["treatment"],
            method=Method.portal_signature if access.is_self else Method.paper_scanned,
            signed_name=data.signed_name,
            signed_on=signed_on,
        )
    return send_referral(
        session,
        access=access,
        service_id=data.service_id,
        concern_id=data.concern_id,
        shared_summary=data.shared_summary,
        contact=data.contact,
        consent_id=data.consent_id,
        consent=consent,
        share_safety_need=data.share_safety_need,
        respond_days=data.respond_days or social.DEFAULT_RESPOND_DAYS,
        replaces_id=data.replaces_id,
        self_referral=access.is_self,
        secret=secret,
    )


BARRIER_KINDS = {
    "transportation-insecurity": "transport",
    "housing-instability": "housing",
    "homelessness": "housing",
    "inadequate-housing": "housing",
    "utility-insecurity": "money",
}


def concern_to_plan(
    session: Session, *, access: PatientAccess, concern_id: Any, data: ConcernToPlanIn
) -> dict[str, Any]:
    """A confirmed social need onto the care plan: a goal in the patient's own words (a
    proposal the team agrees, as any goal the patient proposes), and a barrier with its way
    around. A need the patient declined stays off the plan."""
    concern = social.get_concern(session, access=access, concern_id=concern_id, audit=False)
    if concern.status not in ("proposed", "confirmed"):
        raise InvalidInput.field("concern_id", Msg("the patient declined or closed this need"))
    made: dict[str, Any] = {}
    statement = data.goal or concern.patient_words
    if statement:
        made["goal"] = plans.propose_goal(
            session,
            access=access,
            data=GoalProposal(statement=statement, category=GoalCategory.housing_and_social_needs),
            social_concern_id=concern.id,
        )
    if data.barrier:
        made["barrier"] = plans.add_item(
            session,
            access=access,
            section="barriers",
            data=BarrierIn(
                kind=BARRIER_KINDS.get(concern.domain, "other"),
                description=data.barrier,
                way_around=data.way_around,
            ),
        )
    if not made:
        raise InvalidInput.field("goal", Msg("give a goal in the patient's words, or a barrier"))
    if concern.status == "proposed":
        social.decide_concern(
            session, access=access, concern_id=concern.id, decision="confirm", words=statement
        )
    return made
