"""The decision pages as people use them: the patient at home in the portal, the clinician in
the visit, the outcome into the plan; errors name the field and write nothing; a repeated
submission is recorded once; Spanish; nobody else sees a thing."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from concord.careplans.models import Intervention
from concord.decisions.models import Decision
from tests.conftest import commit
from tests.factories import create_plan

CM = "cara@test.example.org"
PATIENT = "pat@patients.example.org"
OUTSIDER = "otto@test.example.org"
AID = "opioid-use-medications"


@pytest.fixture
def plan(session, people):
    created = create_plan(session, people, activate=True)
    commit(session)
    return created


def count(session, model):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def post(client, url, token, **data):
    return client.post(url, data={"csrf_token": token, "idem": uuid.uuid4().hex, **data})


def start_at_home(client, sign_in):
    token = sign_in(PATIENT)
    listing = client.get("/my/decisions")
    assert "Medications for opioid use disorder" in listing.text or "opioid" in listing.text
    started = post(client, "/my/decisions", token, aid=AID)
    assert started.status_code == 303
    return token, started.headers["location"]


def test_the_patient_works_through_an_aid_and_the_team_records_the_decision(
    client, people, plan, sign_in, session
):
    token, url = start_at_home(client, sign_in)
    page = client.get(url)
    assert page.status_code == 200
    for attribute in ("What it involves", "How well it works", "If I stop"):
        assert attribute in page.text
    assert "Methadone" in page.text and "Buprenorphine" in page.text
    saved = post(
        client, f"{url}/values", token, values=["fewer_clinic_visits_placeholder"], leaning="unsure"
    )
    assert saved.status_code == 422 and "must be among the things listed" in saved.text
    decision = session.scalar(select(Decision))
    aid_values = [v for v in page.context["aid"].values]
    chosen = [aid_values[0].id, aid_values[1].id]
    saved = post(client, f"{url}/values", token, values=chosen, leaning="buprenorphine")
    assert saved.status_code == 303
    page = client.get(saved.headers["location"])
    assert "How the options fit what matters to you" in page.text
    assert aid_values[0].fits["methadone"].why["en"].split(".")[0] in page.text
    post(client, f"{url}/question", token, question="Can I still work night shifts?")
    missing = post(client, f"{url}/sure", token, sure_sure="yes")
    assert missing.status_code == 422 and "answer yes or no" in missing.text
    post(
        client,
        f"{url}/sure",
        token,
        sure_sure="no",
        sure_understand="yes",
        sure_risk_benefit="yes",
        sure_encouragement="yes",
    )
    session.expire_all()
    decision = session.scalar(select(Decision))
    assert decision.sure_score == 3 and decision.leaning == "buprenorphine"

    # The clinician opens it before the visit and sees what the patient said.
    token = sign_in(CM)
    team_url = f"/patients/{people.patient.id}/decisions/{decision.id}"
    listing = client.get(f"/patients/{people.patient.id}/decisions")
    assert "1 waiting" in listing.text and "3/4" in listing.text
    page = client.get(team_url)
    assert "Can I still work night shifts?" in page.text
    assert "not ready to decide yet" in page.text and "feeling sure about the choice" in page.text
    bad = post(
        client, f"{team_url}/record", token, choice="buprenorphine", decided_on="2026-01-01x"
    )
    assert bad.status_code == 422 and "must be a date written as YYYY-MM-DD" in bad.text
    bad = post(
        client,
        f"{team_url}/record",
        token,
        choice="buprenorphine",
        considered=["buprenorphine", "methadone"],
        reasons="",
        decided_on=page.context["today"].isoformat(),
    )
    assert bad.status_code == 422 and "is required" in bad.text
    assert count(session, Intervention) == 0
    form = {
        "choice": "buprenorphine",
        "considered": ["buprenorphine", "methadone", "naltrexone_er"],
        "reasons": "I can take it at home and keep my job.",
        "decided_on": page.context["today"].isoformat(),
        "clinician_ids": [str(people.consultant.id)],
        "idem": uuid.uuid4().hex,
        "csrf_token": token,
    }
    first = client.post(f"{team_url}/record", data=form)
    again = client.post(f"{team_url}/record", data=form)  # the same submission, sent twice
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert count(session, Intervention) == 1
    done = client.get(first.headers["location"])
    assert "The decision is recorded." in done.text and "I can take it at home" in done.text
    plan_page = client.get(f"/patients/{people.patient.id}/plan")
    assert "buprenorphine" in plan_page.text.lower()
    assert f"/patients/{people.patient.id}/decisions/{decision.id}" in plan_page.text

    # The patient sees the outcome, and it is in their plan to agree to.
    sign_in(PATIENT)
    mine = client.get(url)
    assert "I can take it at home and keep my job." in mine.text
    assert "See it in my care plan" in mine.text
    assert "buprenorphine" in client.get("/my/plan").text.lower()


def test_the_aid_is_in_spanish_for_a_spanish_speaker(client, people, plan, sign_in, session):
    people.patient_user.language = "es"
    commit(session)
    token, url = start_at_home(client, sign_in)
    page = client.get(url)
    assert '<html lang="es">' in page.text
    assert "Metadona" in page.text or "metadona" in page.text
    assert "What it involves" not in page.text


def test_nobody_else_sees_a_decision(client, people, plan, sign_in, session):
    _, url = start_at_home(client, sign_in)
    decision_id = url.rsplit("/", 1)[1]
    sign_in(OUTSIDER)
    assert client.get(f"/patients/{people.patient.id}/decisions").status_code == 404
    assert client.get(f"/patients/{people.patient.id}/decisions/{decision_id}").status_code == 404
    sign_in("olive@patients.example.org")
    assert client.get(f"/my/decisions/{decision_id}").status_code == 404


def test_the_collaborate_report_waits_for_enough_answers(client, people, sign_in):
    sign_in(CM)
    page = client.get("/decisions/collaborate")
    assert page.status_code == 200
    assert "25" in page.text
    sign_in(PATIENT)
    assert client.get("/decisions/collaborate").status_code == 404


def test_marking_a_question_answered_with_a_bad_index_is_a_clear_error(
    client, people, plan, sign_in, session
):
    token, url = start_at_home(client, sign_in)
    post(client, f"{url}/question", token, question="Is it safe with my other pills?")
    decision_id = url.rsplit("/", 1)[1]
    token = sign_in(CM)
    team_url = f"/patients/{people.patient.id}/decisions/{decision_id}"
    for index in ("abc", "", "7"):
        bad = post(client, f"{team_url}/answered", token, index=index)
        assert bad.status_code == 422 and "No such question." in bad.text
    ok = post(client, f"{team_url}/answered", token, index="0")
    assert ok.status_code == 303
    session.expire_all()
    assert session.scalar(select(Decision)).questions[0]["answered"] is True


def test_the_aids_for_the_patients_episode_come_first(client, session, people, sign_in):
    """Alphabetically, "Changing your drinking" came first for everyone (issue 16, item 12):
    an anxiety patient is offered the anxiety aid first, on their page and the team's."""
    from tests.conftest import commit
    from tests.registry.conftest import enroll

    enroll(session, people, program="anxiety")
    commit(session)
    sign_in("pat@patients.example.org")
    mine = client.get("/my/decisions").text
    assert mine.index("Treating GAD") < mine.index("Changing your drinking")
    sign_in("cara@test.example.org")
    team = client.get(f"/patients/{people.patient.id}/decisions").text
    assert team.index("Treating GAD") < team.index("Changing your drinking")


def test_an_aid_names_only_known_programs(tmp_path):
    import pytest

    from concord.decisions.aids import AidError, load_file

    source = (
        __import__("pathlib").Path(__file__).parents[2]
        / "concord/decisions/aids/anxiety-treatment.yaml"
    ).read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(source.replace("programs: [anxiety]", "programs: [worry]"))
    with pytest.raises(AidError, match="programs: worry is not one of"):
        load_file(bad)


def test_the_sure_check_says_what_each_item_asks_about(client, people, plan, sign_in):
    """Without the clinic's licensed SURE wording the items' names alone ("Risk-benefit ratio")
    were shown as if they were questions (issue 16, item 12): each now says what it is about."""
    token, url = start_at_home(client, sign_in)
    page = client.get(url).text
    sure = page[page.index('id="sure"') :]
    assert "For each, answer yes if it is true for you now." in sure
    assert "Risk-benefit ratio" in sure
    assert 'Risk-benefit ratio<span class="hint">: being clear about what matters most' in sure
