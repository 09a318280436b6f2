"""The program view's social-needs figures: screened, positive by domain, the referral loop,
median days to close and needs resolved at a rescreen."""

from __future__ import annotations

from concord.social import service as social
from concord.social.measures import social_figures
from tests.social.test_referrals import FOOD_AND_HOUSING, NEGATIVE, SECRET, cm, screen, send


def test_the_figures_count_the_screen_and_the_loop(session, people, clock):
    service = social.add_service(
        session,
        by=people.care_manager,
        data={
            "provider_name": "Riverside Food Bank",
            "name": "Groceries",
            "categories": ["food-insecurity"],
        },
    )
    screen(session, cm(session, people), FOOD_AND_HOUSING)
    referral, token = send(session, people, service)
    clock.advance(days=2)
    social.partner_transition(session, token=token, secret=SECRET, to="accepted")
    social.partner_transition(session, token=token, secret=SECRET, to="in-progress")
    clock.advance(days=2)
    social.partner_transition(
        session, token=token, secret=SECRET, to="completed", outcome="Groceries"
    )
    send(session, people, service)  # a second referral, still waiting
    figures = social_figures(session, by=people.care_manager)
    assert figures.patients == 2 and figures.screened == 1
    assert figures.percent(figures.screened, figures.patients) == 50.0
    assert figures.positive["food-insecurity"] == 1
    assert figures.positive["housing-instability"] == 1
    assert figures.positive["transportation-insecurity"] == 0
    assert (figures.sent, figures.accepted, figures.completed) == (2, 1, 1)
    assert figures.median_days_to_close == 4.0
    assert figures.resolved_at_rescreen == 0
    # A rescreen with food no longer a need resolves it.
    screen(session, cm(session, people), {**NEGATIVE, "1": 1})
    figures = social_figures(session, by=people.care_manager)
    assert figures.resolved_at_rescreen == 1
    assert figures.positive["food-insecurity"] == 0
    assert dict(figures.rows())["screened_12_months_percent"] == 50.0
