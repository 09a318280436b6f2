"""The team decides on a psychiatric consultant's recommendation.

Accepted: the care plan is revised (the recommendation becomes an intervention in a new
revision, which the patient is then asked to agree to: careplans), the recommendation is marked
and its review's task closed (registry), and the patient's tasks follow the flags (the new
revision awaits agreement). Declined: marked with the reason, tasks likewise. The registry no
longer reaches up into careplans to do the first step.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.careplans import service as plans
from concord.careplans.reasons import REVIEW_ACCEPTED, system_reason
from concord.careplans.schemas import InterventionIn
from concord.errors import Conflict
from concord.i18n import Msg
from concord.registry import reviews as rv
from concord.registry.jobs import sync_patient_tasks
from concord.registry.models import Recommendation, RecommendationKind


def decide(
    session: Session,
    *,
    access: PatientAccess,
    rec_id: Any,
    accept: bool,
    reason: str | None = None,
    version: int | None = None,
) -> Recommendation:
    rec, words = rv.check_decision(
        session, access=access, rec_id=rec_id, accept=accept, reason=reason, version=version
    )
    intervention_id = None
    if accept:
        if plans.current_plan(session, access.patient.id) is None:
            raise Conflict(
                Msg(
                    "This patient has no current care plan: start one, then accept the "
                    "recommendation."
                )
            )
        consultant, reviewed_on = rv.accepted_by(session, rec)
        reason, reason_message = system_reason(
            REVIEW_ACCEPTED, words or None, consultant=consultant, date=reviewed_on
        )
        item = plans.add_item(
            session,
            access=access,
            section="interventions",
            data=InterventionIn(
                kind=rv.INTERVENTION_KIND[RecommendationKind(rec.kind)],
                description=rec.text,
                responsible_id=None,
            ),
            reason=reason,
            reason_message=reason_message,
        )
        intervention_id = item.id
    rec = rv.record_decision(
        session, access=access, rec=rec, words=words, intervention_id=intervention_id
    )
    sync_patient_tasks(session, access.patient.id)
    return rec
