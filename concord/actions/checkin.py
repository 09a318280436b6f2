"""A check-in arrives: score and store it (measures), run the organization's risk rules on it
(safety), and bring the patient's registry flags and tasks up to date (registry). Each step
audits what it writes, in the request's one transaction.

Every door that records a response calls this module: the portal's check-in, the clinician's
record form, FHIR `POST /QuestionnaireResponse`, the JSON API and the demo. The signatures are
those of measures.record_response and measures.submit, so a door swaps one for the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.actions import social as social_actions
from concord.actions import substance_use
from concord.dates import org_today
from concord.measures import service as measures
from concord.measures.service import Completed, Submission
from concord.medications import service as meds
from concord.registry.jobs import CHECKIN_FLAGS, sync_patient_tasks
from concord.safety.alerts import raise_for_response
from concord.substance import service as calendar

__all__ = ["Completed", "Submission", "next_steps", "record_response", "submit"]

# The optional steps after the questionnaires, in order (issue 19): how the medicines are
# going (missed doses, side effects, a question; the same action as My medications), then the
# days-of-use calendar.
STEP_PATHS = {
    "medications": "/my/check-in/medications",
    "days_of_use": "/my/substance-use?step=checkin",
}
# How far back a recorded day makes the calendar a step of the check-in.
CALENDAR_RECENT_DAYS = 90


def next_steps(session: Session, *, access: PatientAccess, after: str | None = None) -> list[str]:
    """The check-in's optional steps that apply to the patient (each may be skipped): the
    medications step when they have a medicine on their list, the calendar when they have a
    substance-use goal with a calendar target or recorded a day in the last 90 days. `after`:
    only the steps after that one. The reads are the domains' own (audited)."""
    steps = []
    if meds.list_medications(session, access=access, include_stopped=False):
        steps.append("medications")
    since = org_today(access.by.organization).toordinal() - CALENDAR_RECENT_DAYS
    if substance_use.substance_goals(session, access) or calendar.list_days(
        session, access=access, since=date.fromordinal(since)
    ):
        steps.append("days_of_use")
    if after in steps:
        steps = steps[steps.index(after) + 1 :]
    return steps


def record_response(
    session: Session,
    *,
    access: PatientAccess,
    instrument_code: str,
    submission: Submission,
    field_prefix: str = "answers.",
) -> Completed:
    """A whole response at once (entered by a clinician, or sent by another system)."""
    completed = measures.record_response(
        session,
        access=access,
        instrument_code=instrument_code,
        submission=submission,
        field_prefix=field_prefix,
    )
    return _arrived(session, access, completed)


def submit(
    session: Session,
    *,
    access: PatientAccess,
    response_id: uuid.UUID | str,
    answers: Mapping[str, Any],
    version: int,
    declined: Iterable[str] | None = None,
) -> Completed:
    """The patient sends a check-in started in the portal."""
    completed = measures.submit(
        session,
        access=access,
        response_id=response_id,
        answers=answers,
        version=version,
        declined=declined,
    )
    return _arrived(session, access, completed)


def _arrived(session: Session, access: PatientAccess, completed: Completed) -> Completed:
    if completed.duplicate:
        # A replay of a response already stored: it was acted on when it arrived.
        return completed
    # The organization's risk rules decide whether this response raises an alert; a critical
    # answer always does (see concord.safety.alerts).
    completed.alert = raise_for_response(
        session,
        access=access,
        response=completed.response,
        instrument=measures.get_instrument(completed.response.instrument),
        scored=completed.scored,
    )
    # The registry's flags read the scores just written: a check-in that was overdue closes
    # its task, one that shows no improvement opens the consultant's. Only the flags a
    # check-in can change (CHECKIN_FLAGS: five statements, not the whole caseload row's
    # thirteen); one query when the patient has no open episode.
    sync_patient_tasks(session, access.patient.id, only=CHECKIN_FLAGS)
    # A social-needs screen's positive domains become concerns for the patient to confirm.
    social_actions.screening_arrived(
        session,
        access=access,
        response=completed.response,
        instrument=measures.get_instrument(completed.response.instrument),
        scored=completed.scored,
    )
    return completed
