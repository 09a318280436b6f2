"""A patient's medications as FHIR R4 `MedicationRequest` (prescribed here or in an EHR) and
`MedicationStatement` (what the patient, or an EHR, says they take): read, search by patient,
and create (accepted from an EHR, through the same action as the pages, so the whole list is
checked on this door too).

Mapping:
- medicationCodeableConcept: RxNorm (http://www.nlm.nih.gov/research/umls/rxnorm), the
  ingredient and, where known, the clinical drug; `text` the name as recorded.
- status: active, on-hold, stopped; statusReason the reason as written.
- subject, authoredOn (MedicationRequest) / dateAsserted and effectivePeriod (Statement),
  requester (the prescriber responsible, a Practitioner), informationSource (the patient for
  what they reported), dosageInstruction / dosage as text (dose, route, how often).
- meta.security: 42 CFR Part 2 labels where the record carries them (ADR 0021).
- note: a MOUD medication's course, each induction recorded on it (its day, the dose as
  written), those the asker may see (ADR 0025).

On create, an RxNorm code is taken as the ingredient only when Concord's vocabulary knows it
as one; any other code is kept as the clinical drug, and the medication is listed as not
checked (never guessed to an ingredient).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from concord import access
from concord.accounts.models import User
from concord.actions import medications as act
from concord.audit.service import record
from concord.errors import InvalidInput, NotFound
from concord.fhir.mapping import SYSTEM, _drop_empty, _instant, _ref
from concord.fhir.search import Query, allowed_codes, page_of
from concord.fhir.service import _labelled
from concord.fhir.validators import VALIDATORS
from concord.i18n import Msg
from concord.medications import service as meds
from concord.medications.models import (
    Medication,
    MedicationSource,
    MedicationStatus,
    MoudKind,
    MoudRecord,
)
from concord.medications.schemas import MedicationIn
from concord.medications.vocabulary import default_vocabulary
from concord.patients.models import Patient
from concord.validation import parse_date

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
KINDS = ("MedicationRequest", "MedicationStatement")
STATUS = {
    MedicationStatus.active: "active",
    MedicationStatus.on_hold: "on-hold",
    MedicationStatus.stopped: "stopped",
}
REQUEST_STATUS_SYSTEM = "http://hl7.org/fhir/CodeSystem/medicationrequest-status"
STATEMENT_STATUS_SYSTEM = "http://hl7.org/fhir/CodeSystem/medication-statement-status"
# What a created resource's status becomes (anything else is refused, naming the field).
STATUS_IN = {
    "active": MedicationStatus.active,
    "on-hold": MedicationStatus.on_hold,
    "stopped": MedicationStatus.stopped,
    "completed": MedicationStatus.stopped,
}


def kind_of(med: Medication) -> str:
    return "MedicationStatement" if med.reported else "MedicationRequest"


def _concept(med: Medication) -> dict[str, Any]:
    codings = []
    if med.rxcui:
        codings.append({"system": RXNORM, "code": med.rxcui, "display": med.name})
    if med.drug_rxcui and med.drug_rxcui != med.rxcui:
        codings.append({"system": RXNORM, "code": med.drug_rxcui})
    return _drop_empty({"coding": codings, "text": med.name})


def _dosage(med: Medication) -> list[dict[str, Any]]:
    text = " ".join(p for p in (med.dose, med.route, med.frequency) if p)
    return [{"text": text}] if text else []


def _inductions(records: Sequence[MoudRecord]) -> list[dict[str, Any]]:
    """A MOUD medication's course: each induction recorded on it (ADR 0025), oldest first, as
    a note with its day and the dose as written."""
    return [
        {"time": r.on.isoformat(), "text": f"Induction: {r.dose}" if r.dose else "Induction"}
        for r in sorted(records, key=lambda r: (r.on, r.created_at))
    ]


def medication_resource(
    med: Medication, patient: Patient, inductions: Sequence[MoudRecord] = ()
) -> dict[str, Any]:
    kind = kind_of(med)
    common = {
        "resourceType": kind,
        "id": str(med.id),
        "meta": {"lastUpdated": _instant(med.updated_at)},
        "identifier": [{"system": f"{SYSTEM}/medication", "value": str(med.id)}]
        + (
            [{"system": f"{SYSTEM}/ehr-identifier", "value": med.external_id}]
            if med.external_id
            else []
        ),
        "status": STATUS.get(med.status, "unknown"),
        "medicationCodeableConcept": _concept(med),
        "subject": _ref("Patient", patient.id, patient.display_name),
        "note": _inductions(inductions),
    }
    if kind == "MedicationRequest":
        reason = {"statusReason": {"text": med.status_reason}} if med.status_reason else {}
        return _drop_empty(
            {
                **common,
                **reason,
                "intent": "order",
                "authoredOn": _instant(med.created_at),
                "requester": _ref("Practitioner", med.prescriber_id, med.prescriber.name)
                if med.prescriber is not None
                else None,
                "dosageInstruction": _dosage(med),
                "dispenseRequest": {
                    "validityPeriod": _drop_empty(
                        {
                            "start": med.started_on.isoformat() if med.started_on else None,
                            "end": med.stopped_on.isoformat() if med.stopped_on else None,
                        }
                    )
                }
                if med.started_on or med.stopped_on
                else None,
            }
        )
    reason = [{"text": med.status_reason}] if med.status_reason else []
    source = (
        _ref("Patient", patient.id, patient.display_name)
        if med.source == MedicationSource.patient_reported
        else None
    )
    return _drop_empty(
        {
            **common,
            "statusReason": reason,
            "dateAsserted": _instant(med.created_at),
            "effectivePeriod": _drop_empty(
                {
                    "start": med.started_on.isoformat() if med.started_on else None,
                    "end": med.stopped_on.isoformat() if med.stopped_on else None,
                }
            ),
            "informationSource": source,
            "dosage": _dosage(med),
        }
    )


def _resource(
    session: Session, med: Medication, patient: Patient, inductions: Sequence[MoudRecord] = ()
) -> dict[str, Any]:
    return _labelled(session, med, patient, medication_resource(med, patient, inductions))


def _inductions_by_medication(
    session: Session, acc: Any, rows: Sequence[Medication]
) -> dict[Any, list[MoudRecord]]:
    """The inductions (MOUD records the asker may see) of the MOUD medications among `rows`:
    read once per patient, only when one of them is a MOUD medication."""
    if not any(meds.is_moud(m) for m in rows):
        return {}
    found: dict[Any, list[MoudRecord]] = {}
    for moud in meds.list_moud_records(session, access=acc):
        if moud.kind == MoudKind.induction and moud.medication_id is not None:
            found.setdefault(moud.medication_id, []).append(moud)
    return found


def read_medication(session: Session, *, by: User, kind: str, ident: str) -> dict[str, Any]:
    try:
        med, acc = meds.find_medication(session, by=by, ident=ident)
    except NotFound:
        raise NotFound(Msg("No such resource.")) from None
    if kind_of(med) != kind:
        raise NotFound(Msg("No such resource."))
    inductions = _inductions_by_medication(session, acc, [med]).get(med.id, [])
    return _resource(session, med, acc.patient, inductions)


def _record_access(session: Session, by: User, patient_id: Any, action: str = "read") -> Any:
    try:
        return access.record_access(
            session, by, patient_id, action=action, object_type="Medication"
        )
    except NotFound:
        return None


def search_medications(
    session: Session, *, by: User, kind: str, q: Query
) -> tuple[list[dict[str, Any]], str | None, int]:
    """A patient's medications of this kind (patient or subject is required)."""
    ids = q.patient_ids()
    if ids is None:
        raise InvalidInput.field("patient", Msg("is required: %(kind)s?patient=<id>", kind=kind))
    resources: list[dict[str, Any]] = []
    for ident in sorted(ids):
        acc = _record_access(session, by, ident)
        if acc is None:
            continue
        rows = [m for m in meds.list_medications(session, access=acc) if kind_of(m) == kind]
        inductions = _inductions_by_medication(session, acc, rows)
        resources += [_resource(session, m, acc.patient, inductions.get(m.id, [])) for m in rows]
    system = REQUEST_STATUS_SYSTEM if kind == "MedicationRequest" else STATEMENT_STATUS_SYSTEM
    wanted = allowed_codes(q.groups("status"), system, set(STATUS.values()))
    if wanted is not None:
        resources = [r for r in resources if r["status"] in wanted]
    return (*page_of(resources, q), len(resources))


# --- create (accepted from an EHR) ---------------------------------------------------------


def _patient_id(body: dict[str, Any]) -> str:
    subject = body.get("subject") or {}
    ref = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(ref, str) or not ref.startswith("Patient/"):
        raise InvalidInput.field("subject", Msg("must reference the patient: Patient/<id>"))
    return ref.removeprefix("Patient/")


def _codes(body: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(ingredient RxCUI, clinical drug RxCUI, name) from medicationCodeableConcept."""
    concept = body.get("medicationCodeableConcept")
    if not isinstance(concept, dict):
        raise InvalidInput.field(
            "medicationCodeableConcept", Msg("is required (medicationReference is not accepted)")
        )
    vocabulary = default_vocabulary()
    ingredient = drug = None
    name = concept.get("text")
    for coding in concept.get("coding") or []:
        if coding.get("system") != RXNORM or not coding.get("code"):
            continue
        code = str(coding["code"])
        if ingredient is None and vocabulary.entry(code) is not None:
            ingredient = code
            name = name or coding.get("display")
        elif drug is None:
            drug = code
            name = name or coding.get("display")
    if ingredient is None and not name:
        raise InvalidInput.field(
            "medicationCodeableConcept", Msg("needs an RxNorm coding or a text naming the drug")
        )
    return ingredient, drug, name


def _day(value: Any, field: str) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    return parse_date(value[:10], field)


def create_medication(
    session: Session, *, by: User, kind: str, body: Any
) -> tuple[dict[str, Any], str, list[Any]]:
    """Store a medication an EHR sent. Returns (resource, "created" | "replayed", the new
    findings of the whole-list check)."""
    if not isinstance(body, dict) or body.get("resourceType") != kind:
        raise InvalidInput.field("resourceType", Msg("must be %(kind)s", kind=kind))
    try:
        VALIDATORS[kind].model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise InvalidInput.field(where, Msg("is not valid FHIR R4")) from None
    acc = _record_access(session, by, _patient_id(body), action="create")
    if acc is None or not acc.on_team:
        # The same answer whether the patient is missing or out of reach (audited above, or
        # here for the patient's own token: EHR imports are the care team's).
        if acc is not None:
            access.refuse_record(session, acc, action="create", object_type="Medication")
        raise NotFound(Msg("No such patient."))
    external = None
    for identifier in body.get("identifier") or []:
        if identifier.get("value"):
            external = f"{identifier.get('system') or ''}|{identifier['value']}"[:200]
            break
    if external is not None:
        earlier = meds.find_by_external_id(session, access=acc, external_id=external)
        if earlier is not None:
            return _resource(session, earlier, acc.patient), "replayed", []
    status_text = body.get("status")
    status = STATUS_IN.get(status_text)
    if status is None:
        raise InvalidInput.field("status", Msg("must be active, on-hold, stopped or completed"))
    ingredient, drug, name = _codes(body)
    dosage = (body.get("dosageInstruction") or body.get("dosage") or [{}])[0]
    if kind == "MedicationRequest":
        period = (body.get("dispenseRequest") or {}).get("validityPeriod") or {}
        started = _day(period.get("start") or body.get("authoredOn"), "authoredOn")
    else:
        period = body.get("effectivePeriod") or {}
        started = _day(period.get("start") or body.get("effectiveDateTime"), "effectivePeriod")
    stopped = _day(period.get("end"), "period.end")
    prescriber = None
    requester = (body.get("requester") or {}).get("reference") or ""
    if requester.startswith("Practitioner/"):
        candidate = access.parse_id(requester.removeprefix("Practitioner/"))
        if candidate is not None and candidate in meds.team_member_ids(session, acc.patient.id):
            prescriber = candidate
    data = MedicationIn(
        rxcui=ingredient,
        drug_rxcui=drug,
        name=(name or None) and str(name)[:200],
        dose=(str(dosage.get("text"))[:100] if dosage.get("text") else None),
        started_on=started,
        stopped_on=stopped if status == MedicationStatus.stopped else None,
        prescriber_id=prescriber,
    )
    source = MedicationSource.ehr if kind == "MedicationRequest" else MedicationSource.ehr_statement
    done = act.add(session, access=acc, data=data, source=source, external_id=external)
    if status == MedicationStatus.on_hold:
        done = act.set_status(
            session,
            access=acc,
            medication_id=done.medication.id,
            status=status,
            reason="On hold in the EHR",
            version=done.medication.version,
        )
    record(
        session,
        by=by,
        action="create",
        object_type=kind,
        object_id=done.medication.id,
        patient_id=acc.patient.id,
        detail={"door": "fhir"},
    )
    # The findings this door may name: those the asker may see (42 CFR Part 2, consent).
    shown = {f.id for f in meds.list_findings(session, access=acc)}
    new = [f for f in done.check.new if f.id in shown]
    return _resource(session, done.medication, acc.patient), "created", new


def findings_outcome(findings: list[Any]) -> dict[str, Any]:
    """An OperationOutcome naming the findings the new medication raised (or that none did)."""
    issues = [
        {
            "severity": "warning",
            "code": "business-rule",
            "details": {
                "coding": [{"system": f"{SYSTEM}/CodeSystem/medication-rule", "code": f.rule_id}],
                "text": f.title,
            },
            "diagnostics": f"{f.severity}: {f.action} Source: {f.source_url}",
        }
        for f in findings
    ]
    return {
        "resourceType": "OperationOutcome",
        "issue": issues
        or [{"severity": "information", "code": "informational", "diagnostics": "No findings."}],
    }
