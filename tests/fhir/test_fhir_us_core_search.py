"""The searches an EHR integration sends first (issue 21, US Core): Patient by name, family,
given, birthdate, gender and identifier; Observation by category, date and _lastUpdated;
CarePlan and Goal by category; _sort, _include, _revinclude, _total and paging by next
links. Each answer is checked against rows whose values the test chose."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlsplit

import pytest

from concord.patients.service import NewPatient, register_patient
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import create_plan
from tests.fhir.test_fhir_search import entries, get, not_supported
from tests.safety.conftest import phq9, respond

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
US_CORE_PLAN = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"


@pytest.fixture
def token(session, people):
    return bearer(session, people.care_manager)


@pytest.fixture
def roster(session, people):
    """Three more patients on the care manager's team, with chosen names, births, genders."""
    made = {}
    for given, family, preferred, born, gender, mrn in (
        ("María", "García", None, date(1990, 3, 14), "female", "R-1"),
        ("Mario", "Garcia-Lopez", "Mo", date(1990, 12, 31), "male", "R-2"),
        ("Ann", "Smith_x", None, date(2001, 1, 1), "other", "R-3"),
    ):
        patient, _ = register_patient(
            session,
            by=people.care_manager,
            organization=people.org,
            data=NewPatient(
                given_name=given,
                family_name=family,
                preferred_name=preferred,
                birth_date=born,
                gender=gender,
                mrn=mrn,
                clinic_id=people.north.id,
            ),
        )
        made[mrn] = str(patient.id)
    commit(session)
    return made


def found(client, path, token):
    return {r["id"] for r in entries(get(client, path, token)) if r["resourceType"] == "Patient"}


class TestPatient:
    def test_name_matches_the_start_of_any_name_ignoring_case(self, client, roster, token):
        assert found(client, "Patient?name=gar", token) == {roster["R-1"], roster["R-2"]}
        # Case is ignored; accents are not (María is not a MARI...).
        assert found(client, "Patient?name=MARI", token) == {roster["R-2"]}
        assert found(client, "Patient?name=marí", token) == {roster["R-1"]}
        # The preferred name is a given name too.
        assert found(client, "Patient?given=mo", token) == {roster["R-2"]}
        assert found(client, "Patient?family=garcia", token) == {roster["R-2"]}
        assert found(client, "Patient?family=arcia", token) == set()

    def test_exact_and_contains(self, client, roster, token):
        assert found(client, "Patient?family:exact=García", token) == {roster["R-1"]}
        assert found(client, "Patient?family:exact=garcía", token) == set()
        assert found(client, "Patient?family:contains=LOPEZ", token) == {roster["R-2"]}
        # A LIKE wildcard in the value is a character, not a wildcard.
        assert found(client, "Patient?family:contains=h_", token) == {roster["R-3"]}
        assert found(client, "Patient?family:contains=%25", token) == set()

    def test_comma_is_or_and_repeats_are_and(self, client, roster, token):
        assert found(client, "Patient?given=ann,mo", token) == {roster["R-2"], roster["R-3"]}
        assert found(client, "Patient?name=mar&name=lopez", token) == set()
        assert found(client, "Patient?name=mar&family=garcia-", token) == {roster["R-2"]}

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("1990-03-14", {"R-1"}),
            ("1990", {"R-1", "R-2"}),
            ("1990-12", {"R-2"}),
            ("lt1990-12-31", {"R-1", "P"}),
            ("le1990-12-31", {"R-1", "R-2", "P"}),
            ("gt1990", {"R-3"}),
            ("ge1990-12-31", {"R-2", "R-3"}),
            ("sa1990", {"R-3"}),
            ("eb1990", {"P"}),
            ("ne1990", {"R-3", "P"}),
        ],
    )
    def test_birthdate_with_prefixes(self, client, people, roster, token, value, expected):
        ids = {**roster, "P": str(people.patient.id)}  # born 1985-05-17
        assert found(client, f"Patient?birthdate={value}", token) == {ids[e] for e in expected}

    def test_birthdate_refuses_a_time_and_ap(self, client, roster, token):
        assert get(client, "Patient?birthdate=1990-03-14T10:00", token).status_code == 422
        assert get(client, "Patient?birthdate=1990-13", token).status_code == 422
        assert get(client, "Patient?birthdate=xx1990", token).status_code == 422
        not_supported(get(client, "Patient?birthdate=ap1990", token), "birthdate")

    def test_gender_and_identifier(self, client, people, roster, token):
        assert found(client, "Patient?gender=female,other", token) == {roster["R-1"], roster["R-3"]}
        system = "http://hl7.org/fhir/administrative-gender"
        assert found(client, f"Patient?gender={system}|male", token) == {roster["R-2"]}
        assert found(client, "Patient?gender=urn:x|male", token) == set()
        assert found(client, "Patient?identifier=R-3", token) == {roster["R-3"]}

    def test_a_patient_off_the_team_is_not_found_by_name(self, client, session, people, token):
        assert found(client, f"Patient?family={people.other_patient.family_name}", token) == set()
        outsider = bearer(session, people.outsider)
        assert found(client, f"Patient?family={people.other_patient.family_name}", outsider) == {
            str(people.other_patient.id)
        }

    def test_sort_by_several_keys_pages_with_next_links(self, client, people, roster, token):
        path = "Patient?_sort=-birthdate,family&_count=2"
        seen = []
        pages = 0
        while path:
            response = get(client, path, token)
            bundle = response.json()
            assert bundle["total"] == 4
            seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
            pages += 1
            nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
            path = (
                urlsplit(nxt[0]).path.removeprefix("/fhir/") + "?" + urlsplit(nxt[0]).query
                if nxt
                else None
            )
        assert pages == 2
        assert seen == [roster["R-3"], roster["R-2"], roster["R-1"], str(people.patient.id)]
        by_family = [r["id"] for r in entries(get(client, "Patient?_sort=family", token))]
        # García and Garcia-Lopez: their order is the database's collation's.
        assert set(by_family[:2]) == {roster["R-1"], roster["R-2"]}
        assert by_family[2:] == [str(people.patient.id), roster["R-3"]]

    def test_sort_refuses_what_it_does_not_offer(self, client, roster, token):
        not_supported(get(client, "Patient?_sort=address", token), "_sort")
        assert get(client, "Patient?_sort=family,-family", token).status_code == 422

    def test_total_none_leaves_the_total_out(self, client, roster, token):
        bundle = get(client, "Patient?_total=none&_sort=family&_count=1", token).json()
        assert "total" not in bundle and len(bundle["entry"]) == 1
        assert get(client, "Patient?_total=accurate", token).json()["total"] == 4
        assert get(client, "Patient?_total=sometimes", token).status_code == 422


@pytest.fixture
def scores(session, people, clock):
    """Three PHQ-9s for the patient, a week apart; the clock is back at the last one."""
    start = clock.now()
    clock.set(start - timedelta(days=14))
    for _ in range(3):
        respond(session, people, "PHQ-9", phq9([1, 1, 1, 1, 0, 0, 0, 0, 0]))
        clock.advance(days=7)
    commit(session)
    clock.set(start)
    return start


def times(response):
    return [r["effectiveDateTime"] for r in entries(response)]


class TestObservation:
    def test_category(self, client, people, scores, token):
        pid = people.patient.id
        assert len(entries(get(client, f"Observation?patient={pid}&category=survey", token))) == 3
        assert (
            len(
                entries(get(client, f"Observation?patient={pid}&category={CATEGORY}|survey", token))
            )
            == 3
        )
        assert entries(get(client, f"Observation?patient={pid}&category=laboratory", token)) == []
        assert entries(get(client, f"Observation?patient={pid}&category=urn:x|survey", token)) == []

    def test_date_prefixes(self, client, people, scores, token):
        pid = people.patient.id
        last = scores.date()
        week_ago = (scores - timedelta(days=7)).date()
        assert len(times(get(client, f"Observation?patient={pid}&date={last}", token))) == 1
        assert len(times(get(client, f"Observation?patient={pid}&date=ge{week_ago}", token))) == 2
        assert len(times(get(client, f"Observation?patient={pid}&date=lt{week_ago}", token))) == 1
        assert len(times(get(client, f"Observation?patient={pid}&date=ne{week_ago}", token))) == 2
        both = f"date=ge{week_ago}&date=le{week_ago}"
        assert len(times(get(client, f"Observation?patient={pid}&{both}", token))) == 1
        stamp = scores.strftime("%Y-%m-%dT%H:%M")
        assert len(times(get(client, f"Observation?patient={pid}&date=eq{stamp}Z", token))) == 1
        assert len(times(get(client, f"Observation?patient={pid}&date=sa{stamp}Z", token))) == 0
        assert len(times(get(client, f"Observation?patient={pid}&date=eb{stamp}Z", token))) == 2
        assert get(client, f"Observation?patient={pid}&date=2026-02-30", token).status_code == 422

    def test_a_date_without_a_zone_is_the_organizations(
        self, client, session, people, scores, token
    ):
        """15:00 UTC is 09:00 in Chicago; a day in Chicago ends at 06:00 UTC the next day."""
        people.org.timezone = "America/Chicago"
        commit(session)
        pid = people.patient.id
        local = (scores - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")
        assert len(times(get(client, f"Observation?patient={pid}&date={local}", token))) == 1
        utc = scores.strftime("%Y-%m-%dT%H:%M")
        assert len(times(get(client, f"Observation?patient={pid}&date={utc}", token))) == 0

    def test_last_updated(self, client, people, scores, token):
        pid = people.patient.id
        since = (scores - timedelta(days=8)).date()
        assert (
            len(entries(get(client, f"Observation?patient={pid}&_lastUpdated=gt{since}", token)))
            == 2
        )

    def test_sort_by_date_both_ways(self, client, people, scores, token):
        pid = people.patient.id
        newest_first = times(get(client, f"Observation?patient={pid}", token))
        assert newest_first == sorted(newest_first, reverse=True)
        oldest_first = times(get(client, f"Observation?patient={pid}&_sort=date", token))
        assert oldest_first == sorted(newest_first)
        paged = get(client, f"Observation?patient={pid}&_sort=date&_count=2", token).json()
        assert paged["total"] == 3 and any(link["relation"] == "next" for link in paged["link"])
        descending = times(get(client, f"Observation?patient={pid}&_sort=-date", token))
        assert descending == newest_first

    def test_include_the_patient(self, client, people, scores, token):
        bundle = get(
            client, f"Observation?patient={people.patient.id}&_include=Observation:patient", token
        ).json()
        modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]]
        assert modes.count(("Observation", "match")) == 3
        assert modes.count(("Patient", "include")) == 1
        assert bundle["total"] == 3
        not_supported(get(client, "Observation?_include=Observation:performer", token), "_include")

    def test_revinclude_from_the_patient(self, client, people, scores, token):
        bundle = get(
            client, f"Patient?_id={people.patient.id}&_revinclude=Observation:patient", token
        ).json()
        modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]]
        assert modes.count(("Patient", "match")) == 1
        assert modes.count(("Observation", "include")) == 3

    def test_include_leaves_out_what_the_caller_cannot_read(self, client, session, people, token):
        respond(
            session,
            people,
            "PHQ-9",
            phq9([0] * 9),
            by=people.outsider,
            patient=people.other_patient,
        )
        commit(session)
        bundle = get(client, "Observation?_include=Observation:patient", token).json()
        assert "entry" not in bundle


class TestPlanCategories:
    def test_careplan_is_assess_plan_with_a_narrative(self, client, session, people, token):
        create_plan(session, people, goals=2)
        commit(session)
        pid = people.patient.id
        plans = entries(get(client, f"CarePlan?patient={pid}&category=assess-plan", token))
        assert len(plans) == 1
        assert plans[0]["category"][0]["coding"][0]["system"] == US_CORE_PLAN
        assert "I want to feel better, part 2" in plans[0]["text"]["div"]
        assert plans[0]["text"]["status"] == "generated"
        assert entries(
            get(client, f"CarePlan?patient={pid}&category={US_CORE_PLAN}|assess-plan", token)
        )
        assert entries(get(client, f"CarePlan?patient={pid}&category=careteam", token)) == []

    def test_goal_category(self, client, session, people, token):
        create_plan(session, people, goals=2)
        commit(session)
        pid = people.patient.id
        assert len(entries(get(client, f"Goal?patient={pid}&category=wellbeing", token))) == 2
        assert (
            entries(get(client, f"Goal?patient={pid}&category=housing_and_social_needs", token))
            == []
        )
        included = get(client, f"Goal?patient={pid}&_include=Goal:subject", token).json()
        assert [e["resource"]["resourceType"] for e in included["entry"]].count("Patient") == 1


def test_a_goal_linked_to_a_score_has_a_target_a_system_can_evaluate(
    client, session, people, token
):
    """US Core Goal.target: the code the score's Observations carry, and the value with its
    comparator (the goal: PHQ-9 below 10)."""
    from concord.careplans import service as plans
    from concord.careplans.schemas import GoalIn, PlanStart
    from tests.factories import acc_for

    a = acc_for(session, people.care_manager, people.patient)
    plans.start_plan(session, access=a, data=PlanStart(title="Plan"))
    plans.add_item(
        session,
        access=a,
        section="goals",
        data=GoalIn(
            statement="Feel less low",
            category="symptoms",
            measure="PHQ-9 total",
            measure_instrument="PHQ-9",
            measure_op="below",
            measure_value=10,
        ),
    )
    commit(session)
    goal = entries(get(client, f"Goal?patient={people.patient.id}", token))[0]
    target = goal["target"][0]
    assert target["measure"]["coding"] == [{"system": "http://loinc.org", "code": "44261-6"}]
    assert target["detailQuantity"]["comparator"] == "<"
    assert target["detailQuantity"]["value"] == 10
