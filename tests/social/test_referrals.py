"""Social needs end to end in the domain and its actions: a screen's concerns, the directory,
referrals with consent, every Task status change allowed or refused for each party, the
partner's link, the patient's word on the loop and the overdue task."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from concord.actions import checkin
from concord.actions import social as social_actions
from concord.audit.models import AuditEvent
from concord.clock import now
from concord.consents.schemas import ConsentIn
from concord.errors import Conflict, InvalidInput, NotFound
from concord.measures import service as measures
from concord.registry.models import WorkTask
from concord.social import referrals as rules
from concord.social import service as social
from concord.social.models import ConcernStatus, ReferralStatus
from tests.conftest import commit
from tests.factories import acc_for

SECRET = "test-secret-key-for-the-test-suite-only-0123456789"
NEGATIVE = {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0, "6": 0, "7": 1, "8": 1, "9": 1, "10": 1}
FOOD_AND_HOUSING = {**NEGATIVE, "1": 1, "3": 2, "4": 1}

# The SDOHCC referral Task table (who sets each status) over the IG's Referral Task State
# Diagram (STU3, input/images/ReferralTaskStateDiagram.svg), written out here by hand from the
# drawing so that the code's table is checked against it, not against itself. One edge is
# Concord's own (draft -> cancelled, not drawn); entered-in-error "can be reached from any
# other status", set by the requester.
R, P = "requester", "partner"
EXPECTED = {
    ("draft", "requested", R), ("draft", "cancelled", R),
    ("requested", "accepted", P), ("requested", "rejected", P),
    ("requested", "cancelled", R), ("requested", "cancelled", P),
    ("accepted", "in-progress", P), ("accepted", "on-hold", P),
    ("accepted", "completed", P), ("accepted", "failed", P),
    ("accepted", "cancelled", R), ("accepted", "cancelled", P),
    ("in-progress", "on-hold", P), ("in-progress", "completed", P), ("in-progress", "failed", P),
    ("in-progress", "cancelled", R), ("in-progress", "cancelled", P),
    ("on-hold", "in-progress", P), ("on-hold", "completed", P), ("on-hold", "failed", P),
    ("on-hold", "cancelled", R), ("on-hold", "cancelled", P),
} | {
    (s, "entered-in-error", R)
    for s in ("draft", "requested", "accepted", "in-progress", "on-hold",
              "rejected", "cancelled", "failed", "completed")
}  # fmt: skip
STATUSES = [s.value for s in ReferralStatus]


def cm(session, people):
    return acc_for(session, people.care_manager, people.patient)


def me(session, people):
    return acc_for(session, people.patient_user, people.patient)


def screen(session, access, answers):
    return checkin.record_response(
        session,
        access=access,
        instrument_code="AHC-HRSN",
        submission=measures.Submission(answers=answers, mode=measures.Mode.in_person),
    )


@pytest.fixture
def food_bank(session, people):
    social.load_postcodes(session, [("97201", 45.5, -122.69), ("97202", 45.48, -122.64)])
    return social.add_service(
        session,
        by=people.care_manager,
        data={
            "provider_name": "Riverside Food Bank",
            "name": "Weekly groceries",
            "categories": ["food-insecurity"],
            "languages": ["en", "es"],
            "postcode": "97202",
            "electronic_referrals": True,
        },
    )


def paper_consent():
    return ConsentIn(
        grantee_kind="organization",
        method="paper_scanned",
        signed_name="Pat Ient",
        signed_on=now().date(),
    )


def send(session, people, service, **extra):
    access = cm(session, people)
    return social_actions.send_referral(
        session,
        access=access,
        service_id=service.id,
        concern_id=extra.pop("concern_id", None),
        shared_summary="Pat would like groceries; call in the afternoon.",
        contact="555-0100",
        consent=extra.pop("consent", paper_consent()),
        secret=SECRET,
        **extra,
    )


def test_the_codes_table_is_the_igs():
    found = {
        (s, t, p) for s in STATUSES for t in STATUSES for p in (R, P) if rules.allowed(s, t, p)
    }
    assert found == EXPECTED


def test_every_transition_through_the_doors_is_allowed_or_refused(session, people, food_bank):
    referral, token = send(session, people, food_bank)
    commit(session)
    access = cm(session, people)
    for current in STATUSES:
        for target in STATUSES:
            for party in (R, P):
                nested = session.begin_nested()
                referral.status = current
                session.flush()
                kwargs = {"reason": "a reason", "outcome": "groceries given"}
                try:
                    if party == P:
                        social.partner_transition(
                            session, token=token, secret=SECRET, to=target, **kwargs
                        )
                    else:
                        social.team_transition(
                            session,
                            access=access,
                            referral_id=referral.id,
                            to=target,
                            reason="a reason",
                        )
                    ok = True
                except Conflict:
                    ok = False
                assert ok == ((current, target, party) in EXPECTED), (current, target, party)
                if ok:
                    assert referral.status == target
                nested.rollback()


def test_a_refusal_changes_nothing_and_is_audited(session, people, food_bank):
    referral, token = send(session, people, food_bank)
    with pytest.raises(Conflict):
        social.partner_transition(session, token=token, secret=SECRET, to="completed",
                                  outcome="x")  # fmt: skip
    assert referral.status == "requested"
    session.flush()
    from concord.audit.service import write_pending

    write_pending(session)
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.object_id == str(referral.id), AuditEvent.outcome == "denied"
        )
    ).all()
    assert denied


def test_declining_needs_a_reason_and_completing_says_what_was_done(session, people, food_bank):
    referral, token = send(session, people, food_bank)
    with pytest.raises(InvalidInput) as exc:
        social.partner_transition(session, token=token, secret=SECRET, to="rejected")
    assert "reason" in exc.value.errors
    social.partner_transition(session, token=token, secret=SECRET, to="accepted")
    social.partner_transition(session, token=token, secret=SECRET, to="in-progress")
    with pytest.raises(InvalidInput) as exc:
        social.partner_transition(session, token=token, secret=SECRET, to="completed")
    assert "outcome" in exc.value.errors
    social.partner_transition(
        session, token=token, secret=SECRET, to="completed", outcome="Two weeks of groceries"
    )
    assert referral.closed_at is not None
    history = [(e.from_status, e.to_status, e.party) for e in social.events(session, referral)]
    assert history == [
        (None, "requested", "requester"),
        ("requested", "accepted", "partner"),
        ("accepted", "in-progress", "partner"),
        ("in-progress", "completed", "partner"),
    ]


def test_a_forged_or_expired_link_opens_nothing(session, people, food_bank, clock):
    referral, token = send(session, people, food_bank)
    nonce, _, mac = token.partition(".")
    for bad in (f"{nonce}.{'0' * len(mac)}", f"x{nonce}.{mac}", "", "nothing"):
        with pytest.raises(NotFound):
            social.read_by_partner(session, token=bad, secret=SECRET)
    with pytest.raises(NotFound):
        social.read_by_partner(session, token=token, secret="another-secret-key")
    assert social.read_by_partner(session, token=token, secret=SECRET).id == referral.id
    clock.advance(days=social.LINK_DAYS + 1)
    with pytest.raises(NotFound):
        social.read_by_partner(session, token=token, secret=SECRET)
    # Only a hash of the random part is stored.
    assert referral.token_hash not in token and nonce not in (referral.token_hash or "")


def test_a_referral_needs_the_patients_consent_to_share(session, people, food_bank):
    with pytest.raises(InvalidInput) as exc:
        send(session, people, food_bank, consent=None)
    assert "consent_id" in exc.value.errors
    referral, _ = send(session, people, food_bank)
    assert referral.consent_id is not None


def test_a_screen_makes_concerns_and_a_safety_need_is_not_shared_without_say(
    session, people, food_bank
):
    completed = screen(session, cm(session, people), {**FOOD_AND_HOUSING, "7": 5, "8": 5, "9": 1})
    assert {f.id for f in completed.scored.flags} >= {"food-insecurity", "housing-instability"}
    concerns = {c.domain: c for c in social.list_concerns(session, access=me(session, people))}
    assert set(concerns) == {"food-insecurity", "housing-instability", "intimate-partner-violence"}
    assert concerns["food-insecurity"].icd10 == "Z59.41"
    assert all(c.status == ConcernStatus.proposed for c in concerns.values())
    safety = concerns["intimate-partner-violence"]
    assert safety.sensitive
    task = session.scalar(select(WorkTask).where(WorkTask.source == f"social-safety:{safety.id}"))
    assert task is not None and task.priority == "urgent"
    with pytest.raises(InvalidInput) as exc:
        send(session, people, food_bank, concern_id=safety.id)
    assert "share_safety_need" in exc.value.errors
    # The patient rewords one need and declines another.
    social.decide_concern(
        session,
        access=me(session, people),
        concern_id=concerns["food-insecurity"].id,
        decision="confirm",
        words="I want to stop worrying about food at the end of the month",
    )
    social.decide_concern(
        session, access=me(session, people), concern_id=safety.id, decision="decline"
    )
    assert concerns["food-insecurity"].status == "confirmed"
    assert safety.status == "declined"


def test_a_negative_rescreen_resolves_the_need_and_a_positive_one_adds_none(session, people):
    screen(session, cm(session, people), FOOD_AND_HOUSING)
    screen(session, cm(session, people), FOOD_AND_HOUSING)
    concerns = social.list_concerns(session, access=cm(session, people))
    assert len(concerns) == 2
    screen(session, cm(session, people), {**FOOD_AND_HOUSING, "3": 0, "4": 0})
    by_domain = {
        c.domain: c.status for c in social.list_concerns(session, access=cm(session, people))
    }
    assert by_domain == {"food-insecurity": "resolved", "housing-instability": "proposed"}


def test_no_answer_in_time_is_one_task_for_the_care_manager(session, people, food_bank, clock):
    referral, _ = send(session, people, food_bank, respond_days=2)
    assert social_actions.overdue_tasks(session) == 0
    clock.advance(days=3)
    assert social_actions.overdue_tasks(session) == 1
    assert social_actions.overdue_tasks(session) == 0
    task = session.scalar(
        select(WorkTask).where(WorkTask.source == f"referral-overdue:{referral.id}")
    )
    assert task.owner_id == people.care_manager.id


def test_the_patient_says_nobody_called(session, people, food_bank):
    referral, _ = send(session, people, food_bank)
    social_actions.patient_report(
        session, access=me(session, people), referral_id=referral.id, report="nobody_called"
    )
    assert referral.patient_report == "nobody_called"
    assert session.scalar(
        select(WorkTask).where(WorkTask.source == f"referral-nobody-called:{referral.id}")
    )
    with pytest.raises(InvalidInput):
        social_actions.patient_report(
            session, access=me(session, people), referral_id=referral.id, report="maybe"
        )


def test_off_team_sees_no_referral(session, people, food_bank):
    referral, _ = send(session, people, food_bank)
    with pytest.raises(NotFound):
        acc = acc_for(session, people.outsider, people.patient)
        social.get_referral(session, access=acc, referral_id=referral.id)


def test_directory_search_by_need_language_and_distance(session, people, food_bank):
    social.add_service(
        session,
        by=people.care_manager,
        data={
            "provider_name": "Eastside Housing",
            "name": "Rent help",
            "categories": ["housing-instability"],
            "languages": ["en"],
            "postcode": "97201",
        },
    )
    by = people.care_manager
    assert [
        f.service.name for f in social.search_services(session, by=by, need="food-insecurity")
    ] == ["Weekly groceries"]
    assert [f.service.name for f in social.search_services(session, by=by, language="es")] == [
        "Weekly groceries"
    ]
    near = social.search_services(session, by=by, near="97201")
    assert [f.service.name for f in near] == ["Rent help", "Weekly groceries"]
    assert near[0].km == 0 and 3 < near[1].km < 6
    assert [
        f.service.name for f in social.search_services(session, by=by, near="97201", within_km=1)
    ] == ["Rent help"]
    with pytest.raises(InvalidInput):
        social.search_services(session, by=by, near="00000")


def test_open_referral_import_json_and_csv(session, people):
    hsds = [
        {
            "id": "svc-1",
            "name": "Hot meals",
            "organization": {"name": "Community Kitchen"},
            "attributes": [{"taxonomy_term": {"code": "food-insecurity"}}],
            "languages": [{"code": "es"}],
            "service_at_locations": [
                {
                    "location": {
                        "addresses": [
                            {"address_1": "1 Main St", "city": "Portland", "postal_code": "97201"}
                        ]
                    }
                }
            ],
            "phones": [{"number": "555-0101"}],
        }
    ]
    done = social.import_hsds(
        session, by=people.care_manager, content=json.dumps(hsds), kind="json"
    )
    assert done[0].provider_name == "Community Kitchen" and done[0].postcode == "97201"
    again = social.import_hsds(
        session, by=people.care_manager, content=json.dumps(hsds), kind="json"
    )
    assert again[0].id == done[0].id  # updated, not duplicated
    csv_text = "id,organization_name,name,categories,languages,postal_code\nc-1,Ride Share,Rides,transportation-insecurity,en,97202\n"
    rows = social.import_hsds(session, by=people.care_manager, content=csv_text, kind="csv")
    assert rows[0].categories == ["transportation-insecurity"]
    bad = "id,organization_name,name,categories\nc-2,,Nameless,food-insecurity\n"
    with pytest.raises(InvalidInput) as exc:
        social.import_hsds(session, by=people.care_manager, content=bad, kind="csv")
    assert "services[0].provider_name" in exc.value.errors


def test_a_need_becomes_a_goal_in_the_patients_words_and_a_barrier(session, people):
    from concord.careplans.models import Barrier, Goal
    from concord.social.schemas import ConcernToPlanIn
    from tests.factories import create_plan

    create_plan(session, people, activate=True)
    screen(session, cm(session, people), {**NEGATIVE, "5": 1})
    concern = social.list_concerns(session, access=cm(session, people))[0]
    made = social_actions.concern_to_plan(
        session,
        access=cm(session, people),
        concern_id=concern.id,
        data=ConcernToPlanIn(
            goal="I want to get to my appointments without worrying about the bus",
            barrier="No bus on Sundays",
            way_around="Volunteer driver programme",
        ),
    )
    assert isinstance(made["goal"], Goal) and isinstance(made["barrier"], Barrier)
    assert made["barrier"].kind == "transport"
    assert concern.status == "confirmed"
    assert concern.patient_words.startswith("I want to get to my appointments")
