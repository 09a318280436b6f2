"""Every date shown is the organization's local date, in the reader's format, and scores that
are whole numbers are written without ".0".

The test organization is in America/Chicago. At 6:40 PM on Dec 6 there it is 00:40 on Dec 7
in UTC: a page that takes the UTC date dates the record a day late (issue 16, item 9)."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from concord import dates
from concord.careplans import service as plans
from concord.safety import plans as safety_plans
from tests.conftest import commit
from tests.factories import acc_for, create_plan
from tests.safety.conftest import phq9_total, respond

CM = "cara@test.example.org"
PATIENT = "pat@patients.example.org"
EVENING = datetime(2026, 12, 7, 0, 40, tzinfo=UTC)  # Dec 6, 6:40 PM in Chicago
ROOT = Path(__file__).resolve().parent.parent

# "Dec 7" in every format a page might use for the wrong day.
SHORT_DATE = re.compile(r"\b\d{1,2}/\d{1,2}/\d{2}\b")
WRONG_DAY = re.compile(r"Dec(ember)? 7|12/7/26|2026-12-07|7 dic|7 de diciembre")


class TestTheHelper:
    def test_today_is_the_organizations_date(self, clock, people):
        clock.set(EVENING)
        assert dates.org_today(people.org) == date(2026, 12, 6)
        assert dates.org_today("America/Chicago") == date(2026, 12, 6)
        assert dates.org_today("UTC") == date(2026, 12, 7)

    def test_an_instants_date_is_the_local_one(self, people):
        assert dates.local_date(EVENING, people.org) == date(2026, 12, 6)
        assert dates.local_date(date(2026, 12, 7), people.org) == date(2026, 12, 7)

    def test_one_format_per_locale(self, people):
        assert dates.format_date(EVENING, lang="en", where=people.org) == "Dec 6, 2026"
        assert dates.format_date(EVENING, lang="es", where=people.org) == "6 dic 2026"
        assert "6:40" in dates.format_datetime(EVENING, lang="en", where=people.org, format="short")

    @pytest.mark.parametrize(
        ("value", "lang", "text"),
        [
            (7.0, "en", "7"),
            (7, "en", "7"),
            (7.5, "en", "7.5"),
            (7.5, "es", "7,5"),
            (0.0, "en", "0"),
            (None, "en", ""),
        ],
    )
    def test_whole_scores_have_no_decimal(self, value, lang, text):
        assert dates.score(value, lang) == text


@pytest.fixture
def evening_record(session, people, clock):
    """A day's work finished at 6:40 PM in Chicago: a plan started and agreed, a check-in
    that raised an alert, a safety plan written."""
    clock.set(EVENING)
    plan = create_plan(session, people, activate=True)
    commit(session)
    plans.agree(
        session,
        access=acc_for(session, people.patient_user, people.patient),
        revision=plan.revision_number,
    )
    commit(session)
    respond(session, people, "PHQ-9", phq9_total(21, item9=0))
    commit(session)
    safety_plans.save(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        content={"warning_signs": ["Not sleeping"]},
        reason="Written together after the check-in",
        base_version=0,
    )
    commit(session)
    return plan


def _visible(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


class TestEveningPages:
    def test_team_pages_show_the_clinics_date(self, client, people, evening_record, sign_in):
        sign_in(CM)
        pid = people.patient.id
        for url in (
            f"/patients/{pid}",
            f"/patients/{pid}/plan",
            f"/patients/{pid}/plan/history",
            f"/patients/{pid}/measures",
            f"/patients/{pid}/safety",
            f"/patients/{pid}/safety-plan",
            "/patients",
        ):
            page = client.get(url)
            assert page.status_code == 200, url
            text = _visible(page.text)
            assert not WRONG_DAY.search(text), (url, WRONG_DAY.search(text).group(0))
            # One date format: "Dec 6, 2026" everywhere, never "12/6/26" beside it.
            assert not SHORT_DATE.search(text), (url, SHORT_DATE.search(text).group(0))
        assert "Dec 6, 2026" in _visible(client.get(f"/patients/{pid}/plan/history").text)
        safety = _visible(client.get(f"/patients/{pid}/safety").text)
        assert "Dec 6, 2026, 6:40 PM" in safety
        measures = _visible(client.get(f"/patients/{pid}/measures").text)
        assert "Dec 6, 2026" in measures and "21.0" not in measures

    def test_patient_pages_show_the_clinics_date(self, client, people, evening_record, sign_in):
        sign_in(PATIENT)
        for url in ("/my", "/my/plan", "/my/progress", "/my/safety-plan", "/my/access-log"):
            page = client.get(url)
            assert page.status_code == 200, url
            text = _visible(page.text)
            assert not WRONG_DAY.search(text), (url, WRONG_DAY.search(text).group(0))
        assert "Dec 6, 2026" in _visible(client.get("/my/plan").text)

    def test_the_safety_plan_pdf_shows_the_clinics_date(
        self, client, people, evening_record, sign_in
    ):
        sign_in(PATIENT)
        pdf = client.get("/my/safety-plan.pdf")
        assert pdf.status_code == 200
        text = "".join(
            page.get_textpage().get_text_range()
            for page in pdfium.PdfDocument(io.BytesIO(pdf.content))
        )
        assert "Dec 6, 2026" in text
        assert not WRONG_DAY.search(text)

    def test_the_chart_shows_the_locales_dates(self, client, people, evening_record, sign_in):
        sign_in(CM)
        page = client.get(f"/patients/{people.patient.id}/measures").text
        data = re.search(
            r'<script type="application/json" id="chart-PHQ-9">(.*?)</script>', page, re.S
        )
        assert data
        assert '"x": "Dec 6, 2026"' in data.group(1)
        assert '"y": 21,' in data.group(1) or '"y": 21}' in data.group(1)


# --- no sixth way of computing today -------------------------------------------------------

# Ways of taking a date that ignore the organization's zone. concord/dates.py is the one
# place allowed to turn an instant into a date; a date.today() or a .date() of an instant
# anywhere else dates an evening's record tomorrow.
FORBIDDEN = [
    (re.compile(r"\bdate\.today\(\)"), "date.today() is the server's date"),
    (re.compile(r"datetime\.(now|utcnow)\("), "datetime.now() bypasses the clock"),
    (re.compile(r"\bnow\(\)\.date\(\)"), "the UTC instant's date"),
    (re.compile(r"\.astimezone\([^)]*\)\.date\(\)"), "use concord.dates.local_date"),
    (re.compile(r"_at\.date\(\)"), "a stored instant's UTC date"),
    (re.compile(r"_at\|fdate\b.*\.date\(\)|\.date\(\)\.isoformat\(\)"), "an instant's UTC date"),
]
# Where the rule does not apply: the helper and the clock themselves; the synthetic data
# generator and the demo (they build data, they do not show it); FHIR (instants stay UTC).
ALLOWED = {
    "concord/dates.py",
    "concord/clock.py",
    "concord/synth.py",
    "concord/demo.py",
}


def test_no_other_way_of_computing_today():
    found = []
    for path in sorted((ROOT / "concord").rglob("*")):
        if path.suffix not in (".py", ".html") or "migrations" in path.parts:
            continue
        rel = path.relative_to(ROOT).as_posix()
        if rel in ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for pattern, why in FORBIDDEN:
                if pattern.search(line):
                    found.append(f"{rel}:{number}: {why}: {line.strip()}")
    assert found == []


def test_an_alert_email_gives_the_deadline_in_the_clinics_zone_and_format(
    session, factory, people, clock
):
    from concord.worker import escalate_job
    from tests.safety.test_escalation import safety_mail, urgent_alert

    create_plan(session, people, activate=True)
    commit(session)
    clock.set(EVENING)
    urgent_alert(session, people)
    clock.advance(hours=1)
    escalate_job(factory)
    (mail,) = safety_mail(session, "consultant@test.example.org")
    # 6:40 PM + 1 h + the next step's hour: 8:40 PM on Dec 6 in Chicago (02:40 on Dec 7 UTC).
    assert "Dec 6, 2026" in mail.body and "CST" in mail.body, mail.body
    assert not WRONG_DAY.search(mail.body)


# --- revision texts and scores in words -------------------------------------------------------


def test_a_revision_says_what_was_set_in_words_and_whole_numbers(client, session, people, sign_in):
    """'linked questionnaire from nothing to PHQ-9' and 'score from nothing to “5.0”' were
    how the history told of linking a goal to a score."""
    from concord.careplans.models import Goal
    from concord.careplans.schemas import GoalIn

    plan = create_plan(session, people, activate=True)
    commit(session)
    goal = session.query(Goal).filter(Goal.plan_id == plan.id).first()
    acc = acc_for(session, people.care_manager, people.patient)
    plans.update_item(
        session,
        access=acc,
        section="goals",
        item_id=goal.id,
        data=GoalIn(
            statement=goal.statement,
            category=goal.category,
            measure=goal.measure,
            target=goal.target,
            due_on=goal.due_on,
            measure_instrument="PHQ-9",
            measure_op="below",
            measure_value=5,
        ),
        version=goal.version,
        reason="Linked to the PHQ-9",
    )
    commit(session)
    sign_in(CM)
    for url in (
        f"/patients/{people.patient.id}/plan/history",
        f"/patients/{people.patient.id}/plan",
    ):
        text = _visible(client.get(url).text)
        assert "5.0" not in text, url
        assert "from nothing" not in text, url
    history = _visible(client.get(f"/patients/{people.patient.id}/plan/history").text)
    assert "linked questionnaire set to PHQ-9" in history
    assert "comparison set to below" in history
    assert "score set to 5" in history
    plan_page = _visible(client.get(f"/patients/{people.patient.id}/plan").text)
    assert "the score should be below 5." in plan_page
