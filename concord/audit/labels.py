"""Plain words for the audit trail, as a patient reads it.

Every action and every object type the code records has an entry here:
tests/audit/test_access_log.py reads the code for the names it records and fails on one with
no plain wording, so a patient never reads "QuestionnaireResponse" or "CaseReview".
"""

from __future__ import annotations

from concord.i18n import N_

# What was done, with the thing it was done to in %(what)s (word order differs by language).
ACTION_LABELS = {
    "read": N_("Looked at %(what)s"),
    "list": N_("Saw %(what)s in a list"),
    "search": N_("Looked at %(what)s"),
    "history": N_("Looked at the history of %(what)s"),
    "compare": N_("Compared versions of %(what)s"),
    "admin_read": N_("Looked at the registration details of %(what)s"),
    "user_read": N_("Looked at %(what)s"),
    "user_list": N_("Saw %(what)s in a list"),
    "report": N_("Counted %(what)s in a report"),
    "remind": N_("Sent a reminder about %(what)s"),
    "create": N_("Added %(what)s"),
    "update": N_("Made changes to %(what)s"),
    "delete": N_("Removed %(what)s"),
    "void": N_("Marked %(what)s as entered in error"),
    "propose": N_("Proposed %(what)s"),
    "agree": N_("Agreed to %(what)s"),
    "activate": N_("Started %(what)s"),
    "review": N_("Reviewed %(what)s"),
    "end": N_("Ended %(what)s"),
    "close": N_("Closed %(what)s"),
    "complete": N_("Completed %(what)s"),
    "acknowledge": N_("Took charge of %(what)s"),
    "escalate": N_("Passed on %(what)s to the next person in the team"),
    "follow_up": N_("Followed up on %(what)s"),
    "consent": N_("Recorded consent for %(what)s"),
    "consent_record": N_("Recorded consent for %(what)s"),
    "consent_withdraw": N_("Withdrew consent for %(what)s"),
    "emergency_access": N_("Opened %(what)s in a medical emergency"),
    "emergency_disclosure": N_("Read %(what)s in a medical emergency"),
    "label_correct": N_("Corrected the 42 CFR Part 2 label of %(what)s"),
    "part2_program": N_("Changed the 42 CFR Part 2 setting of %(what)s"),
    "team_add": N_("Added someone to %(what)s"),
    "team_remove": N_("Removed someone from %(what)s"),
    "team_lead": N_("Changed the lead of %(what)s"),
    "sign_in": N_("Signed in to %(what)s"),
    "sign_out": N_("Signed out of %(what)s"),
    "sign_out_everywhere": N_("Signed out of %(what)s on every device"),
    "password_change": N_("Changed the password of %(what)s"),
    "password_reset": N_("Reset the password of %(what)s"),
    "mfa_enable": N_("Set up sign-in codes for %(what)s"),
    "mfa_verify": N_("Checked a sign-in code for %(what)s"),
    "mfa_reset": N_("Reset the sign-in codes of %(what)s"),
    "mfa_recovery_code": N_("Used a recovery code for %(what)s"),
    "medication_check": N_("Checked a new medication against %(what)s"),
    "medication_override": N_("Went ahead despite a medication warning about %(what)s"),
    "medication_accept": N_("Acted on a medication warning about %(what)s"),
    "token_create": N_("Created %(what)s"),
    "token_revoke": N_("Revoked %(what)s"),
    "user_create": N_("Created %(what)s"),
    "user_update": N_("Made changes to %(what)s"),
    "organization_update": N_("Made changes to %(what)s"),
}

# What it was done to, in the patient's words.
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
    "Consent": N_("your consents to share your record"),
    "DisclosureLog": N_("the list of who received your protected records"),
    "EmergencyAccess": N_("records your consent withholds"),
    "Part2Label": N_("the 42 CFR Part 2 label of a record"),
    "Clinic": N_("a clinic"),
    "QuestionnaireResponse": N_("your check-in answers"),
    "Observation": N_("your scores"),
    "MeasureSchedule": N_("your check-in schedule"),
    "MedicationList": N_("your medication list"),
    "SafetyAlert": N_("a safety alert about you"),
    "SafetyPlan": N_("your safety plan"),
    "RiskStatus": N_("your safety status"),
    "RelapsePlan": N_("your plan for staying well"),
    "Task": N_("a to-do for your care team"),
    "Flag": N_("a follow-up reminder about your care"),
    "Decision": N_("a treatment decision"),
    "Recommendation": N_("a specialist's advice about your care"),
    "Episode": N_("your collaborative care enrolment"),
    "CaseReview": N_("a specialist's review of your care"),
    "Contact": N_("a note of a call or visit"),
    "AuditLog": N_("this list"),
    "User": N_("your account"),
    "ApiToken": N_("a connected app's access"),
    "Practitioner": N_("a clinician's details"),
    "Questionnaire": N_("a questionnaire"),
    "Organization": N_("your clinic's settings"),
    "Minutes": N_("the clinic's monthly report"),
    "ProgramView": N_("the clinic's program report"),
    "SafetyFigures": N_("the clinic's safety figures"),
    "RiskRules": N_("the clinic's safety rules"),
    "CollaborateReport": N_("the clinic's survey report"),
}

# Said when no object type matches (a name recorded by newer code than these labels).
UNKNOWN_OBJECT = N_("part of your record")

CHANNEL_LABELS = {
    "web": N_("on the website"),
    "api": N_("through a connected app"),
    "fhir": N_("through a connected health record system"),
    "cli": N_("by a system administrator's command"),
    "system": N_("automatically"),
}

# Who did it, when no person did: the worker's reminders, escalations and schedules.
SYSTEM_ACTOR = N_("Concord (automatic)")
