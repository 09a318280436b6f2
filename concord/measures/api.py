"""Measures as JSON at /api/v1: what a patient is asked to complete (schedules, "ask now") and
answers a clinician records on the patient's behalf. The same schemas, services and rules as
the team's measures tab; the patient's own check-ins come in through /fhir."""

# No `from __future__ import annotations`: FastAPI reads the body models from the annotations.

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from concord import access
from concord.access import PatientAccess
from concord.actions import checkin
from concord.measures import service as measures
from concord.measures.models import MeasureResponse, MeasureSchedule
from concord.measures.schemas import (
    AskNowIn,
    CheckInAnswersIn,
    CheckInStartIn,
    RecordedCheckInIn,
    ScheduleChangeIn,
    ScheduleIn,
)
from concord.web.deps import Actor, ApiActor, ApiWriter, DbSession
from concord.web.idempotency import Idempotent, create_once, earlier_record

router = APIRouter(prefix="/api/v1", tags=["measures"])


def _team(session: Session, actor: Actor, patient_id: str, action: str = "read") -> PatientAccess:
    # The measures tab's rule (concord.measures.routes._team): the care team only.
    return access.team_access(
        session, actor.user, patient_id, action=action, object_type="Observation"
    )


def _iso(value: Any) -> Any:
    return value.isoformat() if value else None


def schedule_json(s: MeasureSchedule, state: Any = None) -> dict[str, Any]:
    entry = {
        "id": str(s.id),
        "instrument": s.instrument,
        "every_days": s.every_days,
        "start_on": _iso(s.start_on),
        "end_on": _iso(s.end_on),
        "stopped": s.stopped_at is not None,
        "version": s.version,
    }
    if state is not None:
        entry.update(status=state.status, due_on=_iso(state.due_on), missed=state.missed)
    return entry


def response_json(r: MeasureResponse) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "instrument": r.instrument,
        "status": r.status,
        "mode": r.mode,
        "answered_by": r.answered_by,
        "completed_at": _iso(r.completed_at),
        "scores": r.scores,
    }


@router.get("/patients/{patient_id}/measures/schedules")
def list_schedules(patient_id: str, session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """Every active schedule and where it stands today (as the measures tab shows it)."""
    acc = _team(session, actor, patient_id)
    return [schedule_json(d.schedule, d.state) for d in measures.check_ins(session, access=acc)]


@router.post("/patients/{patient_id}/measures/schedules", status_code=201)
def add_schedule(
    patient_id: str, body: ScheduleIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    acc = _team(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        schedule = measures.add_schedule(
            session,
            access=acc,
            instrument_code=body.instrument,
            every_days=body.every_days,
            start_on=body.start_on,
            end_on=body.end_on,
        )
        return str(schedule.id), schedule_json(schedule)

    def replay(result: str) -> Any:
        return schedule_json(
            earlier_record(session, MeasureSchedule, result, patient_id=acc.patient.id)
        )

    return create_once(session, actor, idem, create=create, replay=replay)


@router.post("/patients/{patient_id}/measures/schedules/{schedule_id}")
def change_schedule(
    patient_id: str, schedule_id: str, body: ScheduleChangeIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Change the cadence or the end (with `version`), or stop the schedule (`stop`: true)."""
    acc = _team(session, actor, patient_id, "update")
    if body.stop:
        measures.stop_schedule(session, access=acc, schedule_id=schedule_id)
        return {"id": schedule_id, "stopped": True}
    every_days, version = body.change()
    schedule = measures.change_schedule(
        session,
        access=acc,
        schedule_id=schedule_id,
        every_days=every_days,
        end_on=body.end_on,
        version=version,
    )
    return schedule_json(schedule)


@router.post("/patients/{patient_id}/measures/ask-now")
def ask_now(
    patient_id: str, body: AskNowIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Ask the patient to complete the instrument today, scheduled or not."""
    acc = _team(session, actor, patient_id, "update")
    return schedule_json(measures.ask_now(session, access=acc, instrument_code=body.instrument))


@router.get("/patients/{patient_id}/measures/responses")
def list_responses(
    patient_id: str, session: DbSession, actor: ApiActor, instrument: str | None = None
) -> list[dict[str, Any]]:
    acc = _team(session, actor, patient_id)
    rows = measures.list_responses(session, access=acc, instrument_code=instrument)
    return [response_json(r) for r in rows]


@router.post("/patients/{patient_id}/measures/{code}/responses", status_code=201)
def record_response(
    patient_id: str,
    code: str,
    body: RecordedCheckInIn,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    """Answers collected in person, by phone or video, or from a proxy, recorded by the team;
    scored, and run through the safety rules, as on the page."""
    acc = _team(session, actor, patient_id, "create")
    measures.get_instrument(code)

    def create() -> tuple[str, Any]:
        completed = checkin.record_response(
            session, access=acc, instrument_code=code, submission=body.to_submission()
        )
        answer = {
            **response_json(completed.response),
            "alert_id": str(completed.alert.id) if completed.alert is not None else None,
        }
        return str(completed.response.id), answer

    def replay(result: str) -> Any:
        found = measures.get_response(session, access=acc, response_id=result)
        return response_json(found)

    return create_once(session, actor, idem, create=create, replay=replay)


# --- the patient's own check-ins (/my/check-ins) --------------------------------------------------


def _self(session: Session, actor: Actor, patient_id: str, action: str) -> PatientAccess:
    """The patient's own record, as /my/check-ins: anyone else gets 404 (audited)."""
    acc = access.record_access(
        session, actor.user, patient_id, action=action, object_type="Observation"
    )
    if not acc.is_self:
        raise access.refuse_record(session, acc, action=action, object_type="Observation")
    return acc


def check_in_json(r: MeasureResponse) -> dict[str, Any]:
    return {
        **response_json(r),
        "answers": r.answers,
        "declined": list((r.flags or {}).get("declined", [])),
        "version": r.version,
    }


@router.get("/patients/{patient_id}/check-ins")
def due_check_ins(patient_id: str, session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """What the patient is asked to complete, and where each stands today."""
    acc = _self(session, actor, patient_id, "read")
    return [
        {
            **schedule_json(d.schedule, d.state),
            "in_progress": str(d.in_progress.id) if d.in_progress else None,
        }
        for d in measures.check_ins(session, access=acc)
    ]


@router.post("/patients/{patient_id}/check-ins", status_code=201)
def start_check_in(
    patient_id: str, body: CheckInStartIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Start a check-in, or resume the unfinished one for this instrument."""
    acc = _self(session, actor, patient_id, "create")
    response = measures.start_or_resume(session, access=acc, instrument_code=body.instrument)
    return check_in_json(response)


@router.put("/patients/{patient_id}/check-ins/{response_id}")
def answer_check_in(
    patient_id: str,
    response_id: str,
    body: CheckInAnswersIn,
    session: DbSession,
    actor: ApiWriter,
) -> dict[str, Any]:
    """Keep the answers so far (`submit`: false) or send them (scored, and run through the
    safety rules). A stale `version` is 409; a check-in already sent is 409."""
    acc = _self(session, actor, patient_id, "update")
    if not body.submit:
        response = measures.save_progress(
            session,
            access=acc,
            response_id=response_id,
            answers=body.answers,
            version=body.version,
            declined=body.declined,
        )
        return check_in_json(response)
    completed = checkin.submit(
        session,
        access=acc,
        response_id=response_id,
        answers=body.answers,
        version=body.version,
        declined=body.declined,
    )
    return check_in_json(completed.response)
