"""A disclosure in plain words, as the patient reads it (English and Spanish)."""

from __future__ import annotations

from typing import Any

from concord.consents.labels import CATEGORY_LABELS, PURPOSE_LABELS
from concord.disclosures.models import DisclosureLog, Door
from concord.i18n import N_, gettext, translate

DOOR_LABELS = {
    Door.web: N_("on a Concord page"),
    Door.api: N_("through an app connected to Concord"),
    Door.fhir: N_("through another health record system (FHIR)"),
    Door.export: N_("in a file (a download or a printout)"),
}
KIND_LABELS = {
    "QuestionnaireResponse": N_("questionnaire answers"),
    "MeasureResponse": N_("questionnaire answers"),
    "MeasureSchedule": N_("check-in schedules"),
    "SafetyPlan": N_("safety plan"),
    "SafetyAlert": N_("safety alerts"),
    "MeasureScore": N_("questionnaire scores"),
    "Observation": N_("questionnaire scores"),
    "Episode": N_("care episodes"),
    "Contact": N_("contacts with the care team"),
    "CarePlan": N_("care plan"),
    "CarePlanItem": N_("care plan items"),
    "CaseReview": N_("specialist reviews of your care"),
    "Recommendation": N_("a specialist's advice about your care"),
    "RiskStatus": N_("your safety status"),
}


def _kinds(row: DisclosureLog, lang: str) -> str:
    names = sorted({translate(KIND_LABELS.get(k, N_("other records")), lang) for k in row.kinds})
    return ", ".join(names)


def line(row: DisclosureLog, lang: str) -> dict[str, Any]:
    """What the page shows for one row: who, what, how, and under what permission."""
    who = row.recipient.name if row.recipient is not None else gettext(lang, "someone")
    what = translate(CATEGORY_LABELS.get(row.category, N_("other records")), lang)
    received = gettext(
        lang,
        "%(who)s received %(what)s: %(count)s (%(kinds)s).",
        who=who,
        what=what,
        count=row.count,
        kinds=_kinds(row, lang),
    )
    purpose = PURPOSE_LABELS.get(row.purpose)
    why = gettext(lang, "For %(purpose)s.", purpose=translate(purpose, lang)) if purpose else ""
    if row.emergency:
        permission = gettext(
            lang,
            "In a medical emergency: a clinician opened these records without your consent "
            "and had to say why.",
        )
    elif row.consent_id is not None:
        permission = gettext(lang, "Under a consent you gave.")
    else:
        permission = gettext(lang, "Allowed by law without your consent.")
    return {
        "row": row,
        "received": received,
        "why": why,
        "permission": permission,
        "door": translate(DOOR_LABELS.get(row.door, N_("another way")), lang),
    }


def as_json(row: DisclosureLog) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "patient_id": str(row.patient_id),
        "recipient": {
            "id": str(row.recipient_id),
            "name": row.recipient.name if row.recipient is not None else None,
            "role": row.recipient.role if row.recipient is not None else None,
        },
        "category": row.category,
        "kinds": dict(row.kinds or {}),
        "count": row.count,
        "purpose": row.purpose,
        "consent_id": str(row.consent_id) if row.consent_id else None,
        "emergency": row.emergency,
        "door": row.door,
        "request_id": str(row.request_id),
        "disclosed_at": row.disclosed_at.isoformat(),
        "summary": line(row, "en")["received"],
    }
