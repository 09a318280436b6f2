"""Helpers for the safety tests: answers that trip (or just miss) each rule."""

from __future__ import annotations

from typing import Any

import pytest

from concord.actions import checkin
from concord.measures import service as measures
from tests.conftest import commit
from tests.factories import acc_for, create_plan


@pytest.fixture
def plan(session, people):
    created = create_plan(session, people, activate=True)
    commit(session)
    return created


def respond(
    session, people, instrument: str, answers: dict[str, int], *, by=None, patient=None, declined=()
):
    """A completed response recorded by the care manager (or `by`), as in clinic."""
    return checkin.record_response(
        session,
        access=acc_for(session, by or people.care_manager, patient or people.patient),
        instrument_code=instrument,
        submission=measures.Submission(
            answers=answers, mode=measures.Mode.in_person, declined=tuple(declined)
        ),
    )


def phq9(items: list[int], difficulty: int | None = 0) -> dict[str, int]:
    answers = {str(i + 1): v for i, v in enumerate(items)}
    if difficulty is not None and any(items):
        answers["difficulty"] = difficulty
    return answers


def phq9_total(total: int, item9: int = 0) -> dict[str, int]:
    """Nine answers summing to `total`, with item 9 as given."""
    rest = total - item9
    items = []
    for _ in range(8):
        value = min(3, rest)
        items.append(value)
        rest -= value
    assert rest == 0, "total too high for the other eight items"
    return phq9(items + [item9])


def pcl5_total(total: int) -> dict[str, int]:
    answers: dict[str, int] = {}
    rest = total
    for i in range(1, 21):
        value = min(4, rest)
        answers[str(i)] = value
        rest -= value
    assert rest == 0
    return answers


def audit_c(q1: int, q2: int, q3: int) -> dict[str, int]:
    return {"1": q1, "2": q2, "3": q3}


def asq(*yes: int, declined: tuple[int, ...] = ()) -> dict[str, int]:
    answers: dict[str, Any] = {str(i): (1 if i in yes else 0) for i in range(1, 5)}
    for item in declined:
        answers.pop(str(item))
    if any(i in yes for i in (1, 2, 3, 4)):  # question 5 is asked only after a yes
        answers["5"] = 1 if 5 in yes else 0
    return answers
