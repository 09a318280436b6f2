"""Social needs as FHIR R4 (issue 23, the HL7 SDOH Clinical Care IG's shapes): a health concern
as a `Condition`, a referral as a `ServiceRequest` and the `Task` that tracks its fulfilment.

Their ids carry a prefix (`concord-sdoh-` a concern, `concord-referral-` a referral) that the
EHR import refuses for the same types (concord.ehr.service.RESERVED_ID_PREFIXES), so a
Condition or ServiceRequest Concord keeps never shares an id with one an EHR sent, and a
referral's Task never shares one with a safety alert's (a bare id). Each read goes through the social-needs service (the record's
access, the disclosure decision for the purpose, the audit trail); nothing is queried here.

Mapping:
- Condition: category US Core `health-concern` and the SDOHCC domain; code SNOMED CT and
  ICD-10-CM where needs.yaml names them (text: the patient's words, else the domain's name);
  clinicalStatus active (proposed, confirmed), resolved, or inactive when the patient declined;
  verificationStatus provisional (proposed), confirmed, refuted (declined); a resolved concern
  carries none (whether the patient had confirmed it before is not kept).
- ServiceRequest: category the SDOHCC domain; code the service asked for (its name, as text:
  no procedure code is kept); performer the community organization and service by name;
  requester the clinician (or the patient, for a self-referral); reasonReference the concern.
- Task: status the referral's (the SDOHCC referral Task statuses are FHIR Task statuses);
  code `fulfill`; focus the ServiceRequest; owner the service by name; statusReason the
  reason given to decline, cancel, pause or fail; output what was done.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from concord import access
from concord.accounts.models import User
from concord.ehr.service import RESERVED_ID_PREFIXES
from concord.errors import InvalidInput, NotFound
from concord.fhir.mapping import _drop_empty, _instant, _ref, person_ref
from concord.fhir.measures import SDOHCC_CATEGORY
from concord.fhir.safety import TASK_STATUS_CODES
from concord.fhir.search import (
    Query,
    Token,
    _split,
    _token,
    allowed_codes,
    codings_match,
    patients_named,
)
from concord.i18n import Msg
from concord.patients.models import Patient
from concord.social import service as social
from concord.social.models import ConcernStatus, Referral, ReferralStatus, SocialConcern

CONCERN_PREFIX = RESERVED_ID_PREFIXES["Condition"]
REFERRAL_PREFIX = RESERVED_ID_PREFIXES["ServiceRequest"]
CONDITION_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
TASK_STATUS = "http://hl7.org/fhir/task-status"

CLINICAL_STATUS = {
    ConcernStatus.proposed: "active",
    ConcernStatus.confirmed: "active",
    ConcernStatus.declined: "inactive",
    ConcernStatus.resolved: "resolved",
}
VERIFICATION_STATUS = {
    ConcernStatus.proposed: "provisional",
    ConcernStatus.confirmed: "confirmed",
    ConcernStatus.declined: "refuted",
}
# The referral's Task status -> its ServiceRequest's (R4 RequestStatus).
REQUEST_STATUS = {
    ReferralStatus.draft: "draft",
    ReferralStatus.requested: "active",
    ReferralStatus.accepted: "active",
    ReferralStatus.in_progress: "active",
    ReferralStatus.on_hold: "on-hold",
    ReferralStatus.completed: "completed",
    ReferralStatus.rejected: "revoked",
    ReferralStatus.cancelled: "revoked",
    ReferralStatus.failed: "revoked",
    ReferralStatus.entered_in_error: "entered-in-error",
}
PATIENT_REPORT = {
    "got_help": "The patient says they got help.",
    "nobody_called": ("The patient says nobody called them."),
}


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return _drop_empty({"system": system, "code": code, "display": display})


def _domain(code: str) -> dict[str, Any]:
    return {"coding": [_coding(SDOHCC_CATEGORY, code, social.domain_label(code))]}


def condition_resource(concern: SocialConcern, patient: Patient) -> dict[str, Any]:
    spec = social.domains().get(concern.domain, {})
    codings = []
    for system, name in ((SNOMED, "snomed"), (ICD10CM, "icd10")):
        code = getattr(concern, name)
        if code:
            display = (spec.get(name) or {}).get("display")
            codings.append(_coding(system, code, display if display else None))
    status = ConcernStatus(concern.status)
    verification = VERIFICATION_STATUS.get(status)
    return _drop_empty(
        {
            "resourceType": "Condition",
            "id": f"{CONCERN_PREFIX}{concern.id}",
            "meta": {"lastUpdated": _instant(concern.updated_at)},
            "clinicalStatus": {"coding": [_coding(CLINICAL, CLINICAL_STATUS[status])]},
            "verificationStatus": {"coding": [_coding(VERIFICATION, verification)]}
            if verification
            else None,
            "category": [
                {"coding": [_coding(CONDITION_CATEGORY, "health-concern", "Health Concern")]},
                _domain(concern.domain),
            ],
            "code": _drop_empty(
                {
                    "coding": codings,
                    "text": concern.patient_words or social.domain_label(concern.domain),
                }
            ),
            "subject": _ref("Patient", patient.id, patient.display_name),
            "recordedDate": _instant(concern.created_at),
            "abatementDateTime": _instant(concern.resolved_at)
            if status == ConcernStatus.resolved and concern.resolved_at
            else None,
            "evidence": [{"detail": [_ref("QuestionnaireResponse", concern.source_response_id)]}]
            if concern.source_response_id
            else None,
            "note": [{"text": concern.decline_reason}]
            if status == ConcernStatus.declined and concern.decline_reason
            else None,
        }
    )


def _performer(referral: Referral) -> dict[str, Any]:
    service = referral.service
    return {"display": f"{service.provider_name}: {service.name}"}


def service_request_resource(referral: Referral, patient: Patient) -> dict[str, Any]:
    status = ReferralStatus(referral.status)
    return _drop_empty(
        {
            "resourceType": "ServiceRequest",
            "id": f"{REFERRAL_PREFIX}{referral.id}",
            "meta": {"lastUpdated": _instant(referral.updated_at)},
            "status": REQUEST_STATUS[status],
            "intent": "order",
            "category": [_domain(referral.domain)],
            "code": {"text": referral.service.name},
            "subject": _ref("Patient", patient.id, patient.display_name),
            "authoredOn": _instant(referral.requested_at),
            "requester": person_ref(referral.created_by, patient),
            "performer": [_performer(referral)],
            "reasonReference": [_ref("Condition", f"{CONCERN_PREFIX}{referral.concern_id}")]
            if referral.concern_id
            else None,
            "supportingInfo": [_ref("Consent", referral.consent_id)]
            if referral.consent_id
            else None,
            "replaces": [_ref("ServiceRequest", f"{REFERRAL_PREFIX}{referral.replaces_id}")]
            if referral.replaces_id
            else None,
            "note": [{"text": referral.shared_summary}],
        }
    )


def task_resource(referral: Referral, patient: Patient) -> dict[str, Any]:
    status = ReferralStatus(referral.status)
    notes = []
    if referral.patient_report in PATIENT_REPORT:
        notes.append(
            _drop_empty(
                {
                    "text": PATIENT_REPORT[referral.patient_report],
                    "time": _instant(referral.patient_report_at)
                    if referral.patient_report_at
                    else None,
                }
            )
        )
    return _drop_empty(
        {
            "resourceType": "Task",
            "id": f"{REFERRAL_PREFIX}{referral.id}",
            "meta": {"lastUpdated": _instant(referral.updated_at)},
            "status": status.value,
            "statusReason": {"text": referral.status_reason}
            if referral.status_reason and status != ReferralStatus.completed
            else None,
            "intent": "order",
            "code": {"coding": [_coding(TASK_CODE, "fulfill", "Fulfill the focal request")]},
            "focus": _ref("ServiceRequest", f"{REFERRAL_PREFIX}{referral.id}"),
            "for": _ref("Patient", patient.id, patient.display_name),
            "authoredOn": _instant(referral.requested_at),
            "lastModified": _instant(referral.updated_at),
            "requester": person_ref(referral.created_by, patient),
            "owner": _performer(referral),
            "restriction": {"period": {"end": referral.respond_by.isoformat()}}
            if status == ReferralStatus.requested
            else None,
            "executionPeriod": {"end": _instant(referral.closed_at)}
            if referral.closed_at
            else None,
            "note": notes or None,
            "output": [{"type": {"text": "What was done"}, "valueString": referral.outcome}]
            if referral.outcome
            else None,
        }
    )


# --- reads ------------------------------------------------------------------------------------


def is_social(kind: str, ident: str) -> bool:
    """Whether a read of `kind/ident` is one of the social-needs resources (by its prefix)."""
    if kind == "Condition":
        return ident.startswith(CONCERN_PREFIX)
    return kind in ("ServiceRequest", "Task") and ident.startswith(REFERRAL_PREFIX)


def read(session: Session, *, by: User, kind: str, ident: str) -> dict[str, Any]:
    try:
        if kind == "Condition":
            concern, acc = social.find_concern(
                session, by=by, ident=ident.removeprefix(CONCERN_PREFIX)
            )
            return condition_resource(concern, acc.patient)
        referral, acc = social.find_referral(
            session, by=by, ident=ident.removeprefix(REFERRAL_PREFIX)
        )
    except NotFound:
        raise NotFound(Msg("No such resource.")) from None
    if kind == "ServiceRequest":
        return service_request_resource(referral, acc.patient)
    return task_resource(referral, acc.patient)


# --- searches ---------------------------------------------------------------------------------


def search_by_patient(
    session: Session, *, by: User, kind: str, pairs: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Condition and ServiceRequest by patient (patient or subject): the patient's concerns or
    referrals, each patient through the record's access (one outside it is left out, as a
    missing one, audited) and the service's list (disclosure decision, audited). Without a
    patient, those of every patient the caller may read."""
    if kind not in ("Condition", "ServiceRequest"):
        return []
    found: list[dict[str, Any]] = []
    for acc in _scope(session, by, patients_named(pairs), _object(kind)):
        if kind == "Condition":
            found += [
                condition_resource(c, acc.patient)
                for c in social.list_concerns(session, access=acc)
            ]
        else:
            found += [
                service_request_resource(r, acc.patient)
                for r in social.list_referrals(session, access=acc)
            ]
    return found


def _scope(
    session: Session, by: User, wanted: set[str] | None, object_type: str
) -> list[access.PatientAccess]:
    if wanted is None:
        return social.patients_with(session, by=by, object_type=object_type)
    return access.records_among(session, by, wanted, object_type=object_type) or []


CATEGORY_KINDS = ("Condition", "ServiceRequest")


def category_groups(
    pairs: Sequence[tuple[str, str]],
) -> tuple[list[tuple[str, str]], list[list[Token]]]:
    """A Condition or ServiceRequest search's `category` (token: code, system|code; a comma
    ORs, a repeat ANDs), taken out of the pairs the imported search reads."""
    rest = [(name, value) for name, value in pairs if name != "category"]
    groups = [
        [_token("category", part) for part in _split(value, ",")]
        for name, value in pairs
        if name == "category"
    ]
    return rest, groups


def in_categories(resource: dict[str, Any], groups: list[list[Token]]) -> bool:
    """Whether one of the resource's categories satisfies every group (the imported ones as
    sent, Concord's own as mapped here)."""
    codings = [
        coding
        for concept in resource.get("category") or []
        if isinstance(concept, dict)
        for coding in concept.get("coding") or []
        if isinstance(coding, dict)
    ]
    return codings_match(groups, codings)


def _object(kind: str) -> str:
    return social.CONCERN if kind == "Condition" else social.REFERRAL


def referral_tasks(session: Session, *, by: User, q: Query) -> list[dict[str, Any]]:
    """A search of Task: the referrals' Tasks of the patients named (none named: of every
    patient the caller may read); status narrows them; an owner (a person, on the other
    Tasks) matches none."""
    if q.has("owner"):
        return []
    codes = TASK_STATUS_CODES  # every Task status (the other Tasks take "ready")
    for group in q.groups("status"):
        unknown = sorted({t.code for t in group if t.code and t.code not in codes})
        if unknown:
            raise InvalidInput.field(
                "status", Msg("must be one of: %(allowed)s", allowed=", ".join(sorted(codes)))
            )
    statuses = allowed_codes(q.groups("status"), TASK_STATUS, codes)
    found = []
    for acc in _scope(session, by, q.patient_ids(), social.REFERRAL):
        for referral in social.list_referrals(session, access=acc):
            if statuses is None or referral.status in statuses:
                found.append(task_resource(referral, acc.patient))
    return found
