"""The days-of-use calendar as JSON at /api/v1 (issue 19): read it with its figures and the
substance-use goals' standing, and record days (the same action as the pages; an
Idempotency-Key makes a retry answer with the first result, nothing recorded twice)."""

# No `from __future__ import annotations`: FastAPI reads the body models from the annotations.

import json
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from concord import access
from concord.access import PatientAccess
from concord.actions import substance_use as act
from concord.substance.models import SubstanceUseDay
from concord.substance.schemas import DaysIn
from concord.substance.service import OBJECT, Window
from concord.web.deps import ApiActor, ApiWriter, DbSession
from concord.web.idempotency import Idempotent, create_once

router = APIRouter(prefix="/api/v1", tags=["substance use"])


def _access(session: Session, actor: Any, patient_id: str, action: str = "read") -> PatientAccess:
    return access.record_access(session, actor.user, patient_id, action=action, object_type=OBJECT)


def day_json(d: SubstanceUseDay) -> dict[str, Any]:
    return {
        "id": str(d.id),
        "substance": d.substance,
        "on": d.on.isoformat(),
        "used": d.used,
        "drinks": d.drinks,
        "recorded_by_patient": d.by_patient,
    }


def window_json(w: Window) -> dict[str, Any]:
    return {
        "start": w.start.isoformat(),
        "end": w.end.isoformat(),
        "days_recorded": w.recorded,
        "days_of_use": w.days_of_use,
        "drinks_per_drinking_day": w.drinks_per_drinking_day,
        "complete": w.complete,
    }


def view_json(view: act.CalendarView) -> dict[str, Any]:
    return {
        "today": view.today.isoformat(),
        "days": [day_json(d) for d in view.days],
        "substances": [
            {
                "substance": s.substance,
                "last_30_days": window_json(s.current),
                "windows": [window_json(w) for w in s.windows],
                "goals": [
                    {
                        "goal_id": str(g.goal.id),
                        "statement": g.goal.statement,
                        "aim": g.goal.use_aim,
                        "measure": g.measure,
                        "op": g.goal.measure_op,
                        "target": g.goal.measure_value,
                        "value": g.value,
                        "met": g.met,
                    }
                    for g in s.goals
                ],
            }
            for s in view.substances
        ],
    }


@router.get("/patients/{patient_id}/substance-use")
def substance_use(patient_id: str, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    """The days-of-use calendar the asker may see (substance-use data: withheld without a
    permitting consent where the patient's records are Part 2), each substance's days of use
    in the last 30 days and drinks per drinking day (with how many of the 30 days were
    recorded), and the substance-use goals' targets against them."""
    acc = _access(session, actor, patient_id)
    return view_json(act.calendar_view(session, access=acc))


@router.post("/patients/{patient_id}/substance-use/days", status_code=201)
def record_days(
    patient_id: str, body: DaysIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    """Record days of one substance (the patient or the care team), Timeline Followback
    style: each day used or not, and for alcohol the standard drinks on a day of use. A day
    already recorded takes the newer answer; the same answer again changes nothing."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        done = act.record_days(session, access=acc, data=body)
        answer = {
            "substance": str(body.substance),
            "created": len(done.created),
            "changed": len(done.changed),
            "unchanged": done.unchanged,
        }
        return json.dumps(answer), answer

    return create_once(session, actor, idem, create=create, replay=json.loads)
