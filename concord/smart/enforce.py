"""What a SMART token may ask of /fhir: its scopes name the types and operations; a patient/
scope keeps every answer to the patient in context. Both only take away from what the
token's person may see (Concord's access rules and consent decide that, as for any token)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from concord.audit.models import Outcome
from concord.audit.service import record
from concord.errors import NotFound, PermissionDenied
from concord.i18n import Msg
from concord.smart.service import SmartAccess

# Types that hold no patient's data: a patient/ scope does not need to narrow them.
NOT_PATIENT_DATA = frozenset({"Questionnaire", "Measure", "Practitioner"})
# Where each type names its patient.
PATIENT_FIELDS = ("subject", "patient", "for", "beneficiary")


def _refuse(session: Session, smart: SmartAccess, kind: str, op: str) -> PermissionDenied:
    record(
        session,
        by=smart.user,
        action="read" if op in ("r", "s") else "write",
        object_type=kind[:40],
        outcome=Outcome.denied,
        detail={"smart_client": str(smart.client.id), "needs": f"{kind[:40]}.{op}"},
    )
    return PermissionDenied(
        Msg(
            "This app's token may not do this (insufficient_scope): it needs a scope for "
            "%(kind)s.%(op)s.",
            kind=kind[:40],
            op=op,
        )
    )


def patient_bound(smart: SmartAccess, kind: str, op: str) -> bool:
    """Whether only patient/ scopes allow this, so the answer keeps to the patient."""
    matching = smart.scopes.allows(kind, op)
    return bool(matching) and all(s.context == "patient" for s in matching)


def check(session: Session, smart: SmartAccess | None, kind: str, op: str) -> None:
    if smart is None:
        return
    if not smart.scopes.allows(kind, op):
        raise _refuse(session, smart, kind, op)
    if patient_bound(smart, kind, op) and smart.patient_id is None and kind not in NOT_PATIENT_DATA:
        raise _refuse(session, smart, kind, op)


def narrow_search(
    session: Session,
    smart: SmartAccess | None,
    kind: str,
    pairs: list[tuple[str, str]],
    patient_params: dict[str, dict[str, str]],
) -> list[tuple[str, str]]:
    """The search, with the patient in context added where a patient/ scope allows it: the
    parameters AND together, so another patient named is simply not found."""
    check(session, smart, kind, "s")
    assert smart is None or smart.scopes
    if smart is None or not patient_bound(smart, kind, "s") or kind in NOT_PATIENT_DATA:
        return pairs
    pid = str(smart.patient_id)
    if kind == "Patient":
        return [*pairs, ("_id", pid)]
    if "patient" in patient_params.get(kind, {}):
        return [*pairs, ("patient", f"Patient/{pid}")]
    raise _refuse(session, smart, kind, "s")


def _patient_of(resource: dict[str, Any]) -> str | None:
    for name in PATIENT_FIELDS:
        value = resource.get(name)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            return value["reference"].rsplit("/", 2)[-1] if "Patient/" in value["reference"] else ""
    return None


def check_resource(
    session: Session, smart: SmartAccess | None, kind: str, resource: dict[str, Any]
) -> None:
    """After a read: a patient-bound token gets only the patient in context's resources;
    anything else is not found (and the refusal is in the trail)."""
    if smart is None or not patient_bound(smart, kind, "r") or kind in NOT_PATIENT_DATA:
        return
    pid = str(smart.patient_id)
    owner = resource.get("id") if kind == "Patient" else _patient_of(resource)
    if owner == pid:
        return
    record(
        session,
        by=smart.user,
        action="read",
        object_type=kind[:40],
        object_id=str(resource.get("id", ""))[:64],
        outcome=Outcome.denied,
        detail={"smart_client": str(smart.client.id), "outside": "patient context"},
    )
    raise NotFound(Msg("No such resource."))


def check_system_wide(session: Session, smart: SmartAccess | None, kind: str) -> None:
    """For answers about many patients at once (a measure's population): not for a token
    kept to one patient."""
    check(session, smart, kind, "r")
    if smart is not None and patient_bound(smart, kind, "r"):
        raise _refuse(session, smart, kind, "r")
