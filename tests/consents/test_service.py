"""Consents: recording, listing, revoking, expiry, who may do what, and family sharing kept
in step with the related person's access."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from concord import access
from concord.actions import consents as consent_actions
from concord.audit.models import AuditEvent
from concord.consents import service as cs
from concord.consents.models import Consent, ConsentState, ConsentStatus
from concord.consents.schemas import ConsentIn
from concord.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from concord.patients import service as patients
from concord.patients.models import RelatedPerson
from tests.conftest import NOW, commit
from tests.factories import acc_for

TODAY = NOW.date()


def sud_consent(**over) -> ConsentIn:
    data = {
        "grantee_kind": "organization",
        "grantee_name": "Dr Ana Ruiz, Riverside Primary Care",
        "discloser": "The Addiction Service",
        "scope": "categories",
        "categories": ["substance_use"],
        "purposes": ["treatment"],
        "period_end": date(2027, 6, 1),
        "method": "paper_scanned",
        "signed_name": "Pat Ient",
        "signed_on": TODAY,
        "document_reference": "scan-0001",
    }
    data.update(over)
    return ConsentIn.model_validate(data)


def test_the_team_records_a_written_part2_consent_and_it_is_audited(session, people):
    cm = acc_for(session, people.care_manager, people.patient)
    consent = cs.record(session, access=cm, data=sud_consent())
    assert consent.state(NOW) == ConsentState.active
    assert consent.is_part2
    assert consent.recorded_by_id == people.care_manager.id
    commit(session)
    events = session.scalars(
        select(AuditEvent).where(
            AuditEvent.object_type == "Consent", AuditEvent.action == "consent_record"
        )
    ).all()
    assert [e.object_id for e in events] == [str(consent.id)]


def test_a_part2_consent_is_never_verbal_and_names_who_may_disclose(session, people):
    cm = acc_for(session, people.care_manager, people.patient)
    with pytest.raises(InvalidInput) as exc:
        cs.record(session, access=cm, data=sud_consent(method="verbal", discloser=None))
    assert set(exc.value.errors) >= {"method", "discloser"}


def test_bad_fields_are_named(session, people):
    cm = acc_for(session, people.care_manager, people.patient)
    with pytest.raises(InvalidInput) as exc:
        cs.record(
            session,
            access=cm,
            data=sud_consent(
                categories=["nonsense"],
                purposes=["other"],
                period_start=date(2027, 7, 1),
                signed_on=None,
            ),
        )
    assert set(exc.value.errors) == {"categories", "purpose_other", "period_end", "signed_on"}
    assert session.scalars(select(Consent).where(Consent.discloser.is_not(None))).all() == []


def test_expiry_is_read_from_the_period(session, people, clock):
    cm = acc_for(session, people.care_manager, people.patient)
    consent = cs.record(session, access=cm, data=sud_consent(period_end=TODAY + timedelta(days=1)))
    assert cs.active_consents([consent], NOW) == [consent]
    assert cs.active_consents([consent], NOW + timedelta(days=1)) == [consent]  # the last day
    assert cs.active_consents([consent], NOW + timedelta(days=2)) == []
    assert consent.state(NOW + timedelta(days=2)) == ConsentState.expired
    later = cs.record(session, access=cm, data=sud_consent(period_start=TODAY + timedelta(days=5)))
    assert later.state(NOW) == ConsentState.not_started
    assert cs.active_consents([consent, later], NOW) == [consent]


def test_the_patient_revokes_at_once_and_the_consent_stays_listed(session, people):
    cm = acc_for(session, people.care_manager, people.patient)
    me = acc_for(session, people.patient_user, people.patient)
    consent = cs.record(session, access=cm, data=sud_consent())
    cs.revoke(session, access=me, consent_id=consent.id, reason="Changed my mind")
    assert consent.status == ConsentStatus.revoked
    assert consent.revoked_by_id == people.patient_user.id
    assert consent.revoked_reason == "Changed my mind"
    assert cs.active_consents([consent], NOW) == []
    assert consent in cs.list_consents(session, access=me)
    with pytest.raises(Conflict):
        cs.revoke(session, access=cm, consent_id=consent.id)


def test_the_patient_signs_in_the_portal_only_with_a_typed_name(session, people):
    me = acc_for(session, people.patient_user, people.patient)
    with pytest.raises(InvalidInput) as exc:
        cs.record(session, access=me, data=sud_consent())  # paper: the team's to record
    assert "method" in exc.value.errors
    signed = cs.record(
        session,
        access=me,
        data=sud_consent(method="portal_signature", signed_on=None, document_reference=None),
    )
    assert signed.signed_on == TODAY and signed.signed_name == "Pat Ient"


def test_family_sees_only_their_own_consents_and_cannot_record_or_revoke(session, people):
    cm = acc_for(session, people.care_manager, people.patient)
    fam = acc_for(session, people.family, people.patient)
    other = cs.record(session, access=cm, data=sud_consent())
    mine = [c for c in cs.list_consents(session, access=fam)]
    assert mine and all(c.grantee_user_id == people.family.id for c in mine)
    assert other not in mine
    with pytest.raises(NotFound):
        cs.get_consent(session, access=fam, consent_id=other.id)
    with pytest.raises(PermissionDenied):
        cs.record(session, access=fam, data=sud_consent())
    with pytest.raises(PermissionDenied):
        cs.revoke(session, access=fam, consent_id=mine[0].id)


def test_someone_off_the_team_reaches_no_consent(session, people):
    with pytest.raises(NotFound):
        access.patient_for(session, people.outsider, people.patient.id)
    with pytest.raises(NotFound):
        access.patient_for(session, people.other_patient_user, people.patient.id)


# --- family sharing: the related person's columns and the consent rows in step ---------------


def _link(session, user):
    return session.scalar(select(RelatedPerson).where(RelatedPerson.user_id == user.id))


def test_family_sharing_recorded_as_today_is_a_consent_record(session, people):
    link = _link(session, people.family)
    rows = session.scalars(
        select(Consent).where(Consent.grantee_related_person_id == link.id)
    ).all()
    assert len(rows) == 1 and rows[0].is_family_sharing
    assert rows[0].categories == ["care_plan"] and rows[0].purposes == ["family_sharing"]
    assert rows[0].method == "recorded_by_team"
    assert rows[0].recorded_by_id == people.care_manager.id
    none = _link(session, people.family_no_consent)
    assert (
        session.scalars(select(Consent).where(Consent.grantee_related_person_id == none.id)).all()
        == []
    )


def test_withdrawing_family_sharing_revokes_the_consent(session, people):
    me = acc_for(session, people.patient_user, people.patient)
    link = _link(session, people.family)
    patients.set_related_person_consent(session, access=me, related_id=link.id, consented=False)
    row = session.scalar(select(Consent).where(Consent.grantee_related_person_id == link.id))
    assert row.status == ConsentStatus.revoked and row.revoked_by_id == people.patient_user.id


def test_revoking_the_family_consent_ends_the_family_members_access(session, people):
    me = acc_for(session, people.patient_user, people.patient)
    link = _link(session, people.family)
    row = session.scalar(select(Consent).where(Consent.grantee_related_person_id == link.id))
    access.patient_for(session, people.family, people.patient.id)  # they can, before
    consent_actions.revoke(session, access=me, consent_id=row.id, reason=None)
    session.refresh(link)
    assert link.consent_withdrawn_at is not None and not link.has_consent
    with pytest.raises(NotFound):
        access.patient_for(session, people.family, people.patient.id)


def test_recording_family_sharing_as_a_consent_opens_access(session, people):
    cm = acc_for(session, people.care_manager, people.patient)
    link = _link(session, people.family_no_consent)
    with pytest.raises(NotFound):
        access.patient_for(session, people.family_no_consent, people.patient.id)
    consent = consent_actions.record(
        session,
        access=cm,
        data=ConsentIn.model_validate(
            {
                "grantee_kind": "related_person",
                "grantee_id": str(link.id),
                "categories": ["care_plan"],
                "purposes": ["family_sharing"],
                "method": "verbal",
            }
        ),
    )
    access.patient_for(session, people.family_no_consent, people.patient.id)
    rows = session.scalars(
        select(Consent).where(
            Consent.grantee_related_person_id == link.id, Consent.status == "active"
        )
    ).all()
    assert rows == [consent]  # the columns' writer did not add a second


def test_a_deny_overrides_family_sharing_at_once(session, people):
    cm = acc_for(session, people.care_manager, people.patient)
    link = _link(session, people.family)
    consent_actions.record(
        session,
        access=cm,
        data=ConsentIn.model_validate(
            {
                "grantee_kind": "related_person",
                "grantee_id": str(link.id),
                "categories": ["care_plan"],
                "purposes": ["family_sharing"],
                "provision": "deny",
                "method": "verbal",
            }
        ),
    )
    with pytest.raises(NotFound):
        access.patient_for(session, people.family, people.patient.id)


def test_a_family_consent_names_a_current_family_member_of_this_patient(session, people):
    cm = acc_for(session, people.outsider, people.other_patient)
    link = _link(session, people.family)  # the first patient's sister
    with pytest.raises(InvalidInput) as exc:
        consent_actions.record(
            session,
            access=cm,
            data=ConsentIn.model_validate(
                {
                    "grantee_kind": "related_person",
                    "grantee_id": str(link.id),
                    "categories": ["care_plan"],
                    "purposes": ["family_sharing"],
                    "method": "verbal",
                }
            ),
        )
    assert "grantee_id" in exc.value.errors
