"""Episodes of care and contacts: enrolment, status changes, minutes, and who may do what."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from concord.errors import Conflict, InvalidInput, NotFound
from concord.registry import service as reg
from concord.registry.models import Episode, EpisodeChange
from tests.conftest import commit
from tests.factories import acc_for
from tests.registry.conftest import TODAY, contact, days_ago, enroll

CM = "cara@test.example.org"


class TestEpisodes:
    def test_enrolment_defaults_to_the_teams_care_manager_and_consultant(self, session, people):
        episode = enroll(session, people, started_on=days_ago(3))
        assert (episode.care_manager_id, episode.consultant_id) == (
            people.care_manager.id,
            people.consultant.id,
        )
        assert (episode.status, episode.started_on, episode.ended_on) == (
            "awaiting_first_contact",
            days_ago(3),
            None,
        )

    def test_one_open_episode_at_a_time_and_a_new_one_after(self, session, people):
        episode = enroll(session, people)
        with pytest.raises(Conflict):
            enroll(session, people)
        session.rollback()
        reg.change_status(
            session,
            access=acc_for(session, people.care_manager, people.patient),
            episode_id=episode.id,
            status="completed",
            reason="Goals met",
            version=episode.version,
        )
        commit(session)
        second = enroll(session, people, program="anxiety")
        assert second.id != episode.id
        assert len(session.scalars(select(Episode)).all()) == 2
        with pytest.raises(Conflict):  # an ended episode is never reopened
            reg.change_status(
                session,
                access=acc_for(session, people.care_manager, people.patient),
                episode_id=episode.id,
                status="active",
                reason=None,
                version=None,
            )

    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"program": "gardening"}, "program"),
            ({"program": "depression", "started_on": TODAY.replace(day=23)}, "started_on"),
            ({"program": "depression", "care_manager_id": str(uuid.uuid4())}, "care_manager_id"),
        ],
    )
    def test_bad_enrolment_is_named_and_writes_nothing(self, session, people, data, field):
        with pytest.raises(InvalidInput) as caught:
            reg.enroll(
                session,
                access=acc_for(session, people.care_manager, people.patient),
                data=reg.Enrolment(**data),
            )
        assert field in caught.value.errors
        session.rollback()
        assert session.scalars(select(Episode)).all() == []

    def test_ending_needs_a_reason_and_a_known_next_status(self, session, people):
        episode = enroll(session, people)
        acc = acc_for(session, people.care_manager, people.patient)
        with pytest.raises(InvalidInput) as caught:
            reg.change_status(
                session,
                access=acc,
                episode_id=episode.id,
                status="disengaged",
                reason="",
                version=None,
            )
        assert "reason" in caught.value.errors
        with pytest.raises(InvalidInput) as caught:
            reg.change_status(
                session,
                access=acc,
                episode_id=episode.id,
                status="relapse_prevention",
                reason="",
                version=None,
            )
        assert (
            "cannot go from enrolled, awaiting first contact to relapse prevention"
            in caught.value.errors["status"]
        )
        with pytest.raises(Conflict):
            reg.change_status(
                session, access=acc, episode_id=episode.id, status="active", reason="", version=99
            )

    def test_only_the_care_team_enrols(self, session, people):
        with pytest.raises(NotFound):
            acc_for(session, people.outsider, people.patient)
        with pytest.raises(Exception) as caught:
            reg.enroll(
                session,
                access=acc_for(session, people.patient_user, people.patient),
                data=reg.Enrolment(program="depression"),
            )
        assert "care team" in str(caught.value)


class TestContacts:
    def test_the_first_contact_that_reaches_the_patient_starts_active_treatment(
        self, session, people
    ):
        episode = enroll(session, people, started_on=days_ago(5))
        contact(session, people, "outreach_attempt", days_ago(4), minutes=5)
        session.refresh(episode)
        assert episode.status == "awaiting_first_contact"
        contact(session, people, "initial_assessment", days_ago(3), minutes=45)
        session.refresh(episode)
        assert episode.status == "active"
        # The clock is fixed, so both changes carry the same time: follow the chain instead.
        changes = session.scalars(select(EpisodeChange)).all()
        first = [c for c in changes if c.from_status is None]
        following = [c for c in changes if c.from_status is not None]
        assert [c.to_status for c in first] == ["awaiting_first_contact"]
        assert [(c.from_status, c.to_status) for c in following] == [
            ("awaiting_first_contact", "active")
        ]

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"minutes": -1}, "minutes"),
            ({"minutes": 601}, "minutes"),
            ({"minutes": "twenty"}, "minutes"),
            ({"kind": "chat"}, "kind"),
            ({"mode": "pigeon"}, "mode"),
            ({"occurred_on": TODAY.replace(day=23)}, "occurred_on"),
        ],
    )
    def test_bad_contacts_are_named(self, session, people, fields, field):
        enroll(session, people, started_on=days_ago(10))
        data = {"kind": "follow_up", "mode": "phone", "minutes": 10, **fields}
        with pytest.raises(InvalidInput) as caught:
            reg.log_contact(
                session,
                access=acc_for(session, people.care_manager, people.patient),
                data=reg.ContactIn(**data),
            )
        assert field in caught.value.errors

    def test_not_before_the_episode_and_not_without_one(self, session, people):
        acc = acc_for(session, people.care_manager, people.patient)
        with pytest.raises(Conflict):
            reg.log_contact(session, access=acc, data=reg.ContactIn("follow_up", "phone", 10))
        enroll(session, people, started_on=days_ago(3))
        with pytest.raises(InvalidInput) as caught:
            reg.log_contact(
                session,
                access=acc,
                data=reg.ContactIn("follow_up", "phone", 10, occurred_on=days_ago(4)),
            )
        assert "cannot be before the episode started" in caught.value.errors["occurred_on"]

    def test_a_void_contact_keeps_its_trace(self, session, people):
        enroll(session, people, started_on=days_ago(3))
        made = contact(session, people, "follow_up", days_ago(1), minutes=30)
        acc = acc_for(session, people.care_manager, people.patient)
        with pytest.raises(InvalidInput):
            reg.void_contact(session, access=acc, contact_id=made.id, reason=" ")
        reg.void_contact(session, access=acc, contact_id=made.id, reason="Wrong patient")
        commit(session)
        session.refresh(made)
        assert made.voided_at is not None and made.void_reason == "Wrong patient"
        with pytest.raises(Conflict):
            reg.void_contact(session, access=acc, contact_id=made.id, reason="again")

    def test_the_role_recorded_is_the_persons_role_on_the_team(self, session, people):
        enroll(session, people, started_on=days_ago(3))
        made = reg.log_contact(
            session,
            access=acc_for(session, people.care_manager, people.patient),
            data=reg.ContactIn("case_review", "video", 15, user_id=str(people.consultant.id)),
        )
        assert (made.user_id, made.role) == (people.consultant.id, "psychiatric_consultant")


class TestThePatientTab:
    def test_enrol_record_and_complete_through_the_page(
        self, client, session, people, plan, sign_in
    ):
        token = sign_in(CM)
        page = client.get(f"/patients/{people.patient.id}/registry")
        assert page.status_code == 200 and "Not enrolled in collaborative care." in page.text
        refused = client.post(
            f"/patients/{people.patient.id}/registry/enroll",
            data={
                "csrf_token": token,
                "idem": uuid.uuid4().hex,
                "program": "",
                "started_on": "2026-11-20",
            },
        )
        assert refused.status_code == 422 and "must be one of" in refused.text
        idem = uuid.uuid4().hex
        form = {
            "csrf_token": token,
            "idem": idem,
            "program": "depression",
            "started_on": "2026-11-20",
        }
        assert (
            client.post(f"/patients/{people.patient.id}/registry/enroll", data=form).status_code
            == 303
        )
        assert (
            client.post(f"/patients/{people.patient.id}/registry/enroll", data=form).status_code
            == 303
        )
        assert len(session.scalars(select(Episode)).all()) == 1  # the retry did not enrol twice
        recorded = client.post(
            f"/patients/{people.patient.id}/registry/contacts",
            data={
                "csrf_token": token,
                "idem": uuid.uuid4().hex,
                "kind": "initial_assessment",
                "mode": "in_person",
                "minutes": "50",
                "occurred_on": "2026-11-21",
                "user_id": str(people.care_manager.id),
                "note": "PHQ-9 together; goals in his words.",
            },
        )
        assert recorded.status_code == 303
        page = client.get(f"/patients/{people.patient.id}/registry").text
        assert "active treatment" in page and "PHQ-9 together" in page
        episode = session.scalar(select(Episode))
        completed = client.post(
            f"/patients/{people.patient.id}/registry/episodes/{episode.id}/status",
            data={
                "csrf_token": token,
                "version": str(episode.version),
                "status": "completed",
                "reason": "Goals met",
            },
        )
        assert completed.status_code == 303
        assert completed.headers["location"].startswith(
            f"/patients/{people.patient.id}/relapse-plan?edit=1"
        )
        relapse = client.get(completed.headers["location"]).text
        assert (
            "The episode is complete" in relapse
            and "Early signs that I may be getting unwell again" in relapse
        )

    def test_a_clinician_off_the_team_sees_nothing(self, client, session, people, plan, sign_in):
        enroll(session, people)
        sign_in("otto@test.example.org")
        assert client.get(f"/patients/{people.patient.id}/registry").status_code == 404
        assert client.get(f"/patients/{people.patient.id}/relapse-plan").status_code == 404
