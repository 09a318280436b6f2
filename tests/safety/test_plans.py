"""Safety plans: written together and versioned, open to the patient at any hour, shared only
with the people the patient chooses (who see nothing else), and a one-page pocket PDF."""

from __future__ import annotations

import io
import uuid

import pypdfium2 as pdfium
import pytest
from sqlalchemy import select

from concord.audit.models import AuditEvent
from concord.safety import plans as safety_plans
from concord.safety.models import SafetyPlan, SafetyPlanShare, SafetyPlanVersion
from concord.safety.pdf import render
from tests.conftest import commit
from tests.factories import acc_for

CM = "cara@test.example.org"
PATIENT = "pat@patients.example.org"
FAY = "fay@family.example.org"  # may see the care plan
NICO = "nico@family.example.org"  # may not see the care plan

PLAN_FORM = {
    "warning_signs": "I stop answering my phone\nI can't sleep for days",
    "coping": "Walk the dog\nHot shower, then tea",
    "distractions.name": ["The library on 5th", ""],
    "distractions.contact": ["", ""],
    "people.name": ["Maya (sister)", "Jordan", ""],
    "people.contact": ["555-0142", "555-0199", ""],
    "professionals.name": ["Cara Manager, care manager", ""],
    "professionals.contact": ["555-0100", ""],
    "safe_environment": "Maya keeps my extra medication\nNaloxone in the kitchen drawer",
    "reasons": "My daughter\nSeeing the ocean again",
}


def save_as(client, token, url, version, **extra):
    data = {"csrf_token": token, "idem": uuid.uuid4().hex, "base_version": str(version)}
    data.update(PLAN_FORM)
    data.update(extra)
    return client.post(url, data=data)


@pytest.fixture
def written(client, session, people, sign_in):
    token = sign_in(CM)
    response = save_as(
        client, token, f"/patients/{people.patient.id}/safety-plan", 0, reason="Written together"
    )
    assert response.status_code == 303, response.text
    return session.scalar(select(SafetyPlan))


class TestWritingTogether:
    def test_the_clinician_writes_it_with_a_reason(self, client, session, people, written):
        assert written.version == 1
        assert written.content["people"] == [
            {"name": "Maya (sister)", "contact": "555-0142"},
            {"name": "Jordan", "contact": "555-0199"},
        ]
        assert written.content["warning_signs"] == [
            "I stop answering my phone",
            "I can't sleep for days",
        ]
        (v1,) = session.scalars(select(SafetyPlanVersion)).all()
        assert (v1.author_id, v1.author_party, v1.reason) == (
            people.care_manager.id,
            "clinician",
            "Written together",
        )

    def test_a_clinician_must_say_why(self, client, session, people, sign_in):
        token = sign_in(CM)
        refused = save_as(client, token, f"/patients/{people.patient.id}/safety-plan", 0, reason="")
        assert refused.status_code == 422 and "say why it changed" in refused.text
        assert "I stop answering my phone" in refused.text  # nothing typed is lost
        assert session.scalars(select(SafetyPlan)).all() == []

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"coping": "x" * 301}, "coping[1]"),
            ({"people.name": ["", ""], "people.contact": ["555-0142", ""]}, "people[1].name"),
            ({"people.contact": ["5" * 101, "", ""]}, "people[1].contact"),
        ],
    )
    def test_bad_entries_are_named_and_nothing_is_saved(
        self, client, session, people, sign_in, change, field
    ):
        token = sign_in(CM)
        refused = save_as(
            client, token, f"/patients/{people.patient.id}/safety-plan", 0, reason="r", **change
        )
        assert refused.status_code == 422 and field in refused.text
        assert session.scalars(select(SafetyPlan)).all() == []

    def test_the_patient_changes_it_in_their_words(self, client, session, people, written, sign_in):
        token = sign_in(PATIENT)
        page = client.get("/my/safety-plan")
        assert "I stop answering my phone" in page.text and "988" in page.text
        changed = save_as(
            client,
            token,
            "/my/safety-plan",
            1,
            reasons="My daughter\nSeeing the ocean again\nMy dog, Biscuit",
        )
        assert changed.status_code == 303
        session.refresh(written)
        assert written.version == 2 and "My dog, Biscuit" in written.content["reasons"]
        v2 = session.scalar(select(SafetyPlanVersion).where(SafetyPlanVersion.version == 2))
        assert (v2.author_id, v2.author_party) == (people.patient_user.id, "patient")

    def test_a_save_over_someone_elses_is_refused_and_keeps_what_was_typed(
        self, client, session, people, written, sign_in
    ):
        token = sign_in(PATIENT)
        save_as(client, token, "/my/safety-plan", 1, coping="Walk the dog\nCall Maya")
        token = sign_in(CM)
        stale = save_as(
            client,
            token,
            f"/patients/{people.patient.id}/safety-plan",
            1,
            reason="Reviewed",
            coping="Walk the dog\nDraw",
        )
        assert stale.status_code == 409
        assert "Someone else saved the safety plan" in stale.text and "Draw" in stale.text
        session.refresh(written)
        assert written.version == 2 and written.content["coping"] == ["Walk the dog", "Call Maya"]

    def test_the_same_submission_twice_is_saved_once(self, client, session, people, sign_in):
        token = sign_in(CM)
        data = {"csrf_token": token, "idem": uuid.uuid4().hex, "base_version": "0", "reason": "r"}
        data.update(PLAN_FORM)
        first = client.post(f"/patients/{people.patient.id}/safety-plan", data=data)
        second = client.post(f"/patients/{people.patient.id}/safety-plan", data=data)
        assert first.status_code == second.status_code == 303
        assert len(session.scalars(select(SafetyPlanVersion)).all()) == 1

    def test_saving_without_a_change_adds_no_version(
        self, client, session, people, written, sign_in
    ):
        token = sign_in(CM)
        save_as(client, token, f"/patients/{people.patient.id}/safety-plan", 1, reason="Looked")
        assert len(session.scalars(select(SafetyPlanVersion)).all()) == 1

    def test_every_version_can_be_read_back(self, client, session, people, written, sign_in):
        token = sign_in(PATIENT)
        save_as(client, token, "/my/safety-plan", 1, coping="Something new")
        sign_in(CM)
        page = client.get(f"/patients/{people.patient.id}/safety-plan")
        assert "Version 2" in page.text and "Version 1" in page.text
        old = client.get(f"/patients/{people.patient.id}/safety-plan/versions/1").text
        assert "Hot shower, then tea" in old and "earlier version" in old
        assert (
            client.get(f"/patients/{people.patient.id}/safety-plan/versions/9").status_code == 404
        )

    def test_it_is_on_the_portals_first_page(self, client, people, written, sign_in):
        sign_in(PATIENT)
        home = client.get("/my").text
        assert 'href="/my/safety-plan"' in home and "Open my safety plan" in home


class TestWhoMaySee:
    def test_a_clinician_off_the_team_sees_no_plan(self, client, people, written, sign_in):
        sign_in("otto@test.example.org")
        for path in ("/safety-plan", "/safety-plan.pdf", "/safety-plan/versions/1", "/safety"):
            assert client.get(f"/patients/{people.patient.id}{path}").status_code == 404

    def test_nobody_off_the_team_can_write_it(self, client, session, people, written, sign_in):
        token = sign_in("otto@test.example.org")
        response = save_as(
            client, token, f"/patients/{people.patient.id}/safety-plan", 1, reason="x"
        )
        assert response.status_code == 404
        session.refresh(written)
        assert written.version == 1

    def test_family_see_it_only_when_the_patient_chooses(
        self, client, session, people, written, sign_in
    ):
        sign_in(NICO)
        assert client.get(f"/shared/{people.patient.id}/safety-plan").status_code == 404
        token = sign_in(PATIENT)
        page = client.get("/my/safety-plan/people").text
        assert "Nico Noconsent" in page and "Fay Family" in page
        nico_link = session.scalar(
            select(SafetyPlanShare.related_person_id).where(False)
        )  # none yet
        assert nico_link is None
        from concord.patients.models import RelatedPerson

        nico = session.scalar(
            select(RelatedPerson).where(RelatedPerson.user_id == people.family_no_consent.id)
        )
        shared = client.post(
            f"/my/safety-plan/people/{nico.id}", data={"csrf_token": token, "share": "yes"}
        )
        assert shared.status_code == 303
        consent = session.scalar(
            select(AuditEvent).where(
                AuditEvent.action == "consent", AuditEvent.object_type == "SafetyPlan"
            )
        )
        assert consent.actor_id == people.patient_user.id
        sign_in(NICO)
        # Only the safety plan: the list leads straight to it, the care plan stays closed.
        assert (
            client.get("/shared").headers["location"] == f"/shared/{people.patient.id}/safety-plan"
        )
        plan_page = client.get(f"/shared/{people.patient.id}/safety-plan")
        assert plan_page.status_code == 200 and "I stop answering my phone" in plan_page.text
        assert client.get(f"/shared/{people.patient.id}").status_code == 404
        assert client.get(f"/shared/{people.patient.id}/safety-plan.pdf").status_code == 200
        assert client.get(f"/patients/{people.patient.id}/safety-plan").status_code == 404
        # The patient changes their mind.
        token = sign_in(PATIENT)
        client.post(f"/my/safety-plan/people/{nico.id}", data={"csrf_token": token, "share": "no"})
        sign_in(NICO)
        assert client.get(f"/shared/{people.patient.id}/safety-plan").status_code == 404

    def test_the_team_records_the_patients_choice(self, session, people, written):
        from concord.patients.models import RelatedPerson

        fay = session.scalar(select(RelatedPerson).where(RelatedPerson.user_id == people.family.id))
        safety_plans.set_share(
            session,
            access=acc_for(session, people.therapist, people.patient),
            related_person_id=fay.id,
            share=True,
        )
        commit(session)
        assert [p.id for p in safety_plans.shared_with_me(session, people.family)] == [
            people.patient.id
        ]

    def test_a_patient_cannot_share_someone_elses_person(
        self, client, session, people, written, sign_in
    ):
        from concord.patients.models import RelatedPerson

        fay = session.scalar(select(RelatedPerson).where(RelatedPerson.user_id == people.family.id))
        token = sign_in("olive@patients.example.org")
        response = client.post(
            f"/my/safety-plan/people/{fay.id}", data={"csrf_token": token, "share": "yes"}
        )
        assert response.status_code == 404
        assert session.scalars(select(SafetyPlanShare)).all() == []


# --- the pocket PDF, checked as a picture ------------------------------------------------------


def pages_of(pdf: bytes) -> list:
    return [page for page in pdfium.PdfDocument(io.BytesIO(pdf))]


def ink(image, box) -> float:
    """The share of pixels in `box` that are not white."""
    crop = image.convert("L").crop(box)
    histogram = crop.histogram()  # counts of each grey level, 0 (black) to 255 (white)
    return sum(histogram[:200]) / (crop.width * crop.height)


class TestThePdf:
    def test_it_is_one_pocket_sized_page_with_the_plan_on_it(
        self, client, people, written, sign_in, tmp_path
    ):
        sign_in(PATIENT)
        response = client.get("/my/safety-plan.pdf")
        assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
        assert response.headers["cache-control"] == "no-store"
        (page,) = pages_of(response.content)
        width, height = page.get_size()
        assert (round(width), round(height)) == (298, 420)  # A6: 105 x 148 mm
        text = page.get_textpage().get_text_range()
        for expected in (
            "My safety plan",
            "Signs that a crisis may be starting",
            "Maya (sister): 555-0142",
            "988",
            "Naloxone in the kitchen drawer",
            "My reasons for living",
            "Pat",
        ):
            assert expected in text, expected
        image = page.render(scale=2).to_pil()
        image.save(tmp_path / "plan.png")
        w, h = image.size
        assert ink(image, (0, 0, w, h // 8)) > 0.02  # the title is drawn at the top
        assert ink(image, (0, h // 3, w, 2 * h // 3)) > 0.02  # and the plan fills the page
        assert ink(image, (0, 0, w // 40, h)) == 0  # nothing runs off the left edge

    def test_a_full_everyday_plan_fits_one_page(self):
        # Four entries of a short sentence in every step: more than most written plans.
        full = {
            s.key: (
                [f"{s.key} {i}: something that helps me a lot" for i in range(4)]
                if s.kind == "lines"
                else [
                    {"name": f"Someone I trust number {i}", "contact": "555-0100"} for i in range(4)
                ]
            )
            for s in safety_plans.SECTIONS
        }
        pdf = render(
            lang="en",
            name="Pat",
            meta="version 3",
            content=full,
            crisis=[
                {"name": "988 Suicide & Crisis Lifeline", "contact": "Call or text 988"},
                {"name": "If you are in danger now", "contact": "Call 911"},
            ],
        )
        assert len(pages_of(pdf)) == 1

    def test_a_very_long_plan_goes_on_to_more_pages_rather_than_shrinking_past_reading(self):
        long = {
            s.key: (
                [f"{s.key} entry {i} " + "words " * 40 for i in range(20)]
                if s.kind == "lines"
                else [
                    {"name": f"Person {i} " + "name " * 20, "contact": "555-0100"}
                    for i in range(20)
                ]
            )
            for s in safety_plans.SECTIONS
        }
        pdf = render(
            lang="en",
            name="Pat",
            meta="version 9",
            content=long,
            crisis=[{"name": "988 Suicide & Crisis Lifeline", "contact": "Call or text 988"}],
        )
        pages = pages_of(pdf)
        assert len(pages) > 1
        text = "".join(p.get_textpage().get_text_range() for p in pages)
        assert "reasons entry 19" in text and "Person 19" in text

    def test_anything_a_patient_types_renders(self):
        content = safety_plans.empty_content()
        content["reasons"] = ["Mi hija, <b>José</b> & Zoë — 100%"]
        pdf = render(lang="en", name="Ana", meta="v1", content=content, crisis=[])
        text = pages_of(pdf)[0].get_textpage().get_text_range()
        assert "Mi hija, <b>José</b> & Zoë — 100%" in text

    def test_no_plan_no_pdf(self, client, people, sign_in):
        sign_in(PATIENT)
        assert client.get("/my/safety-plan.pdf").status_code == 404


def test_the_pdf_is_in_the_patients_language(session, people):
    content = safety_plans.empty_content()
    content["reasons"] = ["Mis nietos"]
    pdf = render(lang="es", name="Lucía", meta="versión 1", content=content, crisis=[])
    text = pages_of(pdf)[0].get_textpage().get_text_range()
    assert "Mi plan de seguridad" in text and "Mis razones para vivir" in text
    assert "(todavía no hay nada escrito)" in text and "Mis nietos" in text
