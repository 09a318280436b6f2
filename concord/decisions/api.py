"""Decisions made together as JSON at /api/v1: the aids, a patient's decisions, and each step
(values, a question, SURE, the outcome). The same services and rules as the pages; a bad field
gets a 422 naming it; recording the outcome may carry an Idempotency-Key."""

# No `from __future__ import annotations`: FastAPI reads the body models from the annotations.

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from concord import access
from concord.access import PatientAccess
from concord.actions import decisions as decision_actions
from concord.careplans.api import message_json
from concord.decisions import reports
from concord.decisions import service as ds
from concord.decisions.aids import ATTRIBUTES, Aid
from concord.decisions.models import Decision
from concord.decisions.schemas import OutcomeIn, QuestionIn, StartIn, SureIn, ValuesIn
from concord.web.deps import ApiActor, ApiWriter, DbSession
from concord.web.idempotency import Idempotent, create_once

router = APIRouter(prefix="/api/v1", tags=["decisions"])


def _access(session: Session, actor: Any, patient_id: str, action: str = "read") -> PatientAccess:
    return access.patient_for(
        session, actor.user, patient_id, action=action, object_type="Decision"
    )


def aid_json(aid: Aid) -> dict[str, Any]:
    return {
        "id": aid.id,
        "version": aid.version,
        "last_reviewed": aid.last_reviewed.isoformat(),
        "title": dict(aid.title),
        "question": dict(aid.question),
        "for_whom": dict(aid.for_whom),
        "not_for": dict(aid.not_for) if aid.not_for else None,
        "summary": dict(aid.summary),
        "options": [
            {
                "id": o.id,
                "name": dict(o.name),
                "attributes": {a: dict(o.attributes[a]) for a in ATTRIBUTES},
                "sources": {a: list(ids) for a, ids in o.sources.items()},
                "intervention": {"category": o.category, "description": dict(o.intervention)},
            }
            for o in aid.options
        ],
        "values": [
            {
                "id": v.id,
                "label": dict(v.label),
                "fits": {k: {"fit": f.fit, "why": dict(f.why)} for k, f in v.fits.items()},
            }
            for v in aid.values
        ],
        "sources": [
            {"id": s.id, "citation": s.citation, "url": s.url} for s in aid.sources.values()
        ],
    }


def decision_json(d: Decision) -> dict[str, Any]:
    aid = ds.aid_of(d)
    readiness = ds.readiness(d)
    return {
        "id": str(d.id),
        "patient_id": str(d.patient_id),
        "aid": d.aid_id,
        "aid_version": d.aid_version,
        "status": d.status,
        "values": list(d.values),
        "values_note": d.values_note,
        "leaning": d.leaning,
        "questions": list(d.questions),
        "sure": dict(d.sure) if d.sure else None,
        "sure_score": d.sure_score,
        "ready": readiness.ready if readiness else None,
        "missing": readiness.missing if readiness else None,
        "fit": [
            {"option": s.option.id, "good": s.good, "some": s.some, "poor": s.poor}
            for s in ds.fit_summary(aid, list(d.values))
        ]
        if aid
        else [],
        "considered": list(d.considered),
        "choice": d.choice,
        "reasons": d.reasons,
        "participants": list(d.participants),
        "decided_on": d.decided_on.isoformat() if d.decided_on else None,
        "recorded_by_id": str(d.recorded_by_id) if d.recorded_by_id else None,
        "intervention_id": str(d.intervention_id) if d.intervention_id else None,
        "fhir": f"QuestionnaireResponse/decision-{d.id}",
        "version": d.version,
    }


@router.get("/decision-aids")
def aids(actor: ApiActor) -> list[dict[str, Any]]:
    return [aid_json(a) for a in ds.offered_aids()]


@router.get("/patients/{patient_id}/decisions")
def decisions(patient_id: str, session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    acc = _access(session, actor, patient_id)
    return [decision_json(d) for d in ds.list_decisions(session, access=acc)]


@router.post("/patients/{patient_id}/decisions")
def start(patient_id: str, body: StartIn, session: DbSession, actor: ApiWriter) -> Any:
    """The open decision on this aid, or a new one (starting twice gives the same one)."""
    acc = _access(session, actor, patient_id, "create")
    return decision_json(ds.start(session, access=acc, aid_id=body.aid))


@router.get("/patients/{patient_id}/decisions/{decision_id}")
def read(patient_id: str, decision_id: str, session: DbSession, actor: ApiActor) -> Any:
    acc = _access(session, actor, patient_id)
    return decision_json(ds.get_decision(session, access=acc, decision_id=decision_id))


@router.put("/patients/{patient_id}/decisions/{decision_id}/values")
def values(
    patient_id: str, decision_id: str, body: ValuesIn, session: DbSession, actor: ApiWriter
) -> Any:
    acc = _access(session, actor, patient_id, "update")
    return decision_json(
        ds.save_values(
            session,
            access=acc,
            decision_id=decision_id,
            values=body.values,
            note=body.note,
            leaning=body.leaning,
            base_version=body.version,
        )
    )


@router.post("/patients/{patient_id}/decisions/{decision_id}/questions")
def question(
    patient_id: str, decision_id: str, body: QuestionIn, session: DbSession, actor: ApiWriter
) -> Any:
    acc = _access(session, actor, patient_id, "update")
    decision, sent = decision_actions.ask(
        session, access=acc, decision_id=decision_id, text=body.text
    )
    return {**decision_json(decision), "message": message_json(sent)}


@router.put("/patients/{patient_id}/decisions/{decision_id}/sure")
def sure(
    patient_id: str, decision_id: str, body: SureIn, session: DbSession, actor: ApiWriter
) -> Any:
    acc = _access(session, actor, patient_id, "update")
    return decision_json(
        ds.save_sure(session, access=acc, decision_id=decision_id, answers=body.model_dump())
    )


@router.post("/patients/{patient_id}/decisions/{decision_id}/outcome")
def outcome(
    patient_id: str,
    decision_id: str,
    body: OutcomeIn,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    acc = _access(session, actor, patient_id, "update")
    return create_once(
        session,
        actor,
        idem,
        create=lambda: _record_outcome(session, acc, decision_id, body),
        replay=lambda _result: decision_json(
            ds.get_decision(session, access=acc, decision_id=decision_id, audit=False)
        ),
    )


def _record_outcome(
    session: Session, acc: Any, decision_id: str, body: OutcomeIn
) -> tuple[str, Any]:
    decision = ds.record_outcome(
        session,
        access=acc,
        decision_id=decision_id,
        outcome=body.to_outcome(),
        base_version=body.version,
    )
    return str(decision.id), decision_json(decision)


@router.post("/patients/{patient_id}/decisions/{decision_id}/questions/{index}/answered")
def question_answered(
    patient_id: str, decision_id: str, index: int, session: DbSession, actor: ApiWriter
) -> Any:
    """The team marks the patient's question (by its place in the list, from 0) answered."""
    acc = _access(session, actor, patient_id, "update")
    return decision_json(
        ds.mark_answered(session, access=acc, decision_id=decision_id, index=index)
    )


@router.post("/patients/{patient_id}/decisions/{decision_id}/collaborate", status_code=201)
def collaborate(patient_id: str, decision_id: str, session: DbSession, actor: ApiWriter) -> Any:
    """The patient starts (or resumes) CollaboRATE about the visit, once the decision is
    recorded: the answer names the check-in to answer (PUT /patients/{id}/check-ins/{id})."""
    acc = _access(session, actor, patient_id, "update")
    if not acc.is_self:
        raise access.refuse_record(session, acc, action="update", object_type="Decision")
    target = reports.start_collaborate(session, access=acc, decision_id=decision_id)
    return {"check_in_id": target.rsplit("/", 1)[-1]}
