"""Plain words for the audit trail, as a patient reads it."""

from __future__ import annotations

from concord.i18n import N_

ACTION_LABELS = {
    "read": N_("Looked at"),
    "list": N_("Saw in a list"),
    "search": N_("Looked at"),
    "history": N_("Looked at the history of"),
    "compare": N_("Compared versions of"),
    "admin_read": N_("Looked at the registration details of"),
    "create": N_("Added"),
    "update": N_("Changed"),
    "delete": N_("Removed"),
    "propose": N_("Proposed"),
    "agree": N_("Agreed to"),
    "activate": N_("Started"),
    "review": N_("Reviewed"),
    "end": N_("Ended"),
    "consent_record": N_("Recorded consent for"),
    "consent_withdraw": N_("Withdrew consent for"),
    "team_add": N_("Added someone to"),
    "team_remove": N_("Removed someone from"),
    "team_lead": N_("Changed the lead of"),
}

OBJECT_LABELS = {
    "Patient": N_("your record"),
    "CarePlan": N_("your care plan"),
    "CareTeam": N_("your care team"),
    "Goal": N_("a goal in your plan"),
    "Condition": N_("a concern in your plan"),
    "Milestone": N_("a milestone in your plan"),
    "CarePlanActivity": N_("a treatment in your plan"),
    "ActionStep": N_("an action step in your plan"),
    "Strength": N_("a strength in your plan"),
    "Barrier": N_("a barrier in your plan"),
    "Contingency": N_("your plan for hard times"),
    "PlanComment": N_("a comment on your plan"),
    "RelatedPerson": N_("your family and carers list"),
}

CHANNEL_LABELS = {
    "web": N_("website"),
    "api": N_("connected app"),
    "fhir": N_("connected health record system"),
    "cli": N_("system administrator"),
    "system": N_("Concord"),
}
