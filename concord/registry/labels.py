"""Words for the registry's codes, shown on its pages (translated like everything else)."""

from __future__ import annotations

from concord.i18n import N_

LABELS = {
    # programs
    "depression": N_("depression"),
    "anxiety": N_("anxiety"),
    "ptsd": N_("PTSD"),
    "substance_use": N_("substance use"),
    "co_occurring": N_("co-occurring mental health and substance use"),
    # episode status
    "awaiting_first_contact": N_("enrolled, awaiting first contact"),
    "active": N_("active treatment"),
    "relapse_prevention": N_("relapse prevention"),
    "completed": N_("completed"),
    "disengaged": N_("disengaged"),
    "referred": N_("referred on"),
    # contact kinds and modes
    "initial_assessment": N_("initial assessment"),
    "follow_up": N_("follow-up"),
    "outreach_attempt": N_("outreach attempt (not reached)"),
    "case_review": N_("psychiatric case review"),
    "in_person": N_("in person"),
    "phone": N_("phone"),
    "video": N_("video"),
    "secure_message": N_("secure message"),
    # reviews
    "not_improving": N_("not improving"),
    "not_improving_escalate": N_("not improving at week 10 or later"),
    "safety": N_("safety"),
    "open_safety_alert": N_("open safety alert"),
    "nominated": N_("asked by the care manager"),
    "queued": N_("waiting for review"),
    "reviewed": N_("reviewed"),
    "withdrawn": N_("withdrawn"),
    "none": N_("none"),
    # recommendations
    "increase_dose": N_("increase the dose"),
    "decrease_dose": N_("lower the dose"),
    "switch_medication": N_("switch medication"),
    "add_medication": N_("add a medication"),
    "add_psychotherapy": N_("add talking therapy"),
    "change_psychotherapy": N_("change talking therapy"),
    "refer": N_("refer"),
    "other": N_("other"),
    "proposed": N_("proposed"),
    "accepted": N_("accepted"),
    "declined": N_("declined"),
    # flags (short names; each flag's full rule is shown beside it)
    "needs_initial_assessment": N_("needs initial assessment"),
    "no_follow_up_4_weeks": N_("no follow-up within 4 weeks"),
    "checkin_overdue": N_("check-in overdue"),
    "no_contact_30_days": N_("no contact in 30 days"),
    "missed_visit": N_("missed a visit"),
    "plan_review_overdue": N_("plan review overdue"),
    "plan_awaiting_agreement": N_("plan awaiting agreement"),
    "recommendation_not_acted_on": N_("recommendation not acted on"),
    "moud_pdmp_check_due": N_("PDMP check due"),
    "moud_no_naloxone": N_("no naloxone on file"),
    "moud_missed_reported": N_("missed doses or visits reported"),
    # progress against target
    "remission": N_("remission"),
    "response": N_("response"),
    "partial_response": N_("partial response"),
    "improving": N_("improving"),
    "early": N_("too early to judge"),
    "tracking": N_("tracking"),
    "baseline_only": N_("baseline only"),
    "no_data": N_("no scores yet"),
    # tasks
    "open": N_("open"),
    "done": N_("done"),
    "cancelled": N_("cancelled"),
    "routine": N_("routine"),
    "urgent": N_("urgent"),
    "asap": N_("as soon as possible"),
    "stat": N_("immediately"),
}
