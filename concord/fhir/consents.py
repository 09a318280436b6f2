"""A patient's consents as FHIR R4 `Consent` resources (read, and search by patient).

Mapping (FHIR R4 Consent; the codes as the specification's examples use them):
- status: active; a revoked or expired consent is "inactive"; entered in error as such.
- scope: consentscope#patient-privacy; category: LOINC 59284-0 (Patient consent).
- patient, dateTime (when recorded), performer (the patient, who gave it), organization (by
  name: Concord serves no Organization resource).
- sourceReference: the scanned paper by its document identifier; sourceAttachment: the portal
  signature (the name typed and the day).
- policy / policyRule: for substance-use records, 42 CFR Part 2 § 2.31 and v3-ActCode
  42CFRPart2; otherwise v3-ActCode OPTIN (permit) or OPTOUT (deny).
- provision: type, period, actor (role v3-ParticipationType IRCP, the recipient), purpose
  (v3-ActReason where one fits, else Concord's code), securityLabel (Concord's data category;
  v3-ActCode ETH for substance use).

Who may read them: the care team and the patient (FHIR returns whole records; a family member
reads their own consents in the portal and the JSON API). Anyone else: not found.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from concord import access
from concord.accounts import organizations
from concord.accounts.models import User
from concord.audit.service import record
from concord.clock import now
from concord.consents import service as consents
from concord.consents.labels import grantee_name, sentence
from concord.consents.models import Consent, ConsentState, GranteeKind, Method, Provision
from concord.errors import InvalidInput, NotFound
from concord.fhir.mapping import SYSTEM, _drop_empty, _instant, _ref
from concord.fhir.search import Query, allowed_codes, page_of
from concord.i18n import Msg
from concord.patients import service as patients
from concord.patients.models import Patient

CONSENT_STATUS_SYSTEM = "http://hl7.org/fhir/consent-state-codes"
SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC = "http://loinc.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CATEGORY_SYSTEM = f"{SYSTEM}/CodeSystem/data-category"
PURPOSE_SYSTEM = f"{SYSTEM}/CodeSystem/consent-purpose"
PART2 = "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"
PART2_CONSENT = f"{PART2}/subpart-C/section-2.31"
STATUS_CODES = {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}

PURPOSE_CODES = {
    "treatment": (ACT_REASON, "TREAT", "treatment"),
    "payment": (ACT_REASON, "HPAYMT", "healthcare payment"),
    "operations": (ACT_REASON, "HOPERAT", "healthcare operations"),
    "research": (ACT_REASON, "HRESCH", "healthcare research"),
}


def fhir_status(consent: Consent, at: datetime) -> str:
    state = consent.state(at)
    if state == ConsentState.entered_in_error:
        return "entered-in-error"
    if state in (ConsentState.revoked, ConsentState.expired):
        return "inactive"
    return "active"


def _actor(consent: Consent, team_id: uuid.UUID | None, clinic_names: dict[Any, str]) -> Any:
    name = grantee_name(consent, clinic_names)
    if consent.grantee_kind == GranteeKind.user and consent.grantee_user is not None:
        if consent.grantee_user.is_clinician:
            reference = _ref("Practitioner", consent.grantee_user_id, name)
        else:
            reference = {"display": name}
    elif consent.grantee_kind == GranteeKind.care_team and team_id is not None:
        reference = _ref("CareTeam", team_id, "Care team")
    elif consent.grantee_kind == GranteeKind.treating_providers:
        reference = {"display": "The patient's treating providers"}
    else:
        # A family member or carer, or an organization: by name (no resource served here).
        reference = {"display": name or consent.grantee_kind}
    return {
        "role": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]},
        "reference": reference,
    }


def _purposes(consent: Consent) -> list[dict[str, Any]]:
    out = []
    for p in consent.purposes:
        if p in PURPOSE_CODES:
            system, code, display = PURPOSE_CODES[p]
            out.append({"system": system, "code": code, "display": display})
        else:
            coding = {"system": PURPOSE_SYSTEM, "code": p}
            if p == "other" and consent.purpose_other:
                coding["display"] = consent.purpose_other
            out.append(coding)
    return out


def _labels(consent: Consent) -> list[dict[str, Any]]:
    if consent.scope == "all":
        return []  # the whole record: no label narrows it
    labels = [{"system": CATEGORY_SYSTEM, "code": c} for c in consent.categories]
    if "substance_use" in consent.categories:
        labels.append({"system": ACT_CODE, "code": "ETH"})
    return labels


def consent_resource(
    consent: Consent,
    patient: Patient,
    *,
    organization: str | None = None,
    team_id: uuid.UUID | None = None,
    clinic_names: dict[Any, str] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    at = at or now()
    clinic_names = clinic_names or {}
    if consent.is_part2:
        policy = [{"authority": PART2, "uri": PART2_CONSENT}]
        rule = {
            "coding": [{"system": ACT_CODE, "code": "42CFRPart2"}],
            "text": "42 CFR Part 2",
        }
    else:
        policy = []
        code = "OPTIN" if consent.provision == Provision.permit else "OPTOUT"
        rule = {"coding": [{"system": ACT_CODE, "code": code}]}
    source: dict[str, Any] = {}
    if consent.method == Method.paper_scanned and consent.document_reference:
        source["sourceReference"] = {
            "identifier": {
                "system": f"{SYSTEM}/consent-document",
                "value": consent.document_reference,
            },
            "display": "Signed consent form (scanned)",
        }
    elif consent.method == Method.portal_signature:
        attachment: dict[str, Any] = {
            "contentType": "text/plain",
            "title": f"Signed in the portal by {consent.signed_name or ''}".strip(),
        }
        if consent.signed_on is not None:
            attachment["creation"] = consent.signed_on.isoformat()
        source["sourceAttachment"] = attachment
    period = _drop_empty(
        {
            "start": consent.period_start.isoformat(),
            "end": consent.period_end.isoformat() if consent.period_end else None,
        }
    )
    provision = _drop_empty(
        {
            "type": "deny" if consent.provision == Provision.deny else "permit",
            "period": period,
            "actor": [_actor(consent, team_id, clinic_names)],
            "purpose": _purposes(consent),
            "securityLabel": _labels(consent),
        }
    )
    return _drop_empty(
        {
            "resourceType": "Consent",
            "id": str(consent.id),
            "meta": {"lastUpdated": _instant(consent.revoked_at or consent.recorded_at)},
            "identifier": [{"system": f"{SYSTEM}/consent", "value": str(consent.id)}],
            "status": fhir_status(consent, at),
            "scope": {
                "coding": [{"system": SCOPE, "code": "patient-privacy"}],
                "text": "Privacy consent",
            },
            "category": [
                {
                    "coding": [{"system": LOINC, "code": "59284-0"}],
                    "text": sentence(consent, "en", clinic_names),
                }
            ],
            "patient": _ref("Patient", patient.id, patient.display_name),
            "dateTime": _instant(consent.recorded_at),
            "performer": [_ref("Patient", patient.id, patient.display_name)],
            "organization": [{"display": organization}] if organization else [],
            **source,
            "policy": policy,
            "policyRule": rule,
            "provision": provision,
        }
    )


def _whole_record_access(session: Session, by: User, patient_id: Any) -> Any:
    """The care team's or the patient's own access; None for anyone else (denial audited)."""
    try:
        acc = access.patient_for(session, by, patient_id, action="read", object_type="Consent")
    except NotFound:
        return None
    if not acc.can_read_record:
        access.refuse_record(session, acc, action="read", object_type="Consent")
        return None
    return acc


def _context(session: Session, patient: Patient) -> dict[str, Any]:
    """What a consent's resource names beside it: the organization, the patient's care team,
    the clinics by id (read through the domains)."""
    team = patients.care_team_of(session, patient.id)
    return {
        "organization": patient.clinic.organization.name,
        "team_id": team.id if team is not None else None,
        "clinic_names": {
            c.id: c.name
            for c in organizations.list_clinics(session, organization_id=patient.organization_id)
        },
    }


def read_consent(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    try:
        consent, acc = consents.find_consent(session, by=by, ident=ident)
    except NotFound:
        raise NotFound(Msg("No such resource.")) from None
    if not acc.can_read_record:
        access.refuse_record(session, acc, action="read", object_type="Consent")
        raise NotFound(Msg("No such resource."))
    record(
        session,
        by=by,
        action="read",
        object_type="Consent",
        object_id=consent.id,
        patient_id=acc.patient.id,
    )
    return consent_resource(consent, acc.patient, **_context(session, acc.patient))


def search_consents(
    session: Session, *, by: User, q: Query
) -> tuple[list[dict[str, Any]], str | None, int]:
    """A patient's consents, newest first (patient is required)."""
    ids = q.patient_ids()
    if ids is None:
        raise InvalidInput.field("patient", Msg("is required: Consent?patient=<id>"))
    resources: list[dict[str, Any]] = []
    at = now()
    for ident in sorted(ids):
        acc = _whole_record_access(session, by, ident)
        if acc is None:
            continue
        context = _context(session, acc.patient)
        rows = consents.list_consents(session, access=acc)
        resources += [consent_resource(c, acc.patient, at=at, **context) for c in rows]
    wanted = allowed_codes(q.groups("status"), CONSENT_STATUS_SYSTEM, STATUS_CODES)
    if wanted is not None:
        resources = [r for r in resources if r["status"] in wanted]
    page, next_cursor = page_of(resources, q)
    for resource in page:
        record(
            session,
            by=by,
            action="search",
            object_type="Consent",
            object_id=uuid.UUID(resource["id"]),
            patient_id=uuid.UUID(resource["patient"]["reference"].removeprefix("Patient/")),
        )
    return page, next_cursor, len(resources)
