"""The score chart on a phone: dates in the locale's format (not ISO) and a legend that fits
inside the chart (a goal's long statement was cut off at the edge)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import Visitor


def test_the_chart_on_a_phone_has_local_dates_and_a_whole_legend(live, browser, clock):
    from concord import access
    from concord.actions import checkin
    from concord.audit.service import set_context, write_pending
    from concord.careplans import service as plans
    from concord.careplans.schemas import GoalIn
    from concord.measures import service as measures
    from tests.factories import create_plan

    people = live["people"]
    with live["factory"]() as session:
        set_context(session, channel="system")
        acc = access.patient_for(session, people.care_manager, people.patient.id)
        if plans.current_plan(session, people.patient.id) is None:
            create_plan(session, people, activate=True)
        plans.add_item(
            session,
            access=acc,
            section="goals",
            data=GoalIn(
                statement="I want to feel like myself again and get back to work at the bakery "
                "with my sister by the spring",
                category="symptoms",
                measure_instrument="PHQ-9",
                measure_op="below",
                measure_value=5,
            ),
            reason="Linked to the PHQ-9",
        )
        for total in (18, 14, 11):
            checkin.record_response(
                session,
                access=acc,
                instrument_code="PHQ-9",
                submission=measures.Submission(
                    answers={str(i): min(3, max(0, total - 3 * (i - 1))) for i in range(1, 10)}
                    | {"difficulty": 1},
                    mode=measures.Mode.phone,
                ),
            )
            clock.advance(days=14)
        write_pending(session)
        session.commit()
    cara = Visitor(browser, live["url"], phone=True)
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        cara.goto(f"/patients/{people.patient.id}/measures")
        canvas = "document.querySelector(\"canvas[data-chart='chart-PHQ-9']\")"
        expect(page.locator("canvas[data-chart='chart-PHQ-9']")).to_be_visible()
        labels = page.evaluate(f"Chart.getChart({canvas}).data.labels")
        assert labels and all("-" not in label and "," in label for label in labels), labels
        fits = page.evaluate(
            f"""() => {{ const c = Chart.getChart({canvas});
                return c.legend.legendHitBoxes.every(b => b.left >= 0 && b.left + b.width <= c.width
                    && b.top + b.height <= c.height); }}"""
        )
        texts = page.evaluate(f"Chart.getChart({canvas}).legend.legendItems.map(i => i.text)")
        assert fits, texts
        assert "Goal: below 5" in texts
    finally:
        cara.close()
