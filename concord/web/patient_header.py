"""The patient header: built here, once, for every page about one patient, and shown by one
partial (patients/_header.html). Pages call `header_context`; no route builds the header
itself or imports another route to get it.

What it holds depends on who is looking. The care team sees the name, date of birth and age,
pronouns, MRN, clinic, the tabs, the risk status and the open alerts. A family member (or
anyone else reaching the patient other than through the care team) sees the name only: never
the MRN, the date of birth, the risk status or the alerts.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import PatientAccess, Relation
from concord.dates import org_today
from concord.patients.models import Patient
from concord.safety.alerts import alerts_for_patient
from concord.safety.risk import risk_for
from concord.settings import get_settings


def age_on(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


@dataclass(frozen=True)
class PatientHeader:
    patient_id: uuid.UUID
    name: str
    relation: Relation
    tab: str | None = None
    # The care team's header only (None for anyone else):
    birth_date: date | None = None
    age: int | None = None
    pronouns: str | None = None
    mrn: str | None = None
    clinic: str | None = None
    risk: Any = None
    alerts: Sequence[Any] = field(default_factory=tuple)
    current_alert_id: uuid.UUID | None = None

    @property
    def full(self) -> bool:
        """The care team's header (identifiers, tabs, risk and alerts)."""
        return self.relation == Relation.team


def patient_header(
    session: Session,
    acc: PatientAccess,
    *,
    tab: str | None = None,
    current_alert_id: uuid.UUID | None = None,
) -> PatientHeader:
    """The header `acc.by` may see for `acc.patient` (alerts read through the safety service,
    which checks access; nothing here for a viewer who is not on the care team)."""
    patient = acc.patient
    if not acc.on_team:
        return limited_header(patient, acc.relation)
    return PatientHeader(
        patient_id=patient.id,
        name=patient.display_name,
        relation=acc.relation,
        tab=tab,
        birth_date=patient.birth_date,
        age=age_on(patient.birth_date, org_today(acc.by.organization)),
        pronouns=patient.pronouns,
        mrn=patient.mrn,
        clinic=patient.clinic.name if patient.clinic else None,
        risk=risk_for(session, acc),
        alerts=tuple(alerts_for_patient(session, access=acc)),
        current_alert_id=current_alert_id,
    )


def limited_header(patient: Patient, relation: Relation) -> PatientHeader:
    """The header for someone outside the care team (a family member): the name they know."""
    return PatientHeader(
        patient_id=patient.id,
        name=patient.preferred_name or patient.given_name,
        relation=relation,
    )


def header_context(
    session: Session,
    acc: PatientAccess,
    *,
    tab: str | None = None,
    current_alert_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """What a patient page passes its template for the header. `risk` and `alerts` stay beside
    `header` for the pages that show them in their own body too (the safety tab)."""
    header = patient_header(session, acc, tab=tab, current_alert_id=current_alert_id)
    return {
        "header": header,
        "tab": tab,
        "age": header.age,
        "risk": header.risk,
        "alerts": list(header.alerts),
    }


def withheld_context(session: Session, acc: PatientAccess) -> dict[str, Any]:
    """The care team's "N records withheld by the patient's consent" line (for pages that
    listed the patient's records in this request) and the emergency window's length."""
    if not acc.on_team:
        return {}
    return {
        "withheld": disclosure.withheld_by_consent(session, acc.patient.id),
        "emergency_minutes": get_settings().emergency_access_minutes,
    }
