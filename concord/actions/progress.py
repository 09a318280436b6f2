"""A patient's progress on each measure, read against their care plan.

Scores are measures'; when treatment began and the goals linked to a measure are the care
plan's. careplans sits above measures (a goal names an instrument, activating a plan schedules
check-ins), so measures does not read the plan: this read joins the two, for every door that
shows progress (the patient's page, the portal, the progress card and chart).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.careplans.service import treatment_start_and_goals
from concord.measures import service as measures
from concord.measures.service import InstrumentProgress


def progress_for(
    session: Session, *, access: PatientAccess, instrument_codes: list[str] | None = None
) -> list[InstrumentProgress]:
    """The main score of each instrument the patient has answered, with its status (access
    checked and the read audited by measures)."""
    start, goals = treatment_start_and_goals(session, access)
    return measures.progress_for(
        session,
        access=access,
        treatment_start=start,
        goals=goals,
        instrument_codes=instrument_codes,
    )
