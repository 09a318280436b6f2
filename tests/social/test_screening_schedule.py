"""The AHC HRSN is scheduled like any check-in (issue 23: "at intake and every 6 months"): a
schedule from today every 182 days makes it due at once, not due once answered, and due again
when the six months are up."""

from __future__ import annotations

from concord.measures import service as measures
from concord.measures.rules import early_days
from tests.conftest import commit
from tests.social.test_referrals import NEGATIVE, cm, me, screen


def _status(session, people) -> str:
    due = measures.check_ins(session, access=me(session, people))
    (ahc,) = [c for c in due if c.instrument.code == "AHC-HRSN"]
    return ahc.state.status


def test_the_screen_is_due_at_intake_and_again_after_six_months(session, people, clock):
    measures.add_schedule(
        session, access=cm(session, people), instrument_code="AHC-HRSN", every_days=182
    )
    commit(session)
    assert _status(session, people) == "due"  # intake: today
    screen(session, cm(session, people), NEGATIVE)  # in clinic, with the care manager
    commit(session)
    assert _status(session, people) not in ("due", "overdue")
    # Due again six months on; a check-in's window opens a few days early (measures.rules).
    opens = 182 - early_days(182)
    clock.advance(days=opens - 1)
    assert _status(session, people) not in ("due", "overdue")
    clock.advance(days=1 + early_days(182))
    assert _status(session, people) == "due"
