"""The patient sees upcoming and past visits on the portal (issue 22): a booked visit still to
come and one waiting for their answer under "Coming up", a fulfilled one and a missed one
under "Past visits", each linking to its page with its .ics file; a visit moves from one list
to the other once it has ended; another patient's visits are not there. Both engines."""

from __future__ import annotations

import re
from datetime import timedelta

from concord.actions import appointments as act
from concord.appointments.schemas import AttendanceIn, VisitIn
from tests.conftest import NOW, commit
from tests.factories import acc_for

FIRST = (NOW + timedelta(days=1)).replace(hour=15, minute=0)
LATER = (NOW + timedelta(days=8)).replace(hour=15, minute=0)


def _section(html: str, marker: str) -> str:
    found = re.search(rf"<section[^>]*{marker}[^>]*>(.*?)</section>", html, re.S)
    assert found, marker
    return found.group(1)


def test_the_portal_lists_upcoming_and_past_visits(client, session, people, clock, sign_in):
    team = acc_for(session, people.care_manager, people.patient)
    kept = act.book(session, access=team, data=VisitIn(kind="phone", start=FIRST))
    missed = act.book(session, access=team, data=VisitIn(kind="in_person", start=FIRST))
    coming = act.book(session, access=team, data=VisitIn(kind="in_person", start=LATER))
    asked = act.book(session, access=team, data=VisitIn(kind="phone", start=LATER, propose=True))
    other = act.book(
        session,
        access=acc_for(session, people.outsider, people.other_patient),
        data=VisitIn(kind="phone", start=LATER),
    )
    commit(session)
    sign_in("pat@patients.example.org")
    before = client.get("/my/visits").text
    upcoming = _section(before, "data-upcoming-visits")
    assert all(str(v.id) in upcoming for v in (kept, missed, coming, asked))
    assert "None yet" in _section(before, "data-past-visits")
    # The first visits take place: one attended, one missed.
    clock.set(FIRST + timedelta(minutes=45))
    act.set_attendance(
        session, access=team, visit_id=kept.id, data=AttendanceIn(version=1, status="fulfilled")
    )
    act.set_attendance(
        session, access=team, visit_id=missed.id, data=AttendanceIn(version=1, status="noshow")
    )
    commit(session)
    sign_in("pat@patients.example.org")  # a day later: a new sign-in
    page = client.get("/my/visits")
    assert page.status_code == 200
    upcoming = _section(page.text, "data-upcoming-visits")
    past = _section(page.text, "data-past-visits")
    assert str(coming.id) in upcoming and str(asked.id) in upcoming
    assert str(kept.id) not in upcoming and str(missed.id) not in upcoming
    assert str(kept.id) in past and str(missed.id) in past
    assert str(coming.id) not in past
    assert "Your answer is needed" in upcoming
    assert str(other.id) not in page.text
    # Each links to its own page, which offers the calendar file.
    for visit in (kept, coming):
        assert f'href="/my/visits/{visit.id}"' in page.text
        one = client.get(f"/my/visits/{visit.id}")
        assert one.status_code == 200 and f"/visits/{visit.id}.ics" in one.text
    assert client.get(f"/visits/{coming.id}.ics").text.startswith("BEGIN:VCALENDAR")
    assert client.get(f"/my/visits/{other.id}").status_code == 404
    spanish = client.get("/my/visits", headers={"Accept-Language": "es"})
    assert spanish.status_code == 200 and str(kept.id) in spanish.text
