"""The registry's rules as pure functions: each flag on the day before it fires and the day
it fires, the next contact due, and the minutes-to-codes roll-up at each threshold.

Sources: Bao et al., Psychiatr Serv 2016 (doi:10.1176/appi.ps.201400577): a follow-up within 4
weeks of the initial contact; consultation in weeks 8-12 for patients not responding by week 8.
Billing: the CPT time rule (a unit counts once more than half of it has passed) applied to
99492 (70 min), 99493 (60), 99494 (each further 30), G2214 (30); see docs/clinical-sources.md.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from concord.registry.rules import (
    CaseFacts,
    ContactFact,
    codes_for_month,
    flags,
    next_contact_due,
)

START = date(2026, 9, 1)


def codes_of(facts: CaseFacts) -> set[str]:
    return {f.code for f in flags(facts)}


def facts(today: date, *contacts: tuple[int, str], **kwargs) -> CaseFacts:
    return CaseFacts(
        today=today,
        status="active",
        started_on=START,
        contacts=[ContactFact(START + timedelta(days=d), kind) for d, kind in contacts],
        **kwargs,
    )


class TestFlags:
    def test_needs_initial_assessment_until_one_is_recorded(self):
        assert "needs_initial_assessment" in codes_of(facts(START))
        assert "needs_initial_assessment" in codes_of(facts(START, (0, "follow_up")))
        assert "needs_initial_assessment" not in codes_of(facts(START, (0, "initial_assessment")))
        # An outreach attempt that did not reach the patient is not an assessment.
        assert "needs_initial_assessment" in codes_of(facts(START, (0, "outreach_attempt")))

    def test_no_follow_up_within_4_weeks_fires_on_day_29(self):
        initial = [(2, "initial_assessment")]
        day_28 = START + timedelta(days=2 + 28)
        assert "no_follow_up_4_weeks" not in codes_of(facts(day_28, *initial))
        assert "no_follow_up_4_weeks" in codes_of(facts(day_28 + timedelta(days=1), *initial))
        # A follow-up (even a late one) clears it; an outreach attempt does not.
        late = day_28 + timedelta(days=5)
        assert "no_follow_up_4_weeks" in codes_of(facts(late, *initial, (33, "outreach_attempt")))
        assert "no_follow_up_4_weeks" not in codes_of(facts(late, *initial, (33, "follow_up")))

    @pytest.mark.parametrize(
        ("weeks", "expected"),
        [
            (7, set()),
            (8, {"not_improving"}),
            (9, {"not_improving"}),
            (10, {"not_improving_escalate"}),
        ],
    )
    def test_not_improving_from_week_8_and_escalated_from_week_10(self, weeks, expected):
        found = codes_of(
            facts(
                START + timedelta(weeks=weeks),
                (0, "initial_assessment"),
                (weeks * 7 - 1, "follow_up"),
                weeks=weeks,
                review_cue=weeks >= 8,
            )
        )
        assert found & {"not_improving", "not_improving_escalate"} == expected

    def test_no_contact_in_30_days_fires_on_day_31(self):
        contacts = [(0, "initial_assessment"), (20, "follow_up")]
        last = START + timedelta(days=20)
        assert "no_contact_30_days" not in codes_of(facts(last + timedelta(days=30), *contacts))
        assert "no_contact_30_days" in codes_of(facts(last + timedelta(days=31), *contacts))
        # Outreach attempts do not count as contact.
        tried = [*contacts, (45, "outreach_attempt")]
        assert "no_contact_30_days" in codes_of(facts(last + timedelta(days=31), *tried))

    def test_recommendation_not_acted_on_fires_after_14_days(self):
        proposed = START + timedelta(days=10)
        base = [(0, "initial_assessment"), (24, "follow_up")]
        day_14 = proposed + timedelta(days=14)
        assert "recommendation_not_acted_on" not in codes_of(
            facts(day_14, *base, pending_recommendations=[proposed])
        )
        assert "recommendation_not_acted_on" in codes_of(
            facts(day_14 + timedelta(days=1), *base, pending_recommendations=[proposed])
        )

    def test_the_other_flags_follow_their_facts(self):
        base = [(0, "initial_assessment"), (3, "follow_up")]
        day = START + timedelta(days=5)
        assert codes_of(facts(day, *base)) == set()
        assert "checkin_overdue" in codes_of(facts(day, *base, checkins_overdue=["PHQ-9"]))
        assert "open_safety_alert" in codes_of(facts(day, *base, open_alerts=1))
        assert "plan_review_overdue" in codes_of(facts(day, *base, plan_review="overdue"))
        assert "plan_review_overdue" not in codes_of(facts(day, *base, plan_review="due"))
        assert "plan_awaiting_agreement" in codes_of(facts(day, *base, awaiting_agreement=True))

    def test_every_flag_says_its_rule(self):
        everything = facts(
            START + timedelta(weeks=11),
            (0, "initial_assessment"),
            weeks=11,
            review_cue=True,
            checkins_overdue=["PHQ-9"],
            open_alerts=1,
            plan_review="overdue",
            awaiting_agreement=True,
            pending_recommendations=[START],
        )
        found = flags(everything)
        assert len(found) == 8
        assert all(str(f.rule) for f in found)


class TestNextContactDue:
    def test_the_initial_assessment_at_once_then_4_weeks_then_every_30_days(self):
        assert next_contact_due(facts(START)) == START
        assert next_contact_due(facts(START, (2, "initial_assessment"))) == START + timedelta(
            days=30
        )
        due = next_contact_due(facts(START, (2, "initial_assessment"), (20, "follow_up")))
        assert due == START + timedelta(days=50)


class TestCodes:
    @pytest.mark.parametrize(
        ("minutes", "initial", "expected"),
        [
            (15, True, ()),
            (16, True, (("G2214", 1),)),
            (35, True, (("G2214", 1),)),
            (36, True, (("99492", 1),)),
            (85, True, (("99492", 1),)),
            (86, True, (("99492", 1), ("99494", 1))),
            (115, True, (("99492", 1), ("99494", 1))),
            (116, True, (("99492", 1), ("99494", 2))),
            (15, False, ()),
            (16, False, (("G2214", 1),)),
            (30, False, (("G2214", 1),)),
            (31, False, (("99493", 1),)),
            (75, False, (("99493", 1),)),
            (76, False, (("99493", 1), ("99494", 1))),
            (105, False, (("99493", 1), ("99494", 1))),
            (106, False, (("99493", 1), ("99494", 2))),
        ],
    )
    def test_each_threshold(self, minutes, initial, expected):
        assert codes_for_month(minutes, initial=initial).codes == expected

    def test_a_payer_cap_on_add_on_units(self):
        from concord.registry.rules import BillingRules

        capped = BillingRules(add_on_cap=4)
        assert codes_for_month(600, initial=False, rules=capped).codes == (
            ("99493", 1),
            ("99494", 4),
        )
        assert codes_for_month(600, initial=False).codes == (("99493", 1), ("99494", 18))

    def test_the_rule_is_said(self):
        assert "from 36 minutes" in str(codes_for_month(40, initial=True).rule)
