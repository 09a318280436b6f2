"""The month's minutes and codes, per patient, across month ends and episodes; the program
view; and who may see them."""

from __future__ import annotations

import csv
import io
from datetime import date

from concord.registry import reports
from concord.registry import service as reg
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for
from tests.registry.conftest import contact, enroll, more_patients, phq9


def rows_for(session, people, month):
    return {
        r.patient_name: r
        for r in reports.minutes_report(session, by=people.admin, month=month).rows
    }


def test_minutes_roll_up_by_month_and_role_into_codes(session, people, clock):
    enroll(session, people, started_on=date(2026, 9, 20))
    # September (the episode's first month with care-manager minutes): 20 + 16 = 36 -> 99492.
    contact(session, people, "initial_assessment", date(2026, 9, 25), minutes=20)
    contact(session, people, "follow_up", date(2026, 9, 30), minutes=16)
    # The consultant's review minutes are shown, not counted.
    contact(session, people, "case_review", date(2026, 9, 30), minutes=30, by=people.consultant)
    # October 1st is a new month: 30 minutes -> G2214 (under 31 for 99493).
    contact(session, people, "follow_up", date(2026, 10, 1), minutes=30)
    # November: 76 -> 99493 + one 99494.
    contact(session, people, "follow_up", date(2026, 11, 2), minutes=60)
    contact(session, people, "follow_up", date(2026, 11, 10), minutes=16)
    september = rows_for(session, people, date(2026, 9, 1))["Pat Ient"]
    assert (september.initial, september.care_manager_minutes, september.consultant_minutes) == (
        True,
        36,
        30,
    )
    assert september.codes.codes == (("99492", 1),)
    october = rows_for(session, people, date(2026, 10, 1))["Pat Ient"]
    assert (october.initial, october.codes.codes) == (False, (("G2214", 1),))
    november = rows_for(session, people, date(2026, 11, 1))["Pat Ient"]
    assert november.codes.codes == (("99493", 1), ("99494", 1))


def test_a_month_before_the_first_care_manager_minutes_is_not_the_initial_one(session, people):
    enroll(session, people, started_on=date(2026, 9, 20))
    contact(session, people, "case_review", date(2026, 9, 28), minutes=20, by=people.consultant)
    contact(session, people, "initial_assessment", date(2026, 10, 3), minutes=40)
    assert rows_for(session, people, date(2026, 9, 1))["Pat Ient"].codes.codes == ()
    october = rows_for(session, people, date(2026, 10, 1))["Pat Ient"]
    assert october.initial and october.codes.codes == (("99492", 1),)


def test_a_void_contact_does_not_count(session, people):
    enroll(session, people, started_on=date(2026, 11, 1))
    made = contact(session, people, "initial_assessment", date(2026, 11, 3), minutes=40)
    reg.void_contact(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        contact_id=made.id,
        reason="Duplicate",
    )
    commit(session)
    assert "Pat Ient" not in rows_for(session, people, date(2026, 11, 1))


def test_a_new_episode_within_six_months_is_not_a_new_initial_month(session, people):
    first = enroll(session, people, started_on=date(2026, 6, 1))
    contact(session, people, "initial_assessment", date(2026, 6, 2), minutes=40)
    reg.change_status(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        episode_id=first.id,
        status="completed",
        reason="Remission",
        version=None,
    )
    commit(session)
    enroll(session, people, started_on=date(2026, 11, 22))
    contact(session, people, "initial_assessment", date(2026, 11, 22), minutes=40)
    november = rows_for(session, people, date(2026, 11, 1))["Pat Ient"]
    assert not november.initial and november.codes.codes == (("99493", 1),)


def test_a_new_episode_after_six_months_has_a_new_initial_month(session, people):
    first = enroll(session, people, started_on=date(2026, 3, 1))
    contact(session, people, "initial_assessment", date(2026, 3, 2), minutes=40)
    reg.change_status(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        episode_id=first.id,
        status="completed",
        reason="Remission",
        version=None,
    )
    commit(session)
    with __import__("pytest").raises(Exception, match="after the last episode ended"):
        enroll(session, people, started_on=date(2026, 11, 1))
    session.rollback()
    enroll(session, people, started_on=date(2026, 11, 22))
    contact(session, people, "initial_assessment", date(2026, 11, 22), minutes=40)
    assert rows_for(session, people, date(2026, 11, 1))["Pat Ient"].codes.codes == (("99492", 1),)


def test_the_pages_and_the_csv_for_a_script(client, session, people, sign_in):
    enroll(session, people, started_on=date(2026, 11, 1))
    contact(session, people, "initial_assessment", date(2026, 11, 3), minutes=40)
    sign_in("admin@test.example.org")
    page = client.get("/registry/minutes?month=2026-11").text
    assert "Pat Ient" in page and "99492" in page
    assert client.get("/registry/minutes?month=2026-13").status_code == 422
    client.cookies.clear()
    token = bearer(session, people.care_manager)
    csv_text = client.get("/registry/minutes.csv?month=2026-11", headers=token).text
    (row,) = list(csv.DictReader(io.StringIO(csv_text)))
    assert (row["patient"], row["care_manager_minutes"], row["codes"], row["month_kind"]) == (
        "Pat Ient",
        "40",
        "99492x1",
        "initial",
    )
    outsider = bearer(session, people.outsider)  # a clinician on other teams sees no row
    assert (
        len(
            client.get("/registry/minutes.csv?month=2026-11", headers=outsider)
            .text.strip()
            .splitlines()
        )
        == 1
    )
    patient = bearer(session, people.patient_user)
    assert client.get("/registry/minutes.csv?month=2026-11", headers=patient).status_code == 403


def test_the_program_view(client, session, people, clock, sign_in):
    extra = more_patients(session, people, 2)
    # Pat: week 12, PHQ-9 20, 15, then 8: response (against the first, by the latest), not
    # remission; contacted this month.
    enroll(session, people, started_on=date(2026, 8, 30))
    contact(session, people, "initial_assessment", date(2026, 8, 31))
    contact(session, people, "follow_up", date(2026, 11, 10))
    clock.advance(days=-80)
    phq9(session, people, 20)
    clock.advance(days=40)
    phq9(session, people, 15)
    clock.advance(days=40)
    phq9(session, people, 8)
    # Test0: week 12, PHQ-9 12 then 4: response and remission; not contacted in 30 days.
    enroll(session, people, extra[0], started_on=date(2026, 8, 30))
    contact(session, people, "initial_assessment", date(2026, 9, 1), patient=extra[0])
    clock.advance(days=-80)
    phq9(session, people, 12, patient=extra[0])
    clock.advance(days=80)
    phq9(session, people, 4, patient=extra[0])
    # Test1: enrolled this week, nothing yet.
    enroll(session, people, extra[1])
    view = reports.program_view(session, by=people.admin)
    assert view.open_episodes == 3 and view.by_status["active"] == 2
    assert view.by_status["awaiting_first_contact"] == 1
    assert (view.contacted_30_days, view.with_follow_up_measure) == (1, 2)
    assert (view.band_10_24, view.responded, view.remitted) == (2, 2, 1)
    assert view.caseloads == [("Cara Manager", 3)]
    sign_in("cara@test.example.org")
    page = client.get("/registry/program").text
    assert "Outcomes at 10 to 24 weeks" in page and "Cara Manager" in page
    sign_in("pat@patients.example.org")
    assert client.get("/registry/program").status_code == 403
