"""The JSON API as a program uses it: bearer tokens, clear errors, safe retries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from concord.accounts.models import TokenScope
from concord.accounts.tokens import create_api_token, revoke_api_token
from concord.careplans.models import Goal
from concord.careplans.schemas import GoalProposal
from tests.conftest import commit
from tests.factories import create_plan


def bearer(session, user, **kwargs):
    token, _ = create_api_token(session, user=user, by=None, **kwargs)
    commit(session)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def plan(session, people):
    plan = create_plan(session, people, activate=True)
    commit(session)
    return plan


def goals(session):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Goal))


class TestTokens:
    def test_no_token_is_401_with_a_hint(self, client, people, plan):
        response = client.get(f"/api/v1/patients/{people.patient.id}/careplan")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in response.json()["detail"]

    def test_a_token_acts_as_its_user(self, client, session, people, plan):
        headers = bearer(session, people.care_manager)
        response = client.get("/api/v1/patients", headers=headers)
        assert response.status_code == 200
        assert [p["mrn"] for p in response.json()] == ["N-1"]
        assert response.json()[0]["care_plan"]["status"] == "active"

    def test_a_revoked_token_stops_working_at_once(self, client, session, people, plan):
        token, api_token = create_api_token(session, user=people.care_manager, by=None)
        commit(session)
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/patients", headers=headers).status_code == 200
        revoke_api_token(session, token_id=api_token.id, by=None)
        commit(session)
        assert client.get("/api/v1/patients", headers=headers).status_code == 401

    def test_an_expired_token_is_refused(self, client, session, people, plan, clock):
        headers = bearer(session, people.care_manager, expires_in=timedelta(days=1))
        clock.advance(days=1, seconds=1)
        assert client.get("/api/v1/patients", headers=headers).status_code == 401

    def test_a_read_only_token_cannot_write(self, client, session, people, plan):
        headers = bearer(session, people.care_manager, scope=TokenScope.read)
        assert (
            client.get(
                f"/api/v1/patients/{people.patient.id}/careplan", headers=headers
            ).status_code
            == 200
        )
        response = client.post(
            f"/api/v1/patients/{people.patient.id}/careplan/strengths",
            json={"description": "x"},
            headers=headers,
        )
        assert response.status_code == 403

    def test_tokens_are_stored_hashed(self, session, people):
        token, api_token = create_api_token(session, user=people.care_manager, by=None)
        assert token not in api_token.token_hash and len(api_token.token_hash) == 64

    def test_a_deactivated_users_token_stops_working(self, client, session, people, plan):
        headers = bearer(session, people.care_manager)
        people.care_manager.active = False
        commit(session)
        assert client.get("/api/v1/patients", headers=headers).status_code == 401


class TestEditing:
    def test_the_whole_plan_reads_as_json(self, client, session, people, plan):
        response = client.get(
            f"/api/v1/patients/{people.patient.id}/careplan",
            headers=bearer(session, people.therapist),
        )
        body = response.json()
        assert body["status"] == "active" and body["revision"] == plan.revision_number
        assert body["review_state"] == "scheduled"
        assert body["agreement"] == {
            "agreed": False,
            "awaiting": ["patient", "lead_clinician"],
            "patient": None,
            "lead_clinician": None,
        }
        [goal] = body["goals"]
        assert goal["target"] == "under 10" and goal["milestones"] == []
        assert body["action_steps"][0]["owner"] == "patient"

    def test_adding_a_goal(self, client, session, people, plan):
        response = client.post(
            f"/api/v1/patients/{people.patient.id}/careplan/goals",
            json={
                "statement": "Back to work three days a week",
                "category": "work_or_school",
                "measure": "days worked",
                "target": "3 a week",
                "due_on": "2027-04-01",
                "reason": "Agreed at the visit",
            },
            headers=bearer(session, people.care_manager),
        )
        assert response.status_code == 201, response.text
        assert response.json()["statement"] == "Back to work three days a week"
        assert response.json()["version"] == 1

    @pytest.mark.parametrize(
        ("body", "field", "problem"),
        [
            ({"category": "wellbeing"}, "statement", "is required"),
            ({"statement": "x", "category": "astrology"}, "category", "must be one of"),
            (
                {"statement": "x", "category": "wellbeing", "due_on": "soon"},
                "due_on",
                "must be a date",
            ),
            (
                {"statement": "x" * 1001, "category": "wellbeing"},
                "statement",
                "must be at most 1000 characters",
            ),
            (
                {"statement": "x", "category": "wellbeing", "due_on": "1800-01-01"},
                "due_on",
                "between 1900 and 2200",
            ),
        ],
    )
    def test_bad_input_is_422_naming_the_field_and_saves_nothing(
        self, client, session, people, plan, body, field, problem
    ):
        before = goals(session)
        response = client.post(
            f"/api/v1/patients/{people.patient.id}/careplan/goals",
            json=body,
            headers=bearer(session, people.care_manager),
        )
        assert response.status_code == 422, response.text
        fields = {f["field"]: f["problem"] for f in response.json()["fields"]}
        assert field in fields and problem in fields[field]
        assert goals(session) == before

    def test_malformed_json_is_422(self, client, session, people, plan):
        response = client.post(
            f"/api/v1/patients/{people.patient.id}/careplan/goals",
            content=b"{not json",
            headers={**bearer(session, people.care_manager), "Content-Type": "application/json"},
        )
        assert response.status_code == 422

    def test_an_edit_must_quote_the_current_version(self, client, session, people, plan):
        headers = bearer(session, people.care_manager)
        goal = client.get(f"/api/v1/patients/{people.patient.id}/careplan", headers=headers).json()[
            "goals"
        ][0]
        url = f"/api/v1/patients/{people.patient.id}/careplan/goals/{goal['id']}"
        body = {
            "statement": "New words",
            "category": "wellbeing",
            "reason": "clearer",
            "version": goal["version"],
        }
        assert client.put(url, json=body, headers=headers).status_code == 200
        stale = client.put(url, json={**body, "statement": "Other words"}, headers=headers)
        assert stale.status_code == 409
        assert stale.json()["current_version"] == goal["version"] + 1
        assert stale.json()["updated_by"] == "Cara Manager"

    def test_a_retry_with_the_same_idempotency_key_is_not_recorded_twice(
        self, client, session, people, plan
    ):
        headers = {**bearer(session, people.care_manager), "Idempotency-Key": "visit-42-goal-1"}
        body = {"statement": "Cook dinner twice a week", "category": "daily_functioning"}
        url = f"/api/v1/patients/{people.patient.id}/careplan/goals"
        first = client.post(url, json=body, headers=headers)
        second = client.post(url, json=body, headers=headers)
        assert first.status_code == 201 and second.status_code == 200
        assert second.headers["idempotent-replayed"] == "true"
        assert first.json()["id"] == second.json()["id"]
        assert goals(session) == 2

    def test_a_key_sent_again_with_a_different_body_is_a_conflict(
        self, client, session, people, plan
    ):
        # Issue 16, item 4: the second goal was answered "replayed" with the first and
        # silently dropped.
        headers = {**bearer(session, people.care_manager), "Idempotency-Key": "visit-42-goal-2"}
        url = f"/api/v1/patients/{people.patient.id}/careplan/goals"
        body = {"statement": "Cook dinner twice a week", "category": "daily_functioning"}
        assert client.post(url, json=body, headers=headers).status_code == 201
        other = client.post(url, json={**body, "statement": "Walk daily"}, headers=headers)
        assert other.status_code == 409, other.text
        assert "different request" in other.json()["detail"]
        # The same key on another route is not a repeat either.
        elsewhere = client.post(
            f"/api/v1/patients/{people.patient.id}/careplan/comments",
            json={"body": "Cook dinner twice a week"},
            headers=headers,
        )
        assert elsewhere.status_code == 409
        assert goals(session) == 2
        # The same bytes again are still a replay.
        again = client.post(url, json=body, headers=headers)
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"

    def test_idempotency_keys_belong_to_their_user(self, client, session, people, plan):
        body = {"statement": "Same key, different person", "category": "wellbeing"}
        url = f"/api/v1/patients/{people.patient.id}/careplan/goals"
        for user in (people.care_manager, people.therapist):
            headers = {**bearer(session, user), "Idempotency-Key": "shared-key-123"}
            assert client.post(url, json=body, headers=headers).status_code == 201
        assert goals(session) == 3

    def test_a_patient_proposes_and_agrees_through_the_api(self, client, session, people, plan):
        headers = bearer(session, people.patient_user)
        proposed = client.post(
            f"/api/v1/patients/{people.patient.id}/careplan/goals/propose",
            json={"statement": "Ride my bike again"},
            headers=headers,
        )
        assert proposed.status_code == 201 and proposed.json()["status"] == "proposed"
        current = client.get(
            f"/api/v1/patients/{people.patient.id}/careplan", headers=headers
        ).json()
        agreed = client.post(
            f"/api/v1/patients/{people.patient.id}/careplan/agree",
            json={"revision": current["revision"]},
            headers=headers,
        )
        assert agreed.status_code == 200 and agreed.json()["party"] == "patient"

    def test_revisions_and_comparison(self, client, session, people, plan):
        headers = bearer(session, people.therapist)
        revisions = client.get(
            f"/api/v1/patients/{people.patient.id}/careplan/revisions", headers=headers
        ).json()
        assert revisions[0]["number"] == plan.revision_number
        diff = client.get(
            f"/api/v1/patients/{people.patient.id}/careplan/compare?from=1&to="
            f"{plan.revision_number}",
            headers=headers,
        ).json()
        added = [
            {k: v for k, v in c.items() if k not in ("item_id", "part2")} for c in diff["changes"]
        ]
        assert {
            "section": "goals",
            "change": "added",
            "label": "I want to feel better, part 1",
            "fields": [],
        } in added
        # Each item's change names the item, and whether it carries the Part 2 label.
        goal = next(c for c in diff["changes"] if c["label"] == "I want to feel better, part 1")
        assert goal["item_id"] and goal["part2"] is False

    def test_family_and_patient_get_no_history(self, client, session, people, plan):
        """The history page is the team's; so are its API twins. A family member who may read
        the agreed plan must not read what was removed from it and why (issue 16, item 1)."""
        from concord.audit.models import AuditEvent, Outcome
        from concord.careplans import service as plans
        from tests.factories import acc_for

        acc = acc_for(session, people.care_manager, people.patient)
        current = plans.current_plan(session, people.patient.id)
        removed = plans.load_contents(session, current).action_steps[0]
        plans.remove_item(
            session,
            access=acc,
            section="action_steps",
            item_id=removed.id,
            version=removed.version,
            reason="Patient asked to keep this from his sister",
        )
        plans.propose_goal(
            session,
            access=acc_for(session, people.patient_user, people.patient),
            data=GoalProposal(statement="Ride my bike again", why="my private reason"),
        )
        commit(session)
        base = f"/api/v1/patients/{people.patient.id}/careplan"
        for user in (people.family, people.patient_user):
            headers = bearer(session, user)
            for url in (f"{base}/revisions", f"{base}/compare?from=1&to=3"):
                response = client.get(url, headers=headers)
                assert response.status_code == 404, (user.email, url, response.text)
                for secret in ("sister", "Walk ten minutes", "private reason"):
                    assert secret not in response.text
        denied = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.actor_id == people.family.id,
                AuditEvent.outcome == Outcome.denied,
                AuditEvent.action.in_(["history", "compare"]),
            )
        )
        assert denied == 2
        # The family member still reads the plan as it stands.
        shared = client.get(base, headers=bearer(session, people.family))
        assert shared.status_code == 200 and "sister" not in shared.text
        assert "private reason" not in shared.text and "Walk ten minutes" not in shared.text

    def test_my_action_steps(self, client, session, people, plan):
        response = client.get(
            "/api/v1/me/action-steps", headers=bearer(session, people.patient_user)
        )
        assert [s["description"] for s in response.json()] == ["Walk ten minutes"]


def test_the_openapi_document_describes_every_section(client):
    spec = client.get("/api/openapi.json").json()
    for section in (
        "concerns",
        "goals",
        "milestones",
        "interventions",
        "action_steps",
        "strengths",
        "barriers",
        "contingencies",
    ):
        assert f"/api/v1/patients/{{patient_id}}/careplan/{section}" in spec["paths"]
