"""A plan goal names the social need it addresses (issue 23): made from a concern, or chosen on
the goal form among the patient's open needs; the plan shows it, the API returns it and FHIR
Goal.addresses points at the need's Condition (concord-sdoh-{id})."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from concord.careplans.models import Goal
from concord.social import service as social
from tests.careplans.test_api import bearer
from tests.conftest import commit, csrf_of
from tests.factories import create_plan
from tests.social.test_referrals import FOOD_AND_HOUSING, cm, screen

CM = "cara@test.example.org"
FHIR = {"Accept": "application/fhir+json"}


@pytest.fixture
def needs(session, people):
    create_plan(session, people, activate=True)
    screen(session, cm(session, people), FOOD_AND_HOUSING)
    concerns = {c.domain: c for c in social.list_concerns(session, access=cm(session, people))}
    commit(session)
    return concerns


def goals_count(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Goal))


def test_a_goal_made_from_a_need_addresses_it_on_the_plan_and_in_fhir(
    client, session, people, sign_in, needs
):
    food = needs["food-insecurity"]
    token = sign_in(CM)
    made = client.post(
        f"/patients/{people.patient.id}/social/concerns/{food.id}/plan",
        data={
            "csrf_token": token,
            "idem": uuid.uuid4().hex,
            "goal": "I want to stop worrying about food at the end of the month",
        },
    )
    assert made.status_code == 303
    goal = session.scalar(select(Goal).where(Goal.social_concern_id == food.id))
    assert goal is not None
    plan = client.get(f"/patients/{people.patient.id}/plan")
    assert f'id="goal-need-{goal.id}"' in plan.text
    assert "Addresses the social need: Food" in plan.text

    headers = bearer(session, people.care_manager)
    read = client.get(f"/fhir/Goal/{goal.id}", headers={**FHIR, **headers})
    assert read.status_code == 200, read.text
    condition = f"Condition/concord-sdoh-{food.id}"
    assert read.json()["addresses"] == [{"reference": condition}]
    # The reference resolves to the need's Condition, for the same reader.
    assert client.get(f"/fhir/{condition}", headers={**FHIR, **headers}).status_code == 200
    # The search by patient carries it too; a goal for no social need has no addresses.
    found = client.get(f"/fhir/Goal?patient={people.patient.id}", headers={**FHIR, **headers})
    by_id = {e["resource"]["id"]: e["resource"] for e in found.json()["entry"]}
    assert by_id[str(goal.id)]["addresses"] == [{"reference": condition}]
    assert any("addresses" not in r for r in by_id.values())


def test_the_goal_form_offers_the_open_needs_and_refuses_another(
    client, session, people, sign_in, needs
):
    food, housing = needs["food-insecurity"], needs["housing-instability"]
    social.decide_concern(
        session, access=cm(session, people), concern_id=housing.id, decision="decline"
    )
    commit(session)
    sign_in(CM)
    page = client.get(f"/patients/{people.patient.id}/plan")
    assert f'<option value="{food.id}"' in page.text
    assert f'<option value="{housing.id}"' not in page.text  # declined: not offered
    token = csrf_of(page.text)
    before = goals_count(session)
    form = {
        "csrf_token": token,
        "statement": "Enough food every week",
        "category": "housing_and_social_needs",
        "priority": "high",
        "status": "accepted",
    }
    refused = client.post(
        f"/patients/{people.patient.id}/plan/goals",
        data={**form, "idem": uuid.uuid4().hex, "social_concern_id": str(housing.id)},
    )
    assert refused.status_code == 422
    assert "must be one of the patient&#39;s open social needs" in refused.text
    assert "Enough food every week" in refused.text
    assert goals_count(session) == before
    added = client.post(
        f"/patients/{people.patient.id}/plan/goals",
        data={**form, "idem": uuid.uuid4().hex, "social_concern_id": str(food.id)},
    )
    assert added.status_code in (200, 303), added.text
    goal = session.scalar(select(Goal).where(Goal.statement == "Enough food every week"))
    assert goal.social_concern_id == food.id


def test_the_api_twin_links_a_goal_and_refuses_another_patients_need(
    client, session, people, needs
):
    food = needs["food-insecurity"]
    headers = bearer(session, people.care_manager)
    base = f"/api/v1/patients/{people.patient.id}/careplan/goals"
    body = {
        "statement": "Groceries without worry",
        "category": "housing_and_social_needs",
        "social_concern_id": str(food.id),
    }
    made = client.post(base, headers=headers, json=body)
    assert made.status_code == 201, made.text
    assert made.json()["social_concern_id"] == str(food.id)
    # Another patient's need (or none at all) is not one of this patient's.
    other = client.post(
        f"/api/v1/patients/{people.other_patient.id}/careplan/goals",
        headers=headers,
        json=body,
    )
    assert other.status_code in (404, 422)
    if other.status_code == 422:
        assert other.json()["fields"][0]["field"] == "social_concern_id"
    unknown = client.post(
        base, headers=headers, json={**body, "social_concern_id": str(uuid.uuid4())}
    )
    assert unknown.status_code == 422
    assert unknown.json()["fields"][0]["field"] == "social_concern_id"


def test_goal_addresses_names_the_need_only_to_a_reader_who_may_see_it(
    client, session, people, needs
):
    """A consent refusing social needs to the therapist: the plan's goal still reaches them
    (care plan data), but neither FHIR Goal.addresses nor the API's social_concern_id names
    the need, which they cannot read either; the care manager, whom it does not name, still
    sees the reference and can follow it."""
    from concord.consents import service as consents
    from concord.consents.schemas import ConsentIn
    from tests.factories import acc_for

    food = needs["food-insecurity"]
    made = client.post(
        f"/api/v1/patients/{people.patient.id}/careplan/goals",
        headers=bearer(session, people.care_manager),
        json={
            "statement": "Groceries without worry",
            "category": "housing_and_social_needs",
            "social_concern_id": str(food.id),
        },
    )
    assert made.status_code == 201, made.text
    goal_id = made.json()["id"]
    consents.record(
        session,
        access=acc_for(session, people.patient_user, people.patient),
        data=ConsentIn(
            grantee_kind="user",
            grantee_id=people.therapist.id,
            scope="categories",
            categories=["social_needs"],
            provision="deny",
            purposes=["treatment"],
            method="portal_signature",
            signed_name="Pat Ient",
        ),
    )
    commit(session)
    condition = f"Condition/concord-sdoh-{food.id}"
    search = f"/fhir/Goal?patient={people.patient.id}"
    api = f"/api/v1/patients/{people.patient.id}/careplan"
    for reader, sees in ((people.care_manager, True), (people.therapist, False)):
        headers = {**FHIR, **bearer(session, reader)}
        read = client.get(f"/fhir/Goal/{goal_id}", headers=headers)
        assert read.status_code == 200, read.text
        assert read.json().get("addresses") == ([{"reference": condition}] if sees else None)
        found = client.get(search, headers=headers).json()
        by_id = {e["resource"]["id"]: e["resource"] for e in found["entry"]}
        assert by_id[goal_id].get("addresses") == ([{"reference": condition}] if sees else None)
        # The reference, where given, resolves for the same reader; where not, nor does it.
        assert client.get(f"/fhir/{condition}", headers=headers).status_code == (
            200 if sees else 404
        )
        plan = client.get(api, headers=bearer(session, reader)).json()
        goal = next(g for g in plan["goals"] if g["id"] == goal_id)
        assert goal["social_concern_id"] == (str(food.id) if sees else None)
