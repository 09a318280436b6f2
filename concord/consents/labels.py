"""A consent in plain words, as the patient reads it (English and Spanish).

"Your addiction service may share your substance-use treatment records with Dr Ana Ruiz for
treatment until Jun 1, 2027." Each part is a message of its own, so the sentence is translated
whole and the parts agree with it.
"""

from __future__ import annotations

from datetime import datetime

from concord.consents.models import Consent, ConsentState, GranteeKind, Method, Provision
from concord.dates import local_date
from concord.i18n import N_, _param, gettext, translate

CATEGORY_LABELS = {
    "general": N_("your general health records"),
    "mental_health": N_("your mental health records"),
    "substance_use": N_("your substance-use treatment records"),
    "safety": N_("your safety plan and safety records"),
    "care_plan": N_("your care plan"),
    "decisions": N_("your shared decisions"),
    "social_needs": N_("your social needs and referrals to community services"),
    "psychotherapy_notes": N_("your therapist's psychotherapy notes"),
}
PURPOSE_LABELS = {
    "treatment": N_("treatment"),
    "payment": N_("payment"),
    "operations": N_("running the health service (health care operations)"),
    "research": N_("research"),
    "family_sharing": N_("following and supporting your care"),
}
METHOD_LABELS = {
    Method.paper_scanned: N_("Signed on paper"),
    Method.portal_signature: N_("Signed in the portal"),
    Method.verbal: N_("Agreed out loud with the care team"),
    Method.recorded_by_team: N_("Recorded by the care team"),
}
STATE_LABELS = {
    ConsentState.active: N_("In effect"),
    ConsentState.not_started: N_("Not started yet"),
    ConsentState.expired: N_("Expired"),
    ConsentState.revoked: N_("Revoked"),
    ConsentState.entered_in_error: N_("Entered in error"),
}
GRANTEE_LABELS = {
    GranteeKind.care_team: N_("your care team"),
    GranteeKind.treating_providers: N_("your treating providers"),
}


def _join(parts: list[str], lang: str) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return gettext(lang, "%(first)s and %(last)s", first=", ".join(parts[:-1]), last=parts[-1])


def grantee_name(consent: Consent, clinic_names: dict[object, str] | None = None) -> str:
    """The grantee's name as shown (untranslated names; the kinds are translated by `whom`)."""
    if consent.grantee_name:
        return consent.grantee_name
    if consent.grantee_user is not None:
        return consent.grantee_user.name
    if consent.grantee_clinic_id is not None and clinic_names:
        return clinic_names.get(consent.grantee_clinic_id, "")
    return ""


def whom(consent: Consent, lang: str, clinic_names: dict[object, str] | None = None) -> str:
    if consent.grantee_kind in GRANTEE_LABELS:
        return gettext(lang, GRANTEE_LABELS[GranteeKind(consent.grantee_kind)])
    return grantee_name(consent, clinic_names) or gettext(lang, "someone not named")


def what(consent: Consent, lang: str) -> str:
    if consent.scope == "all":
        return gettext(lang, "your whole record")
    return _join([gettext(lang, CATEGORY_LABELS.get(c, c)) for c in consent.categories], lang)


def why(consent: Consent, lang: str) -> str:
    parts = []
    for p in consent.purposes:
        if p == "other":
            parts.append(consent.purpose_other or gettext(lang, "another purpose"))
        else:
            parts.append(gettext(lang, PURPOSE_LABELS.get(p, p)))
    return _join(parts, lang)


def sentence(consent: Consent, lang: str, clinic_names: dict[object, str] | None = None) -> str:
    """The consent in one plain sentence."""
    params = {
        "who": consent.discloser or gettext(lang, "Your care team"),
        "what": what(consent, lang),
        "whom": whom(consent, lang, clinic_names),
        "why": why(consent, lang),
    }
    if consent.provision == Provision.deny:
        if consent.period_end is not None:
            return gettext(
                lang,
                "%(who)s may not share %(what)s with %(whom)s for %(why)s, until %(end)s.",
                end=_day(consent, lang),
                **params,
            )
        return gettext(lang, "%(who)s may not share %(what)s with %(whom)s for %(why)s.", **params)
    if consent.period_end is not None:
        return gettext(
            lang,
            "%(who)s may share %(what)s with %(whom)s for %(why)s until %(end)s.",
            end=_day(consent, lang),
            **params,
        )
    return gettext(
        lang,
        "%(who)s may share %(what)s with %(whom)s for %(why)s until you revoke this consent.",
        **params,
    )


def _day(consent: Consent, lang: str) -> str:
    return str(_param(consent.period_end, lang))


def state_line(consent: Consent, lang: str, at: datetime) -> str:
    """The consent's state in words, with its date where one applies."""
    state = consent.state(at)
    label = gettext(lang, STATE_LABELS[state])
    if state == ConsentState.revoked and consent.revoked_at is not None:
        return gettext(
            lang,
            "Revoked on %(day)s",
            day=_param(local_date(consent.revoked_at, consent.organization), lang),
        )
    if state == ConsentState.not_started:
        return gettext(lang, "Starts on %(day)s", day=_param(consent.period_start, lang))
    if state == ConsentState.expired and consent.period_end is not None:
        return gettext(lang, "Expired after %(day)s", day=_param(consent.period_end, lang))
    return label


def method_line(consent: Consent, lang: str) -> str:
    return translate(METHOD_LABELS.get(Method(consent.method), consent.method), lang)
