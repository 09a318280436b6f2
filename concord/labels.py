"""App-wide plain-language names: the coded values (statuses, categories, kinds, how answers
were collected, administrative sex...) that pages in every domain show through the `label`
filter, and the roles people hold. They are msgids: pages translate them with `_()`.

A base module (issue 17): it imports only `concord.i18n`, so any domain or door may use it.
Labels that belong to one domain stay in that domain's `labels.py` (the care plan's sections
and fields in `careplans/labels.py`, the registry's in `registry/labels.py`, ...).
"""

from __future__ import annotations

from concord.i18n import N_

VALUE_LABELS = {
    # plan status
    "draft": N_("draft"),
    "active": N_("active"),
    "completed": N_("completed"),
    "revoked": N_("withdrawn"),
    # goal categories
    "symptoms": N_("symptoms"),
    "daily_functioning": N_("daily life"),
    "relationships": N_("relationships"),
    "work_or_school": N_("work or school"),
    "substance_use": N_("alcohol or drug use"),
    "physical_health": N_("physical health"),
    "housing_and_social_needs": N_("housing and other needs"),
    "wellbeing": N_("wellbeing"),
    # goal status
    "proposed": N_("proposed"),
    "accepted": N_("agreed"),
    "in_progress": N_("in progress"),
    "achieved": N_("achieved"),
    "revised": N_("replaced by a revised goal"),
    "stopped": N_("stopped"),
    # priority
    "high": N_("high"),
    "medium": N_("medium"),
    "low": N_("low"),
    # interventions
    "medication": N_("medication"),
    "psychotherapy": N_("talking therapy"),
    "psychosocial_support": N_("psychosocial support"),
    "lifestyle": N_("lifestyle"),
    "peer_support": N_("peer support"),
    "referral": N_("referral"),
    "education": N_("education"),
    "not_started": N_("not started"),
    "scheduled": N_("scheduled"),
    "on_hold": N_("on hold"),
    # action steps
    "to_do": N_("to do"),
    "done": N_("done"),
    "not_done": N_("not done"),
    # barriers
    "transport": N_("transport"),
    "money": N_("money"),
    "caregiving": N_("caring for others"),
    "housing": N_("housing"),
    "stigma": N_("stigma"),
    "language": N_("language"),
    "work_schedule": N_("work schedule"),
    "health": N_("health"),
    "technology": N_("phone or internet"),
    "other": N_("other"),
    "open": N_("open"),
    "resolved": N_("resolved"),
    # concerns
    "icd10": N_("ICD-10-CM"),
    "snomed": N_("SNOMED CT"),
    # monitoring
    "light": N_("light"),
    "standard": N_("standard"),
    "close": N_("close"),
    # administrative sex, for sex-specific thresholds
    "female": N_("female"),
    "male": N_("male"),
    # goal links to measures
    "below": N_("below"),
    "at_most": N_("at most"),
    "at_least": N_("at least"),
    # substance-use goals and the days-of-use calendar (concord.substance.models)
    "alcohol": N_("alcohol"),
    "cannabis": N_("cannabis"),
    "hallucinogens": N_("hallucinogens"),
    "inhalants": N_("inhalants"),
    "opioids": N_("opioids"),
    "sedatives": N_("sedatives, sleeping pills or anxiety medicines"),
    "stimulants": N_("stimulants"),
    "tobacco": N_("tobacco or nicotine"),
    "abstinence": N_("not using at all"),
    "reduction": N_("using less"),
    "days-of-use-30": N_("days of use in the last 30 days"),
    "drinks-per-drinking-day": N_("drinks per drinking day"),
    # how answers were collected
    "portal": N_("the patient, online"),
    "in_person": N_("in person"),
    "phone": N_("by phone"),
    "video": N_("by video"),
    "proxy": N_("answered by someone else for the patient"),
    "external": N_("sent by another system"),
    # agreement parties
    "patient": N_("the patient"),
    "lead_clinician": N_("the lead clinician"),
}

ROLE_LABELS = {
    "admin": N_("administrator"),
    "care_manager": N_("care manager"),
    "psychiatric_consultant": N_("psychiatric consultant"),
    "primary_care_provider": N_("primary care provider"),
    "psychiatrist": N_("psychiatrist"),
    "therapist": N_("therapist"),
    "addiction_counsellor": N_("addiction counsellor"),
    "social_worker": N_("social worker"),
    "peer_specialist": N_("peer specialist"),
    "nurse": N_("nurse"),
    "patient": N_("patient"),
    "related_person": N_("family member or carer"),
    "client": N_("integration client"),
}
