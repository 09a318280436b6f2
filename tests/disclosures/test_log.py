"""The disclosure log (42 CFR Part 2, issue 18) and the § 2.32 notice.

The consent-aware decision (Decision.part2 / consent_id / emergency) lands in a parallel
change; until then these tests drive the listener with decisions that say part2=True, as that
decision will, by wrapping `concord.disclosure.decide`. The last test uses the real decision
and is skipped until clinics can be marked as Part 2 programs."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import replace
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from concord import disclosure
from concord.access import PatientAccess, Relation
from concord.categories import DataCategory
from concord.consents.labels import sentence
from concord.consents.models import Consent
from concord.disclosure import Decision, Disclosed
from concord.disclosures.log import part2_disclosed, record_disclosures
from concord.disclosures.models import DisclosureLog
from concord.disclosures.notice import STATEMENT, csv_with_notice, pdf_notice
from tests.conftest import commit

CM = "cara@test.example.org"
PATIENT = "pat@patients.example.org"
OTHER_PATIENT = "olive@patients.example.org"
OUTSIDER = "otto@test.example.org"
FAMILY = "fay@family.example.org"


def a_consent(session, people) -> uuid.UUID:
    """Any consent of the patient's (the log names it; its terms do not matter here)."""
    return session.scalar(select(Consent.id).where(Consent.patient_id == people.patient.id))


def record(category: DataCategory):
    return SimpleNamespace(data_category=category)


@pytest.fixture
def part2(monkeypatch, session, people):
    """Every permitted decision says: Part 2 records, leaving the program under a consent."""
    consent_id = a_consent(session, people)
    real = disclosure.decide

    def decide(access, category, purpose=None, **kw):
        answer = real(access, category, purpose, **kw)
        return replace(answer, part2=True, consent_id=consent_id) if answer.permit else answer

    monkeypatch.setattr(disclosure, "decide", decide)
    return consent_id


def rows(session):
    session.flush()
    return list(session.scalars(select(DisclosureLog).order_by(DisclosureLog.category)))


def team(session, people, user=None) -> PatientAccess:
    return PatientAccess(user or people.therapist, people.patient, Relation.team)


def test_one_row_per_request_recipient_and_category_with_the_consent(session, people, part2):
    acc = team(session, people)
    su, mh = DataCategory.substance_use, DataCategory.mental_health
    disclosure.filter_records(
        session, acc, [record(su), record(su), record(mh)], object_type="QuestionnaireResponse"
    )
    disclosure.filter_records(session, acc, [record(su)], object_type="Observation")
    disclosure.check_record(session, acc, record(su), object_type="Observation")
    got = rows(session)
    assert [(r.category, r.count) for r in got] == [("mental_health", 1), ("substance_use", 4)]
    su_row = got[1]
    assert su_row.kinds == {"QuestionnaireResponse": 2, "Observation": 2}
    assert su_row.consent_id == part2 and not su_row.emergency
    assert su_row.recipient_id == people.therapist.id and su_row.patient_id == people.patient.id
    assert su_row.purpose == "treatment"
    assert su_row.request_id == got[0].request_id
    assert part2_disclosed(session)
    # The next request (a new transaction) writes rows of its own.
    commit(session)
    disclosure.filter_records(session, acc, [record(su)], object_type="Observation")
    assert session.scalar(select(func.count()).select_from(DisclosureLog)) == 2 + 1


def test_a_second_recipient_gets_rows_of_their_own(session, people, part2):
    for user in (people.therapist, people.consultant):
        disclosure.filter_records(
            session,
            team(session, people, user),
            [record(DataCategory.substance_use)],
            object_type="Observation",
        )
    assert {r.recipient_id for r in rows(session)} == {people.therapist.id, people.consultant.id}


def test_nothing_is_logged_inside_the_program_or_for_other_data(session, people):
    acc = team(session, people)
    # Today's decision: nothing is Part 2 (no clinic is a Part 2 program yet).
    disclosure.filter_records(
        session, acc, [record(DataCategory.substance_use)], object_type="Observation"
    )
    disclosure.check_record(session, acc, record(DataCategory.care_plan), object_type="CarePlan")
    # A decision for a read inside the program (part2=False) and a refused one.
    record_disclosures(
        session,
        acc,
        [
            Disclosed(
                "Observation", DataCategory.substance_use, Decision(True, "permitted"), 3, None
            ),
            Disclosed(
                "Observation", DataCategory.substance_use, Decision(False, "x", part2=True), 3, None
            ),
        ],
    )
    assert rows(session) == []
    assert not part2_disclosed(session)


def test_an_emergency_disclosure_is_logged_without_a_consent(session, people):
    record_disclosures(
        session,
        team(session, people),
        [
            Disclosed(
                "QuestionnaireResponse",
                DataCategory.substance_use,
                Decision(True, "emergency", emergency=True),
                2,
                None,
            )
        ],
    )
    (row,) = rows(session)
    assert row.emergency and row.consent_id is None and row.count == 2


def _log_one(session, people, monkeypatch):
    """One disclosure to the consultant; then the decision is today's again (the pages the
    test opens disclose nothing more)."""
    acc = team(session, people, people.consultant)
    disclosure.filter_records(
        session, acc, [record(DataCategory.substance_use)] * 3, object_type="QuestionnaireResponse"
    )
    commit(session)
    monkeypatch.undo()


def test_the_patient_reads_it_in_plain_words(client, session, people, part2, sign_in, monkeypatch):
    _log_one(session, people, monkeypatch)
    sign_in(PATIENT)
    page = client.get("/my/disclosures")
    assert page.status_code == 200, page.text
    assert "Who received my protected records" in page.text
    assert (
        f"{people.consultant.name} received your substance-use treatment records: 3 "
        "(questionnaire answers)." in page.text
    )
    assert "Under a consent you gave." in page.text
    # Linked from the consents page and the access log.
    assert 'href="/my/disclosures"' in client.get("/my/consents").text
    assert 'href="/my/disclosures"' in client.get("/my/access-log").text


def test_the_page_in_spanish(client, session, people, part2, sign_in, monkeypatch):
    _log_one(session, people, monkeypatch)
    people.patient_user.language = "es"
    commit(session)
    sign_in(PATIENT)
    page = client.get("/my/disclosures")
    assert "Quién recibió mis expedientes protegidos" in page.text
    assert "Bajo un consentimiento que usted dio." in page.text


def test_the_team_sees_it_on_the_consents_tab_and_as_json(
    client, session, people, part2, sign_in, monkeypatch
):
    _log_one(session, people, monkeypatch)
    sign_in(CM)
    page = client.get(f"/patients/{people.patient.id}/consents")
    assert "Who received the protected records" in page.text
    assert f"{people.consultant.name} received" in page.text
    (entry,) = client.get(f"/api/v1/patients/{people.patient.id}/disclosures").json()
    assert entry["category"] == "substance_use" and entry["count"] == 3
    assert entry["consent_id"] == str(part2) and entry["emergency"] is False
    assert entry["kinds"] == {"QuestionnaireResponse": 3}


def test_nobody_else_sees_it(client, session, people, part2, sign_in, monkeypatch):
    _log_one(session, people, monkeypatch)
    for email in (OUTSIDER, FAMILY, OTHER_PATIENT):
        sign_in(email)
        api = client.get(f"/api/v1/patients/{people.patient.id}/disclosures")
        assert api.status_code == 404, email
        assert people.consultant.name not in api.text
        mine = client.get("/my/disclosures")
        assert people.consultant.name not in mine.text, email
        if email != OTHER_PATIENT:
            assert mine.status_code == 404, email


def _written_safety_plan(client, people, sign_in):
    from tests.safety.test_plans import save_as

    token = sign_in(CM)
    done = save_as(client, token, f"/patients/{people.patient.id}/safety-plan", 0, reason="x")
    assert done.status_code == 303, done.text


def test_the_footer_carries_the_notice_only_when_part2_records_were_shown(
    client, session, people, sign_in, monkeypatch
):
    _written_safety_plan(client, people, sign_in)
    url = f"/patients/{people.patient.id}/safety"
    plain = client.get(url)
    assert plain.status_code == 200 and STATEMENT not in plain.text
    assert "data-part2-notice" not in plain.text
    consent_id = a_consent(session, people)
    real = disclosure.decide
    monkeypatch.setattr(
        disclosure,
        "decide",
        lambda a, c, p=None, **kw: replace(real(a, c, p, **kw), part2=True, consent_id=consent_id),
    )
    shown = client.get(url)
    assert "data-part2-notice" in shown.text and STATEMENT in shown.text
    assert shown.text.index(STATEMENT) > shown.text.index("<footer>")


def test_the_pdf_carries_the_notice_only_with_part2_records(
    client, session, people, sign_in, monkeypatch
):
    import concord.safety.routes as safety_routes

    _written_safety_plan(client, people, sign_in)
    seen: list[str | None] = []
    real_render = safety_routes.render_pdf

    def render(**kwargs):
        seen.append(kwargs.get("notice"))
        return real_render(**kwargs)

    monkeypatch.setattr(safety_routes, "render_pdf", render)
    url = f"/patients/{people.patient.id}/safety-plan.pdf"
    assert client.get(url).status_code == 200
    consent_id = a_consent(session, people)
    real = disclosure.decide
    monkeypatch.setattr(
        disclosure,
        "decide",
        lambda a, c, p=None, **kw: replace(real(a, c, p, **kw), part2=True, consent_id=consent_id),
    )
    pdf = client.get(url)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert seen[0] is None and STATEMENT in (seen[1] or "")
    # § 2.32(b): the consent explained, a paragraph after the notice.
    notice, *explained = (seen[1] or "").splitlines()
    assert STATEMENT in notice and len(explained) == 1 and "42 CFR 2.32(b)" in explained[0]
    assert sentence(session.get(Consent, consent_id), "en") in explained[0]
    session.expire_all()
    (row,) = session.scalars(select(DisclosureLog))
    assert row.door == "export" and row.kinds == {"SafetyPlan": 1}


def test_a_csv_carries_the_notice_only_with_part2_records(session, people, part2):
    body = "a,b\n1,2\n"
    assert csv_with_notice(session, body) == body
    assert pdf_notice(session) is None
    disclosure.filter_records(
        session, team(session, people), [record(DataCategory.substance_use)], object_type="X"
    )
    stamped = csv_with_notice(session, body, "es")
    first, explained, *rest = list(csv.reader(io.StringIO(stamped)))
    assert STATEMENT in first[0] and rest == [["a", "b"], ["1", "2"]]
    # § 2.32(b): the consent the records left under, explained in Spanish on the next line.
    consent = session.get(Consent, part2)
    (line,) = explained
    assert line.startswith("Compartido con usted según el consentimiento del paciente")
    assert f"«{sentence(consent, 'es')}»" in line
    assert line.endswith(f"Leer el consentimiento: /patients/{people.patient.id}/consents")
    assert rows(session)[0].door == "export"
    assert STATEMENT in (pdf_notice(session) or "")
    assert sentence(consent, "en") in (pdf_notice(session) or "")


def test_the_caseload_csv_has_no_notice_without_part2_records(client, people, sign_in):
    sign_in(CM)
    answer = client.get("/registry/caseload.csv?scope=teams")
    assert answer.status_code == 200 and STATEMENT not in answer.text


def test_with_the_real_decision_a_pcp_reading_under_consent_is_logged(client, session, people):
    """The real decision (ADR 0021): the patient's clinic is a Part 2 program and the PCP at
    another clinic reads the AUDIT-C through FHIR. Without consent nothing is disclosed and
    nothing logged; under the patient's TPO consent naming them one row per request names
    that consent; the program's own care manager reading it writes none."""
    from tests.part2.test_part2 import _observations, _tpo, make_world

    pcp, _made = make_world(session, people)
    before = len(rows(session))
    _observations(client, session, people.care_manager, people.patient.id)
    assert len(rows(session)) == before  # inside the program
    _body, codes = _observations(client, session, pcp, people.patient.id)
    assert "75626-2" not in codes and len(rows(session)) == before  # withheld: no disclosure
    consent = _tpo(session, people, pcp)
    _body, codes = _observations(client, session, pcp, people.patient.id)
    assert "75626-2" in codes
    logged = rows(session)[before:]
    assert logged and {r.consent_id for r in logged} == {consent.id}
    assert {r.recipient_id for r in logged} == {pcp.id}
