"""Sharing the safety plan, and marking notifications read, through /api/v1: the pages'
schema, service and rule; a denied caller writes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from concord.audit.models import AuditEvent
from concord.patients.models import RelatedPerson
from concord.safety import plans as safety_plans
from concord.safety.models import Notification, SafetyPlanShare
from tests.careplans.test_api import bearer
from tests.conftest import NOW, commit
from tests.factories import acc_for


def _count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def _denied(session, user):
    return _count(
        session, AuditEvent, AuditEvent.actor_id == user.id, AuditEvent.outcome == "denied"
    )


def _sister(session, people):
    return session.scalar(select(RelatedPerson).where(RelatedPerson.user_id == people.family.id))


def test_the_patient_shares_the_plan_and_stops(client, session, people):
    safety_plans.save(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        content={"warning_signs": ["Not sleeping"]},
        reason="First plan",
        base_version=0,
    )
    commit(session)
    pid = people.patient.id
    rid = _sister(session, people).id
    me = bearer(session, people.patient_user)
    shared = client.post(
        f"/api/v1/patients/{pid}/safety-plan/people/{rid}", json={"share": True}, headers=me
    )
    assert shared.status_code == 200, shared.text
    cm = bearer(session, people.care_manager)
    listed = client.get(f"/api/v1/patients/{pid}/safety-plan/people", headers=cm).json()
    assert next(p for p in listed if p["related_person_id"] == str(rid))["shared"] is True
    # Sharing again is not a second share.
    client.post(
        f"/api/v1/patients/{pid}/safety-plan/people/{rid}", json={"share": True}, headers=me
    )
    active = (SafetyPlanShare.related_person_id == rid, SafetyPlanShare.withdrawn_at.is_(None))
    assert _count(session, SafetyPlanShare, *active) == 1
    stopped = client.post(
        f"/api/v1/patients/{pid}/safety-plan/people/{rid}", json={"share": False}, headers=cm
    )
    assert stopped.status_code == 200
    assert _count(session, SafetyPlanShare, *active) == 0


def test_only_the_patient_and_the_team_share_it(client, session, people):
    pid = people.patient.id
    rid = _sister(session, people).id
    for user, codes in (
        (people.outsider, {404}),
        (people.other_patient_user, {404}),
        (people.family, {404}),
    ):
        denials = _denied(session, user)
        refused = client.post(
            f"/api/v1/patients/{pid}/safety-plan/people/{rid}",
            json={"share": True},
            headers=bearer(session, user),
        )
        assert refused.status_code in codes, refused.text
        assert _denied(session, user) > denials
    assert _count(session, SafetyPlanShare) == 0


def test_notifications_are_marked_read(client, session, people):
    from concord.safety.alerts import raise_manual_flag

    raise_manual_flag(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        tier="high",
        reason="Worried",
    )
    commit(session)
    notified = {n.user_id for n in session.scalars(select(Notification))}
    assert notified, "the flag notifies someone"
    user = next(
        u for u in (people.care_manager, people.consultant, people.therapist) if u.id in notified
    )
    for someone in (people.care_manager, people.consultant, people.therapist):
        if someone.id != user.id:
            session.add(Notification(user_id=someone.id, kind="new", created_at=NOW))
    commit(session)
    mine = (Notification.user_id == user.id, Notification.read_at.is_(None))
    other = (Notification.user_id != user.id, Notification.read_at.is_(None))
    theirs = _count(session, Notification, *other)
    assert _count(session, Notification, *mine) > 0 and theirs > 0
    done = client.post("/api/v1/alerts/notifications/read", headers=bearer(session, user))
    assert done.status_code == 204
    assert _count(session, Notification, *mine) == 0
    assert _count(session, Notification, *other) == theirs
