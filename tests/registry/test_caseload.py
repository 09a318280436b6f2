"""The caseload page: rows, flags with their rules, sorting and filtering that the page
remembers, CSV of what is shown (by session or API token), and a fixed number of queries
however many patients there are."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import event

from concord.registry.models import UserPreference
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.registry.conftest import contact, days_ago, enroll, more_patients, phq9

CM = "cara@test.example.org"


@pytest.fixture
def caseload(session, people, clock):
    """Three enrolled patients at different points."""
    extra = more_patients(session, people, 2)
    # Pat: enrolled 9 weeks ago, PHQ-9 18 then 16: not improving at week 9.
    enroll(session, people, started_on=days_ago(63))
    contact(session, people, "initial_assessment", days_ago(62), minutes=50)
    contact(session, people, "follow_up", days_ago(20), minutes=25)
    clock.advance(days=-62)
    phq9(session, people, 18)
    clock.advance(days=55)
    phq9(session, people, 16)
    clock.advance(days=7)
    # Test0: enrolled today, nothing yet.
    enroll(session, people, extra[0], program="anxiety")
    # Test1: enrolled 40 days ago; initial assessment 35 days ago; no follow-up since.
    enroll(session, people, extra[1], started_on=days_ago(40))
    contact(session, people, "initial_assessment", days_ago(35), patient=extra[1])
    return [people.patient, *extra]


def test_the_caseload_shows_each_row_with_its_flags_and_rules(
    client, session, people, caseload, sign_in
):
    sign_in(CM)
    page = client.get("/registry").text
    assert "3 patients on your caseload." in page
    for name in ("Pat Ient", "Test0 Person0", "Test1 Person1"):
        assert name in page
    assert "needs initial assessment" in page
    assert "No follow-up contact within 4 weeks (28 days) of the initial assessment" in page
    assert "Not 50% better at week 9" in page
    assert "no contact in 30 days" in page
    # The flags are the column after the name, as badges whose rule is the tooltip and is read
    # out to screen readers, so a screen shows many patients and what each needs.
    first_cells = re.findall(r'<th scope="row">.*?</th>\s*<td>(.*?)</td>', page, re.S)
    assert len(first_cells) == 3
    assert all('class="flag-list"' in cell for cell in first_cells)
    assert 'title="No follow-up contact within 4 weeks (28 days) of the initial assessment' in page
    assert '<span class="visually-hidden">: No follow-up contact within 4 weeks' in page


def test_sort_and_filter_and_the_page_remembers(client, session, people, caseload, sign_in):
    sign_in(CM)
    page = client.get("/registry?flags=needs_initial_assessment&sort=patient&descending=0").text
    assert "Test0 Person0" in page and "Test1 Person1" not in page and "Pat Ient" not in page
    saved = session.get(UserPreference, (people.care_manager.id, "registry.caseload"))
    assert saved.value["flags"] == ["needs_initial_assessment"]
    again = client.get("/registry").text  # no parameters: the saved choice
    assert "Test0 Person0" in again and "Test1 Person1" not in again
    cleared = client.get("/registry?flags=").text
    assert "Test1 Person1" in cleared and "Pat Ient" in cleared
    ordered = client.get("/registry?sort=weeks&descending=1").text
    assert (
        ordered.index("Pat Ient") < ordered.index("Test1 Person1") < ordered.index("Test0 Person0")
    )


def test_csv_of_what_is_shown_by_session_and_by_token(client, session, people, caseload, sign_in):
    sign_in(CM)
    shown = client.get("/registry/caseload.csv?flags=no_follow_up_4_weeks")
    assert shown.status_code == 200 and shown.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(shown.text)))
    assert [r["patient"] for r in rows] == ["Test1 Person1"]
    client.cookies.clear()
    token = bearer(session, people.care_manager)
    everything = client.get("/registry/caseload.csv?flags=", headers=token)
    rows = list(csv.DictReader(io.StringIO(everything.text)))
    assert {r["patient"] for r in rows} == {"Pat Ient", "Test0 Person0", "Test1 Person1"}
    pat = next(r for r in rows if r["patient"] == "Pat Ient")
    assert (pat["phq9_first"], pat["phq9_latest"], pat["weeks"]) == ("18", "16", "9")
    assert "not_improving" in pat["flags"].split()
    anonymous = client.get("/registry/caseload.csv")  # neither signed in nor a token
    assert anonymous.status_code in (401, 303) and "patient" not in anonymous.text


def test_nobody_else_sees_the_caseload(client, session, people, caseload, sign_in):
    sign_in("otto@test.example.org")  # a care manager on other teams
    page = client.get("/registry?scope=teams").text
    assert "Pat Ient" not in page and "0 patients" in page
    sign_in("theo@test.example.org")  # on Pat's team only
    page = client.get("/registry").text
    assert "Pat Ient" in page and "Test0 Person0" not in page
    for email in ("admin@test.example.org", "pat@patients.example.org"):
        sign_in(email)
        assert client.get("/registry").status_code == 403
    token = bearer(session, people.patient_user)
    client.cookies.clear()
    assert client.get("/registry/caseload.csv", headers=token).status_code == 403


def count_queries(engine_or_connection, fn):
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    target = engine_or_connection
    event.listen(target, "before_cursor_execute", before)
    try:
        fn()
    finally:
        event.remove(target, "before_cursor_execute", before)
    return statements


def test_the_number_of_queries_does_not_grow_with_the_caseload(
    client, session, people, connection, sign_in
):
    sign_in(CM)

    def add(count, start):
        for patient in more_patients(session, people, count, start=start):
            enroll(session, people, patient, started_on=days_ago(20))
            contact(session, people, "initial_assessment", days_ago(19), patient=patient)
            phq9(session, people, 12, patient=patient)

    add(3, 100)
    client.get("/registry?flags=")  # the first visit saves the view; count the ones after
    small = count_queries(connection, lambda: client.get("/registry?flags="))
    add(15, 200)
    large = count_queries(connection, lambda: client.get("/registry?flags="))
    assert "Test214 Person214" in client.get("/registry?flags=").text

    # The audit trail writes one row per patient shown (each is an access); every other
    # statement is the same however many patients there are.
    def reads(statements: list[str]) -> list[str]:
        return [
            q for q in statements if not q.lstrip().upper().startswith("INSERT INTO AUDIT_EVENT")
        ]

    assert len(reads(large)) == len(reads(small)), (len(reads(small)), len(reads(large)))
    commit(session)


def test_first_and_latest_scores_are_index_seeks_however_long_the_history(
    client, session, people, connection, caseload, sign_in
):
    """Each row's baseline and latest score is found by the index (patient, code, time), so a
    patient with years of weekly check-ins costs what a new one does. Filtering by instrument
    and score alone used only (patient, time) and read every score of the treatment."""
    sign_in(CM)
    captured: list[tuple[str, object]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if "(SELECT measure_observation.id" in statement and ") AS ends ON" in statement:
            captured.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", before)
    try:
        assert client.get("/registry").status_code == 200
    finally:
        event.remove(connection, "before_cursor_execute", before)
    assert captured
    statement, parameters = captured[0]
    if connection.dialect.name == "sqlite":
        plan = " ".join(
            str(row[-1])
            for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        )
        seeks = plan.count("ix_measure_observation_patient_code_time (patient_id=? AND code=?")
    else:
        # The test's tables are tiny, so PostgreSQL would scan them whole whatever the index;
        # with scans switched off, the plan shows which conditions the index can take.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        plan = "\n".join(
            row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        )
        seeks = plan.count("Index Cond: ((patient_id = episode.patient_id) AND ((code)::text =")
        connection.exec_driver_sql("RESET enable_seqscan")
        connection.exec_driver_sql("RESET enable_bitmapscan")
    # Two seeks (first, latest) for each instrument shown.
    assert seeks >= 4, plan


def test_a_program_judged_by_its_own_measure_shows_it_and_only_there(
    client, session, people, clock, sign_in
):
    """A substance-use episode is judged by AUDIT-C: its first and latest AUDIT-C scores are
    on its row. The caseload looks AUDIT-C up only for such episodes; a depression patient's
    AUDIT-C score is not on their row."""
    from concord.measures import service as measures
    from tests.factories import acc_for

    def audit_c(patient, answers):
        measures.record_response(
            session,
            access=acc_for(session, people.care_manager, patient),
            instrument_code="AUDIT-C",
            submission=measures.Submission(answers=answers, mode=measures.Mode.phone),
        )
        commit(session)

    drinker, other = more_patients(session, people, 2)
    enroll(session, people, drinker, program="substance_use", started_on=days_ago(30))
    enroll(session, people, other, started_on=days_ago(30))
    clock.advance(days=-28)
    audit_c(drinker, {"1": 4, "2": 2, "3": 3})  # 9
    audit_c(other, {"1": 1, "2": 0, "3": 0})  # 1
    clock.advance(days=27)
    audit_c(drinker, {"1": 2, "2": 1, "3": 1})  # 4
    clock.advance(days=1)
    sign_in(CM)
    rows = {r["patient"]: r for r in client.get("/api/v1/registry/caseload").json()}
    drinking = rows[drinker.display_name]
    assert drinking["main_instrument"] == "AUDIT-C"
    assert drinking["measures"]["AUDIT-C"]["first"]["value"] == 9
    assert drinking["measures"]["AUDIT-C"]["latest"]["value"] == 4
    assert "AUDIT-C" not in rows[other.display_name]["measures"]
    assert rows[other.display_name]["main_instrument"] == "PHQ-9"


def _headers(page: str) -> list[str]:
    head = page[page.index("<thead>") : page.index("</thead>")]
    cells = re.findall(r"<th[^>]*>(.*?)</th>", head, re.S)
    words = [" ".join(re.sub(r"<[^>]+>", " ", h).split()) for h in cells]
    return [re.sub(r" [▼▲] \(sorted, (highest|lowest) first\)", "", w) for w in words]


def test_only_the_programs_measures_have_columns(client, session, people, caseload, sign_in):
    """A depression caseload has PHQ-9 and no GAD-7 columns of dashes; an anxiety patient brings
    GAD-7; each row shows only its own program's measure (issue 16, item 11)."""
    sign_in(CM)
    everyone = client.get("/registry?flags=&programs=").text
    headers = _headers(everyone)
    assert [h for h in headers if "PHQ-9" in h or "GAD-7" in h] == [
        "PHQ-9 first → latest",
        "GAD-7 first → latest",
    ]
    depression = client.get("/registry?programs=depression").text
    assert "PHQ-9" in " ".join(_headers(depression))
    table = depression[depression.index("<table") : depression.index("</table>")]
    assert "GAD-7" not in table
    pat = re.search(r"Pat Ient</a>.*?</tr>", depression, re.S).group(0)
    assert "18 → 16" in pat and "11% lower" in pat


def test_the_columns_are_chosen_and_remembered(client, session, people, caseload, sign_in):
    sign_in(CM)
    page = client.get("/registry?programs=&columns=flags&columns=weeks").text
    assert _headers(page)[:3] == ["Patient", "Flags", "Weeks"] and len(_headers(page)) == 3
    saved = session.get(UserPreference, (people.care_manager.id, "registry.caseload"))
    assert saved.value["columns"] == ["flags", "weeks"]
    again = client.get("/registry").text
    assert len(_headers(again)) == 3
    assert 'name="columns" value="status"' in again  # it can be shown again
    chosen = ["flags", "weeks", "measures", "status", "contacts", "alerts", "review", "plan_review"]
    every = client.get("/registry?columns=" + "&columns=".join(chosen)).text
    assert len(_headers(every)) == 10  # two instruments


def test_the_sort_menu_speaks_plain_words(client, session, people, caseload, sign_in):
    sign_in(CM)
    page = client.get("/registry?programs=").text
    start = page.index('<select id="sort"')
    menu = page[start : page.index("</select>", start)]
    options = re.findall(r">([^<]+)</option>", menu)
    assert "PHQ-9: first score" in options and "Number of flags" in options
    assert not [o for o in options if "_" in o or re.search(r"\b(phq9|gad7|pcl5|auditc)\b", o)]
    # Only the instruments some patient is judged by are offered.
    assert not [o for o in options if "PCL-5" in o or "AUDIT-C" in o]
    people.care_manager.language = "es"
    commit(session)
    spanish = client.get("/registry").text
    assert "PHQ-9: primera puntuación" in spanish and "Número de indicadores" in spanish
