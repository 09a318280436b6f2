"""The registry as JSON at /api/v1: episodes, contacts, case reviews and recommendations, the
caseload and tasks. The same services as the pages; a bad field gets a 422 naming it, and a
create may carry an Idempotency-Key so a retry is not recorded twice."""

# No `from __future__ import annotations`: FastAPI reads the body models from the annotations.

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from concord import access, disclosure
from concord.access import PatientAccess
from concord.actions import recommendation
from concord.actions import registry as registry_actions
from concord.errors import InvalidInput, PermissionDenied
from concord.i18n import Msg
from concord.registry import caseload as cl
from concord.registry import reports
from concord.registry import reviews as rv
from concord.registry import service as reg
from concord.registry import tasks as tk
from concord.registry.models import Contact, Episode, Recommendation, RelapsePlan, WorkTask
from concord.registry.schemas import (
    ContactBody,
    DecisionIn,
    DiagnosisIn,
    EnrolIn,
    PatientViewIn,
    RelapsePlanIn,
    ReviewBody,
    ReviewRequestIn,
    StatusIn,
    TaskDoneIn,
    TaskIn,
    VoidContactIn,
)
from concord.web.deps import ApiActor, ApiWriter, DbSession
from concord.web.idempotency import Idempotent, create_once, earlier_record

router = APIRouter(prefix="/api/v1", tags=["registry"])


def _team(session: Session, actor: Any, patient_id: str, action: str = "read") -> PatientAccess:
    return access.team_access(session, actor.user, patient_id, action=action, object_type="Episode")


def _iso(value: Any) -> Any:
    return value.isoformat() if value else None


def episode_json(e: Episode) -> dict[str, Any]:
    return {
        "id": str(e.id),
        "patient_id": str(e.patient_id),
        "program": e.program,
        "status": e.status,
        "started_on": _iso(e.started_on),
        "ended_on": _iso(e.ended_on),
        "end_reason": e.end_reason,
        "care_manager_id": str(e.care_manager_id),
        "consultant_id": str(e.consultant_id) if e.consultant_id else None,
        "qualifying_diagnosis": (
            {
                "code": e.diagnosis_code,
                "system": e.diagnosis_system,
                "display": e.diagnosis_display,
                "source": "ehr",
                "imported_id": str(e.diagnosis_resource_id) if e.diagnosis_resource_id else None,
                "set_at": _iso(e.diagnosis_set_at),
                "set_by_id": str(e.diagnosis_set_by_id) if e.diagnosis_set_by_id else None,
            }
            if e.diagnosis_code
            else None
        ),
        "version": e.version,
    }


def contact_json(c: Contact) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "episode_id": str(c.episode_id),
        "occurred_on": _iso(c.occurred_on),
        "user_id": str(c.user_id),
        "role": c.role,
        "kind": c.kind,
        "mode": c.mode,
        "minutes": c.minutes,
        "note": c.note,
        "void": c.voided_at is not None,
    }


def recommendation_json(r: Recommendation) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "review_id": str(r.review_id),
        "kind": r.kind,
        "text": r.text,
        "status": r.status,
        "proposed_at": _iso(r.proposed_at),
        "decided_at": _iso(r.decided_at),
        "decline_reason": r.decline_reason,
        "intervention_id": str(r.intervention_id) if r.intervention_id else None,
        "patient_view": r.patient_view,
        "version": r.version,
    }


def task_json(t: WorkTask) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "patient_id": str(t.patient_id),
        "owner_id": str(t.owner_id) if t.owner_id else None,
        "title": t.title,
        "detail": t.detail,
        "source": t.source.split(":", 1)[0],
        "priority": t.priority,
        "due_on": _iso(t.due_on),
        "status": t.status,
    }


@router.get("/registry/caseload")
def caseload(
    request: Request,
    response: Response,
    session: DbSession,
    actor: ApiActor,
    scope: str = "mine",
) -> Any:
    """The caller's caseload (scope=mine) or the open episodes of their care teams (teams),
    with the same sort and filters as the page."""
    if not actor.user.is_clinician:
        raise PermissionDenied(Msg("The registry is for clinicians."))
    params: dict[str, Any] = {k: v for k, v in request.query_params.items() if k != "scope"}
    view = cl.view_from(params)
    _, shown = cl.caseload(
        session, by=actor.user, scope="teams" if scope == "teams" else "mine", view=view
    )
    # How many records the patients' consents withheld (the caller is on each one's team).
    response.headers["X-Concord-Withheld-By-Consent"] = str(disclosure.withheld_in_request(session))
    return [
        {
            "patient_id": str(r.patient.id),
            "patient": r.patient.display_name,
            "episode": episode_json(r.episode),
            "weeks": r.weeks,
            "measures": {
                code: {
                    "first": {"value": m.first.value, "on": _iso(m.first.on)} if m.first else None,
                    "latest": {"value": m.latest.value, "on": _iso(m.latest.on)}
                    if m.latest
                    else None,
                    "change_percent": m.change_percent,
                }
                for code, m in r.measures.items()
            },
            "status": r.status,
            # The measure the status is judged by (the program's own).
            "main_instrument": r.main_instrument,
            "last_contact": _iso(r.last_contact),
            "next_contact_due": _iso(r.next_due),
            "contacts": r.contacts,
            "open_alerts": r.open_alerts,
            "review": r.review,
            "plan_review_due": _iso(r.plan_review_on),
            "flags": [{"code": f.code, "rule": str(f.rule)} for f in r.flags],
        }
        for r in shown
    ]


@router.get("/patients/{patient_id}/episodes")
def episodes(patient_id: str, session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    return [episode_json(e) for e in reg.episodes_for(session, _team(session, actor, patient_id))]


@router.post("/patients/{patient_id}/episodes", status_code=201)
def enrol(
    patient_id: str,
    body: EnrolIn,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    acc = _team(session, actor, patient_id, "create")
    return create_once(
        session,
        actor,
        idem,
        create=lambda: _enrol(session, acc, body),
        replay=lambda result: episode_json(
            earlier_record(session, Episode, result, patient_id=acc.patient.id)
        ),
    )


def _enrol(session: Session, acc: Any, body: EnrolIn) -> tuple[str, Any]:
    episode = registry_actions.enroll(
        session,
        access=acc,
        data=reg.Enrolment(
            program=body.program,
            started_on=body.started_on,
            care_manager_id=body.care_manager_id,
            consultant_id=body.consultant_id,
        ),
    )
    return str(episode.id), episode_json(episode)


@router.post("/patients/{patient_id}/episodes/{episode_id}/status")
def episode_status(
    patient_id: str, episode_id: str, body: StatusIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    acc = _team(session, actor, patient_id, "update")
    episode = registry_actions.change_status(
        session,
        access=acc,
        episode_id=episode_id,
        status=body.status,
        reason=body.reason,
        version=body.version,
    )
    return episode_json(episode)


@router.post("/patients/{patient_id}/episodes/{episode_id}/diagnosis")
def episode_diagnosis(
    patient_id: str, episode_id: str, body: DiagnosisIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """An imported EHR diagnosis becomes the episode's qualifying diagnosis (issue 20)."""
    acc = _team(session, actor, patient_id, "update")
    episode = registry_actions.set_qualifying_diagnosis(
        session,
        access=acc,
        episode_id=episode_id,
        diagnosis_ref=body.diagnosis,
        version=body.version,
    )
    return episode_json(episode)


@router.get("/patients/{patient_id}/contacts")
def contacts(patient_id: str, session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    return [contact_json(c) for c in reg.contacts_for(session, _team(session, actor, patient_id))]


@router.post("/patients/{patient_id}/contacts", status_code=201)
def log_contact(
    patient_id: str,
    body: ContactBody,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    acc = _team(session, actor, patient_id, "create")
    return create_once(
        session,
        actor,
        idem,
        create=lambda: _log_contact(session, acc, body),
        replay=lambda result: contact_json(earlier_record(session, Contact, result)),
    )


def _log_contact(session: Session, acc: Any, body: ContactBody) -> tuple[str, Any]:
    made = registry_actions.log_contact(
        session,
        access=acc,
        data=reg.ContactIn(
            kind=body.kind,
            mode=body.mode,
            minutes=body.minutes,
            occurred_on=body.occurred_on,
            note=body.note,
            user_id=body.user_id,
        ),
    )
    return str(made.id), contact_json(made)


@router.post("/patients/{patient_id}/reviews", status_code=201)
def request_review(
    patient_id: str, body: ReviewRequestIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    acc = _team(session, actor, patient_id, "create")
    review = rv.request_review(
        session, access=acc, question=body.question, consultant_id=body.consultant_id
    )
    return {
        "id": str(review.id),
        "status": review.status,
        "consultant_id": str(review.consultant_id),
    }


@router.post("/patients/{patient_id}/reviews/record", status_code=201)
def record_review(
    patient_id: str,
    body: ReviewBody,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    acc = _team(session, actor, patient_id, "update")
    return create_once(
        session,
        actor,
        idem,
        create=lambda: _record_review(session, acc, body),
        replay=lambda result: {"id": result},
    )


def _record_review(session: Session, acc: Any, body: ReviewBody) -> tuple[str, Any]:
    review = registry_actions.record_review(
        session,
        access=acc,
        review_id=body.review_id,
        data=rv.ReviewIn(
            minutes=body.minutes,
            summary=body.summary,
            recommendations=[rv.RecommendationIn(r.kind, r.text) for r in body.recommendations],
            reviewed_on=body.reviewed_on,
        ),
    )
    return str(review.id), {
        "id": str(review.id),
        "status": review.status,
        "recommendations": [
            recommendation_json(r)
            for r in rv.recommendations_for(session, acc)
            if r.review_id == review.id
        ],
    }


@router.get("/patients/{patient_id}/recommendations")
def recommendations(patient_id: str, session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    acc = _team(session, actor, patient_id)
    return [recommendation_json(r) for r in rv.recommendations_for(session, acc)]


@router.post("/patients/{patient_id}/recommendations/{rec_id}/decision")
def decide(
    patient_id: str, rec_id: str, body: DecisionIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    acc = _team(session, actor, patient_id, "update")
    rec = recommendation.decide(
        session,
        access=acc,
        rec_id=rec_id,
        accept=body.accept,
        reason=body.reason,
        version=body.version,
    )
    return recommendation_json(rec)


@router.get("/tasks")
def my_tasks(session: DbSession, actor: ApiActor, done: bool = False) -> list[dict[str, Any]]:
    return [task_json(t) for t, _ in tk.my_tasks(session, actor.user, include_done=done)]


@router.post("/tasks/{task_id}/done")
def task_done(
    task_id: str, body: TaskDoneIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    return task_json(tk.complete_task(session, by=actor.user, task_id=task_id, note=body.note))


# --- the rest of the registry's pages: tasks given by hand, voiding a contact, the relapse plan,
# the patient's view of a recommendation, and the program, minutes and review-queue reads.


@router.get("/patients/{patient_id}/tasks")
def patient_tasks(patient_id: str, session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """The patient's tasks, open first (the registry tab's list)."""
    acc = _team(session, actor, patient_id)
    return [task_json(t) for t in tk.tasks_for_patient(session, acc)]


@router.post("/patients/{patient_id}/tasks", status_code=201)
def create_task(
    patient_id: str, body: TaskIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    """Give a task to someone on the care team (`owner_id`), or to yourself."""
    acc = _team(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        task = tk.create_task(
            session,
            access=acc,
            owner_id=body.owner_id,
            title=body.title,
            due_on=body.due_on,
            priority=body.priority,
            detail=body.detail,
        )
        return str(task.id), task_json(task)

    def replay(result: str) -> Any:
        return task_json(earlier_record(session, WorkTask, result, patient_id=acc.patient.id))

    return create_once(session, actor, idem, create=create, replay=replay)


@router.post("/patients/{patient_id}/contacts/{contact_id}/void")
def void_contact(
    patient_id: str, contact_id: str, body: VoidContactIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Take a contact logged by mistake out of the minutes, with the reason."""
    acc = _team(session, actor, patient_id, "update")
    return contact_json(
        registry_actions.void_contact(
            session, access=acc, contact_id=contact_id, reason=body.reason
        )
    )


def relapse_json(plan: RelapsePlan | None) -> dict[str, Any]:
    if plan is None:
        return {"version": 0, "content": {}, "updated_at": None}
    return {
        "id": str(plan.id),
        "version": plan.version,
        "content": plan.content,
        "updated_at": _iso(plan.updated_at),
        "updated_by": plan.updated_by.name if plan.updated_by else None,
    }


def _relapse_access(session: Session, actor: Any, patient_id: str, action: str) -> PatientAccess:
    # The team's page (/patients/{id}/relapse-plan) and the patient's (/my/relapse-plan).
    return access.record_access(
        session, actor.user, patient_id, action=action, object_type="RelapsePlan"
    )


@router.get("/patients/{patient_id}/relapse-plan")
def read_relapse_plan(patient_id: str, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    acc = _relapse_access(session, actor, patient_id, "read")
    return relapse_json(reg.relapse_plan_for(session, acc))


@router.put("/patients/{patient_id}/relapse-plan")
def write_relapse_plan(
    patient_id: str, body: RelapsePlanIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """A new version of the plan, from `base_version` (0 for a new plan); a stale one is 409."""
    acc = _relapse_access(session, actor, patient_id, "update")
    plan = reg.save_relapse_plan(
        session,
        access=acc,
        content=body.content,
        reason=body.reason,
        base_version=body.base_version,
    )
    return relapse_json(plan)


@router.post("/patients/{patient_id}/recommendations/{rec_id}/patient-view")
def patient_view(
    patient_id: str, rec_id: str, body: PatientViewIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """The patient says whether they agree with a proposed change (/my/plan)."""
    acc = access.record_access(
        session, actor.user, patient_id, action="update", object_type="Recommendation"
    )
    rec = rv.patient_view(session, access=acc, rec_id=rec_id, agree=body.agree, reason=body.reason)
    return recommendation_json(rec)


def _clinic(clinic: str | None) -> Any:
    if not clinic:
        return None
    cid = access.parse_id(clinic)
    if cid is None:
        raise InvalidInput.field("clinic", Msg("must be one of this organization's clinics"))
    return cid


@router.get("/registry/program")
def program(session: DbSession, actor: ApiActor, clinic: str | None = None) -> dict[str, Any]:
    """The program's figures (/registry/program): episodes by status, contact and measurement
    rates, response and remission at 10-24 weeks, caseload sizes."""
    p = reports.program_view(session, by=actor.user, clinic_id=_clinic(clinic))
    return {
        "on": _iso(p.on),
        "clinic": p.clinic.name if p.clinic else None,
        "by_status": p.by_status,
        "open_episodes": p.open_episodes,
        "contacted_30_days": p.contacted_30_days,
        "with_follow_up_measure": p.with_follow_up_measure,
        "band_10_24": p.band_10_24,
        "responded": p.responded,
        "remitted": p.remitted,
        "caseloads": [{"care_manager": name, "open": n} for name, n in p.caseloads],
    }


@router.get("/registry/minutes")
def minutes(
    session: DbSession, actor: ApiActor, month: str | None = None, clinic: str | None = None
) -> dict[str, Any]:
    """The month's minutes per patient, for billing (/registry/minutes and its CSV)."""
    on = reports.parse_month(month, reg.org_today(session, actor.user.organization_id))
    report = reports.minutes_report(session, by=actor.user, month=on, clinic_id=_clinic(clinic))
    return {
        "month": on.strftime("%Y-%m"),
        "clinic": report.clinic.name if report.clinic else None,
        "totals": report.totals,
        "rows": [
            {
                "patient_id": str(r.patient_id),
                "patient": r.patient_name,
                "mrn": r.mrn,
                "clinic": r.clinic,
                "program": r.program,
                "episode_started": _iso(r.episode_started),
                "month_kind": "initial" if r.initial else "subsequent",
                "care_manager_minutes": r.care_manager_minutes,
                "consultant_minutes": r.consultant_minutes,
                "other_minutes": r.other_minutes,
                "contacts": r.contacts,
                "codes": [{"code": c, "units": n} for c, n in r.codes.codes],
            }
            for r in report.rows
        ],
    }


@router.get("/registry/reviews")
def review_queue(session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """The consultant's review queue (/registry/reviews): most urgent first."""
    if not actor.user.is_clinician:
        raise PermissionDenied(Msg("The review queue is for clinicians."))
    return [
        {
            "patient_id": str(item.patient.id),
            "patient": item.patient.display_name,
            "episode": episode_json(item.episode),
            "reason": item.reason,
            "urgency": item.urgency,
            "waiting_since": _iso(item.waiting_since),
            "review_id": str(item.review.id) if item.review else None,
            "question": item.review.question if item.review else None,
        }
        for item in rv.queue(session, by=actor.user)
    ]
