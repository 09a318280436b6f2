"""The CDS Hooks door (issue 19): GET /cds-services (discovery) and POST /cds-services/{id}
(order-select, order-sign). Parses the hook request (concord.cds.hooks), calls the one check
(concord.actions.medication_check) and answers cards. docs/cds-hooks.md; ADR none: the choices
(Concord API tokens with the cds scope instead of the EHR's signed JWT; no call to the EHR's
FHIR server) are written there.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from concord.accounts.models import TokenScope
from concord.actions.medication_check import check_orders
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.cds import hooks
from concord.errors import ConcordError, NotFound, PermissionDenied
from concord.i18n import Msg
from concord.medications.vocabulary import default_vocabulary
from concord.web.deps import Actor, DbSession, bearer_actor

router = APIRouter(prefix="/cds-services")


class PrefetchMissing(ConcordError):
    """CDS Hooks: 412 when the service cannot get the data it needs (no current list in the
    prefetch, and none it may read)."""

    status_code = 412
    code = "precondition_failed"


def cds_actor(request: Request, session: DbSession) -> Actor:
    """A clinician's Concord API token with the cds scope: deny by default."""
    actor = bearer_actor(request, session)
    problem = None
    if actor.token is None or actor.token.scope != TokenScope.cds:
        problem = Msg(
            "This token may not ask the CDS Hooks service: use a token with the cds scope."
        )
    elif not actor.user.is_clinician:
        problem = Msg("Only a clinician's token may ask the CDS Hooks service.")
    if problem is not None:
        record(
            session,
            by=actor.user,
            action="medication_check",
            object_type="MedicationList",
            object_id=request.path_params.get("service_id", "")[:64],
            outcome=Outcome.denied,
        )
        raise PermissionDenied(problem)
    return actor


CdsActor = Annotated[Actor, Depends(cds_actor)]


@router.get("")
def discovery() -> dict[str, Any]:
    """The services Concord offers (no patient data; open, as CDS clients read it to register)."""
    return hooks.discovery()


@router.post("/{service_id}/feedback")
def feedback(
    service_id: str,
    session: DbSession,
    actor: CdsActor,
    body: Annotated[Any, Body()] = None,
) -> dict[str, Any]:
    """What the clinician did with each card (CDS Hooks 2.0 feedback): every outcome is in the
    audit trail, an override with its reason (the code, and whether a comment was written; never
    the comment's text, which may name the patient)."""
    service = hooks.SERVICES.get(service_id)
    if service is None:
        raise NotFound(Msg("There is no CDS service with this id."))
    for item in hooks.parse_feedback(body):
        record(
            session,
            by=actor.user,
            action="medication_override" if item.outcome == "overridden" else "medication_accept",
            object_type="MedicationList",
            object_id=item.card,
            detail={
                "service": service.id,
                "outcome": item.outcome,
                "reason_system": item.reason_system or "",
                "reason_code": item.reason_code or "",
                "comment": item.comment,
                "suggestions": item.suggestions,
            },
        )
    return {}


@router.post("/{service_id}")
def call_service(
    service_id: str,
    session: DbSession,
    actor: CdsActor,
    body: Annotated[Any, Body()] = None,
) -> dict[str, Any]:
    service = hooks.SERVICES.get(service_id)
    if service is None:
        raise NotFound(Msg("There is no CDS service with this id."))
    request = hooks.parse(body, service)
    vocabulary = default_vocabulary()
    orders, unchecked = hooks.known(request.orders, vocabulary)
    others, _ = hooks.known(request.others, vocabulary)
    current = None if request.current is None else hooks.known(request.current, vocabulary)[0]
    try:
        result = check_orders(
            session,
            by=actor.user,
            orders=orders,
            current=current,
            others=others,
            patient_id=request.patient_id,
            birth_date=request.birth_date,
            detail={"service": service.id, "hook": service.hook},
        )
    except NotFound:
        raise PrefetchMissing(
            Msg(
                "Send the patient's current medications in the prefetch "
                "(medicationRequests or medicationStatements): Concord has no list of this "
                "patient it may read."
            )
        ) from None
    lang = actor.user.language or "en"
    cards = [
        hooks.card(f, orders=request.orders, vocabulary=vocabulary, lang=lang)
        for f in result.findings
    ]
    if unchecked:
        cards.append(hooks.unchecked_card(unchecked, lang))
    return {"cards": cards}
