"""Check new medication orders against each other and the patient's current list (issue 19).

One action for every door that checks an order before it is made: the CDS Hooks service today
(order-select, order-sign), the medication list's pages, API and FHIR create later. The rules
are concord.medications.rules (pure); this step finds the current list when the caller did not
send it, keeps the findings that touch a new order, and writes the check to the audit trail
(codes and counts, never names or free text).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from concord.access import team_access
from concord.accounts.models import User
from concord.audit.service import record
from concord.dates import org_today
from concord.medications.current import current_medications
from concord.medications.rules import Finding, check

OBJECT = "MedicationList"


@dataclass(frozen=True)
class OrderCheck:
    findings: list[Finding]  # each touches at least one new order; most serious first
    current_from: str  # "request" (sent by the caller) or "concord" (the stored list)
    patient_id: uuid.UUID | None  # the Concord patient, when the stored list was read
    birth_date: date | None  # the Concord patient's, when the stored list was read


def age_on(birth_date: date | None, day: date) -> int | None:
    if birth_date is None or birth_date > day:
        return None
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def check_orders(
    session: Session,
    *,
    by: User,
    orders: Sequence[str],
    current: Sequence[str] | None,
    patient_id: str,
    others: Sequence[str] = (),
    birth_date: date | None = None,
    purpose: str = "cds",
    detail: dict[str, str | int] | None = None,
) -> OrderCheck:
    """The findings that involve a new order (`orders`: ingredient RxCUIs), checked together
        with `others` (other orders not being checked now, e.g. the other drafts of an order-select)
    and `current` (what the patient takes, RxCUIs). With `current` None, the
        patient's stored list is read instead: only for their care team (concord.access.team_access;
        anyone else gets NotFound, audited). `birth_date` gives the age for age rules; without it,
        the stored patient's is used when the list was read, else age rules do not fire."""
    patient = None
    if current is None:
        access = team_access(session, by, patient_id, action="medication_check", object_type=OBJECT)
        patient = access.patient
        stored = current_medications(session, access=access, patient_id=patient.id)
        current = [m.rxcui for m in stored]
        if birth_date is None:
            birth_date = patient.birth_date
    new = {str(r) for r in orders}
    age = age_on(birth_date, org_today(by.organization))
    listed = [*orders, *others, *current]
    findings = [f for f in check(listed, age=age) if new & set(f.rxcuis)]
    record(
        session,
        by=by,
        action="medication_check",
        object_type=OBJECT,
        object_id=purpose,
        patient_id=patient.id if patient is not None else None,
        detail={
            **(detail or {}),
            "orders": len(new),
            "current": len(current),
            "current_from": "concord" if patient is not None else "request",
            "findings": len(findings),
            "rules": ",".join(sorted({f.rule_id for f in findings}))[:200],
        },
    )
    return OrderCheck(
        findings=findings,
        current_from="concord" if patient is not None else "request",
        patient_id=patient.id if patient is not None else None,
        birth_date=patient.birth_date if patient is not None else None,
    )
