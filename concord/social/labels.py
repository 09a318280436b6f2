"""Words for the social-needs pages (English source strings; Spanish in the catalogue)."""

from __future__ import annotations

from concord.i18n import N_

STATUS_LABELS = {
    "draft": N_("Draft"),
    "requested": N_("Sent, waiting for an answer"),
    "accepted": N_("Accepted"),
    "rejected": N_("Declined by the service"),
    "cancelled": N_("Cancelled"),
    "in-progress": N_("In progress"),
    "on-hold": N_("On hold"),
    "failed": N_("Could not be done"),
    "completed": N_("Completed"),
    "entered-in-error": N_("Entered in error"),
}
ACTION_LABELS = {
    "accepted": N_("Accept"),
    "rejected": N_("Decline"),
    "cancelled": N_("Cancel"),
    "in-progress": N_("Mark in progress"),
    "on-hold": N_("Put on hold"),
    "failed": N_("Mark as could not be done"),
    "completed": N_("Mark completed"),
    "entered-in-error": N_("Entered in error"),
    "requested": N_("Send"),
}
CONCERN_LABELS = {
    "proposed": N_("Found by the screen: waiting for the patient"),
    "confirmed": N_("Confirmed by the patient"),
    "declined": N_("Declined by the patient"),
    "resolved": N_("Resolved"),
}
DOMAIN_LABELS = {
    "housing-instability": N_("Housing"),
    "homelessness": N_("No steady place to live"),
    "inadequate-housing": N_("Problems with the place you live"),
    "food-insecurity": N_("Food"),
    "transportation-insecurity": N_("Transportation"),
    "utility-insecurity": N_("Utilities"),
    "intimate-partner-violence": N_("Safety at home and in relationships"),
    "sdoh-category-unspecified": N_("Other social need"),
}
REPORT_LABELS = {
    "got_help": N_("The patient says they got help"),
    "nobody_called": N_("The patient says nobody called"),
}
PARTY_LABELS = {
    "requester": N_("care team"),
    "partner": N_("the service"),
    "patient": N_("the patient"),
    "system": N_("Concord"),
}
