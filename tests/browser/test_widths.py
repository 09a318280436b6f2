"""Every main page at a laptop's width (1366 px) and a phone's (390 px): nothing makes the page
scroll sideways, and a table wider than the screen scrolls inside its own box."""

from __future__ import annotations

import pytest

from tests.browser.test_every_page import pages_for, with_plan, with_safety  # noqa: F401

pytestmark = pytest.mark.browser

WIDTHS = {"laptop": (1366, 768), "phone": (390, 844)}

# What sticks out: the page's width, and every element whose right edge passes the viewport
# without a scrolling box (a .table-wrap, or any element that scrolls) between it and the page.
MEASURE = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = el => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (/(auto|scroll|hidden)/.test(getComputedStyle(p).overflowX)) return true;
    }
    return false;
  };
  const name = el => el.tagName.toLowerCase()
    + (typeof el.className === 'string' && el.className.trim()
       ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > width + 1 && !scrolls(el)) {
      out.push(name(el) + ' right=' + Math.round(r.right)
        + ' "' + (el.textContent || '').trim().slice(0, 40) + '"');
    }
  }
  const loose = [...document.querySelectorAll('table')].filter(
    t => !t.closest('.table-wrap') && t.getBoundingClientRect().right > width + 1).length;
  return {scroll: document.documentElement.scrollWidth, width, out: out.slice(0, 5), loose};
}"""


@pytest.fixture(scope="module")
def everything(live, with_safety):  # noqa: F811
    """Pat enrolled in collaborative care with PHQ-9 scores, and Rosa, who reads Spanish."""
    from datetime import timedelta

    from concord.actions import checkin
    from concord.audit.service import set_context, write_pending
    from concord.clock import get_clock
    from concord.measures import service as measures
    from concord.registry import service as reg
    from concord.registry.models import Episode
    from tests.factories import acc_for, create_patient

    people = with_safety
    clock = get_clock()
    with live["factory"]() as session:
        set_context(session, channel="system")
        if session.query(Episode).count() == 0:
            cm = acc_for(session, people.care_manager, people.patient)
            today = clock.now().date()
            reg.enroll(
                session,
                access=cm,
                data=reg.Enrolment(program="depression", started_on=today - timedelta(days=63)),
            )
            for days in (62, 1):
                checkin.record_response(
                    session,
                    access=cm,
                    instrument_code="PHQ-9",
                    submission=measures.Submission(
                        answers={str(i): 2 for i in range(1, 9)} | {"9": 0, "difficulty": 1},
                        mode=measures.Mode.phone,
                        completed_at=clock.now() - timedelta(days=days),
                    ),
                )
            rosa = create_patient(
                session,
                people.org,
                people.north,
                by=people.care_manager,
                given="Rosa",
                family="Ramírez Echeverría",
                mrn="N-2",
                email="rosa@patients.example.org",
                language="es",
            )
            # Two programs, so the caseload has two instruments' columns.
            reg.enroll(
                session,
                access=acc_for(session, people.care_manager, rosa),
                data=reg.Enrolment(program="co_occurring", started_on=today - timedelta(days=30)),
            )
        from sqlalchemy import select

        from concord.measures.models import MeasureResponse

        people.response_id = session.scalar(
            select(MeasureResponse.id).where(MeasureResponse.instrument == "PHQ-9").limit(1)
        )
        write_pending(session)
        session.commit()
    return people


@pytest.mark.parametrize("width", list(WIDTHS))
def test_no_page_scrolls_sideways(live, browser, everything, width):
    pages = pages_for(everything)
    pid = everything.patient.id
    pages["cara@test.example.org"] += [
        f"/patients/{pid}/measures",
        "/patients/" + str(pid) + "/measures/record/PHQ-9",
        f"/patients/{pid}/measures/responses/{everything.response_id}",
        "/registry?scope=teams&flags=&programs=&statuses=",
    ]
    pages["pat@patients.example.org"] += ["/my/check-ins", "/my/progress"]
    pages["rosa@patients.example.org"] = [
        "/my",
        "/my/plan",
        "/my/check-ins",
        "/my/progress",
        "/my/decisions",
        "/account",
    ]
    pages["consultant@test.example.org"] = ["/registry/reviews", "/registry"]
    w, h = WIDTHS[width]
    wide: list[str] = []
    for email, paths in pages.items():
        context = browser.new_context(viewport={"width": w, "height": h}, base_url=live["url"])
        page = context.new_page()
        try:
            page.goto("/sign-in")
            page.get_by_label("Email").fill(email)
            page.get_by_label("Password").fill("correct horse battery")
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_load_state()
            for path in ["/sign-in", *paths] if email.startswith("cara") else paths:
                page.goto(path)
                found = page.evaluate(MEASURE)
                if found["scroll"] > found["width"] or found["loose"]:
                    wide.append(f"{email} {path}: {found}")
                if width == "laptop" and path.startswith("/registry?"):
                    # The caseload fits a laptop: no sideways scrolling, even inside its box.
                    box = page.evaluate(
                        "() => { const w = document.querySelector('.table-wrap');"
                        " return [w.scrollWidth, w.clientWidth]; }"
                    )
                    if box[0] > box[1]:
                        wide.append(f"{email} {path}: the caseload is {box[0]} px in {box[1]}")
        finally:
            context.close()
    assert wide == [], "\n".join(wide)
