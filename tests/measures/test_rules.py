"""Schedules and progress, at their boundaries (the day before and the day a state changes)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from concord.measures.library import load_file
from concord.measures.rules import Point, plain_change, progress, schedule_state

START = date(2027, 1, 29)


def state(today, completed=(), every=14, end=None, start=START):
    return schedule_state(
        start_on=start, every_days=every, end_on=end, completed_on=list(completed), today=today
    )


class TestSchedules:
    @pytest.mark.parametrize(
        ("offset", "status"),
        [
            (-4, "upcoming"),  # window opens 3 days before the first due date
            (-3, "due"),
            (0, "due"),
            (3, "due"),  # last day of grace
            (4, "overdue"),
            (10, "overdue"),
            (11, "due"),  # the next due date's window opens (14 - 3)
        ],
    )
    def test_the_day_before_and_the_day_it_changes(self, offset, status):
        assert state(START + timedelta(days=offset)).status == status

    def test_a_response_in_the_window_completes_the_due_date(self):
        done = [START - timedelta(days=2)]
        result = state(START + timedelta(days=5), completed=done)
        assert (result.status, result.due_on, result.next_due_on) == (
            "completed",
            START,
            START + timedelta(days=14),
        )

    def test_a_response_too_early_does_not_count(self):
        done = [START - timedelta(days=4)]
        assert state(START, completed=done).status == "due"

    def test_missed_due_dates_are_counted(self):
        today = START + timedelta(days=30)  # third due date's window is open
        result = state(today)
        assert result.due_on == START + timedelta(days=28) and result.missed == 2

    def test_month_ends_and_leap_years(self):
        # Every 30 days from 31 January 2028 (a leap year): 1 March, 31 March.
        start = date(2028, 1, 31)
        assert state(date(2028, 3, 1), start=start, every=30).due_on == date(2028, 3, 1)
        assert state(date(2028, 2, 27), start=start, every=30).due_on == date(2028, 3, 1)
        assert state(date(2028, 2, 26), start=start, every=30).status == "overdue"

    def test_a_schedule_ends(self):
        end = START + timedelta(days=20)
        assert state(end, end=end).status in ("due", "overdue", "completed")
        assert state(end + timedelta(days=1), end=end).status == "ended"
        assert state(START + timedelta(days=12), end=end).next_due_on is None

    def test_a_weekly_schedule_has_shorter_windows(self):
        assert state(START - timedelta(days=3), every=7).status == "due"
        assert state(START + timedelta(days=3), every=7).status == "due"
        assert state(START + timedelta(days=4), every=7).status == "due"  # next window opens


@pytest.fixture(scope="module")
def instrument():
    return load_file(Path(__file__).parent / "files" / "rules.yaml")


def points(*pairs):
    return [Point(date(2027, 1, 1) + timedelta(days=d), v) for d, v in pairs]


class TestProgress:
    def test_no_scores_and_one_score(self, instrument):
        assert (
            progress(instrument, [], treatment_start=None, today=date(2027, 1, 1)).status
            == "no_data"
        )
        one = progress(
            instrument, points((0, 12)), treatment_start=date(2027, 1, 1), today=date(2027, 1, 10)
        )
        assert one.status == "baseline_only" and one.baseline.value == 12

    @pytest.mark.parametrize(
        ("latest", "day", "status"),
        [
            (2, 14, "remission"),  # below 3
            (3, 14, "response"),  # 12 -> 3 is 75% lower
            (6, 14, "response"),  # exactly 50%
            (7, 14, "early"),  # 42% lower, week 2
            (7, 55, "early"),  # the day before week 8
            (7, 56, "not_improving"),  # week 8
            (13, 70, "not_improving"),  # worse
        ],
    )
    def test_status_against_target(self, instrument, latest, day, status):
        result = progress(
            instrument,
            points((0, 12), (day, latest)),
            treatment_start=date(2027, 1, 1),
            today=date(2027, 1, 1) + timedelta(days=day),
        )
        assert result.status == status
        if status == "not_improving":
            assert result.review_cue and "cue for a psychiatric case review" in result.rule

    def test_change_in_points_and_percent(self, instrument):
        result = progress(
            instrument,
            points((0, 16), (20, 10)),
            treatment_start=date(2027, 1, 1),
            today=date(2027, 1, 21),
        )
        assert (result.change_points, result.change_percent, result.weeks) == (6, 37.5, 2)

    def test_the_baseline_is_the_first_score_of_this_treatment(self, instrument):
        old = points((-200, 20))
        new = points((-10, 14), (30, 7))
        result = progress(
            instrument, old + new, treatment_start=date(2027, 1, 1), today=date(2027, 2, 1)
        )
        assert result.baseline.value == 14 and result.status == "response"


class TestPlainWords:
    def test_the_issue_example(self):
        assert str(plain_change(18, 9)) == (
            "Your score went from 18 to 9, about half of where you started."
        )

    def test_worse_and_same(self):
        assert "higher than when you started" in str(plain_change(9, 12))
        assert str(plain_change(9, 9)) == "Your score is the same as when you started (9)."
