"""CollaboRATE after a decision visit, and the clinic's top-score rates.

After a decision is recorded the patient is offered CollaboRATE about that visit. Its score is
the top-score rate: the percentage of encounters where all three items are at the maximum,
reported for a clinician or a clinic only once at least 25 encounters have all three items
answered (Elwyn et al.; glynelwyn.com/scoring-collaborate.html, see docs/clinical-sources.md).
CollaboRATE's wording is licensed (CC BY-NC-ND) and not shipped: a clinic that installs its
licensed copy (CONCORD_INSTRUMENTS_DIR) can offer it; otherwise the offer says it is not set up.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.accounts.models import Clinic, User
from concord.audit.service import record
from concord.decisions.models import Decision, DecisionStatus
from concord.decisions.service import get_decision
from concord.errors import Conflict
from concord.i18n import Msg
from concord.measures import service as measures
from concord.measures.library import library
from concord.measures.models import MeasureResponse, ResponseStatus
from concord.patients.models import Patient
from concord.patients.service import members_of_patient

INSTRUMENT = "CollaboRATE"
MIN_ENCOUNTERS = 25  # "at least 25 clinical encounters" (scoring guidance)
ITEMS = ("1", "2", "3")


def collaborate_ready() -> bool:
    instrument = library().get(INSTRUMENT)
    return instrument is not None and not instrument.placeholder


def team_clinicians(session: Session, patient_id: uuid.UUID) -> list[User]:
    return [
        m.user
        for m in members_of_patient(session, patient_id=patient_id)
        if m.user.active and m.user.is_clinician
    ]


def collaborate_state(session: Session, decision: Decision) -> str | None:
    """For the patient's page: None (nothing to offer), 'offer', 'unavailable', 'started'
    or 'done'."""
    if decision.status not in (DecisionStatus.decided, DecisionStatus.not_decided):
        return None
    if decision.collaborate_response_id is not None:
        response = session.get(MeasureResponse, decision.collaborate_response_id)
        if response is not None and response.status == ResponseStatus.completed:
            return "done"
        return "started"
    return "offer" if collaborate_ready() else "unavailable"


def start_collaborate(session: Session, *, access: PatientAccess, decision_id: Any) -> str:
    """The patient starts (or resumes) CollaboRATE about this visit: where to go next."""
    decision = get_decision(session, access=access, decision_id=decision_id, audit=False)
    if not access.is_self:
        raise Conflict(Msg("Only the patient answers this."))
    if decision.status not in (DecisionStatus.decided, DecisionStatus.not_decided):
        raise Conflict(Msg("This is offered after the visit, once the decision is recorded."))
    if not collaborate_ready():
        raise Conflict(Msg("This clinic has not set up the CollaboRATE questions."))
    if decision.collaborate_response_id is not None:
        response = session.get(MeasureResponse, decision.collaborate_response_id)
        if response is not None and response.status != ResponseStatus.entered_in_error:
            return f"/my/check-ins/{response.id}"
    response = measures.start_or_resume(session, access=access, instrument_code=INSTRUMENT)
    decision.collaborate_response_id = response.id
    return f"/my/check-ins/{response.id}"


@dataclass
class Rate:
    name: str
    encounters: int = 0  # with all three items answered
    top: int = 0

    @property
    def enough(self) -> bool:
        return self.encounters >= MIN_ENCOUNTERS

    @property
    def percent(self) -> float | None:
        return round(100 * self.top / self.encounters, 1) if self.enough else None


@dataclass
class CollaborateReport:
    clinics: list[Rate] = field(default_factory=list)
    clinicians: list[Rate] = field(default_factory=list)
    organization: Rate = field(default_factory=lambda: Rate(""))
    ready: bool = False
    minimum: int = MIN_ENCOUNTERS


def _top(response: MeasureResponse, maximum: dict[str, int]) -> bool | None:
    """True/False for a complete response (all three items answered), None otherwise."""
    answers = response.answers or {}
    if any(not isinstance(answers.get(i), int) for i in ITEMS):
        return None
    return all(answers[i] >= maximum[i] for i in ITEMS)


def collaborate_report(session: Session, *, by: User) -> CollaborateReport:
    """Top-score rates per clinician (who recorded the decision) and per clinic, for the
    viewer's organization. Counts only; no patient is named."""
    report = CollaborateReport(ready=collaborate_ready())
    instrument = library().get(INSTRUMENT)
    record(session, by=by, action="read", object_type="CollaborateReport")
    if instrument is None:
        return report
    maximum = {i.id: i.max_value for i in instrument.items if i.id in ITEMS}
    if set(maximum) != set(ITEMS):
        return report
    rows = session.execute(
        select(MeasureResponse, Decision.recorded_by_id, Patient.clinic_id)
        .join(Decision, Decision.collaborate_response_id == MeasureResponse.id)
        .join(Patient, Patient.id == Decision.patient_id)
        .where(
            Decision.organization_id == by.organization_id,
            MeasureResponse.status == ResponseStatus.completed,
        )
    ).all()
    per_user: dict[uuid.UUID, Rate] = defaultdict(lambda: Rate(""))
    per_clinic: dict[uuid.UUID, Rate] = defaultdict(lambda: Rate(""))
    for response, clinician_id, clinic_id in rows:
        top = _top(response, maximum)
        if top is None:
            continue  # any item missing: excluded, as the scoring guidance says
        for rate in (per_user[clinician_id], per_clinic[clinic_id], report.organization):
            rate.encounters += 1
            rate.top += int(top)
    names = {u.id: u.name for u in session.scalars(select(User).where(User.id.in_(list(per_user))))}
    clinics = {
        c.id: c.name for c in session.scalars(select(Clinic).where(Clinic.id.in_(list(per_clinic))))
    }
    for uid, rate in per_user.items():
        rate.name = names.get(uid, "")
    for cid, rate in per_clinic.items():
        rate.name = clinics.get(cid, "")
    report.clinicians = sorted(per_user.values(), key=lambda r: r.name)
    report.clinics = sorted(per_clinic.values(), key=lambda r: r.name)
    return report
