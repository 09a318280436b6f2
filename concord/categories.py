"""The kinds of data Concord holds about a patient, and why someone reads them.

A base module (it imports nothing): the models name their category here, the access layer
(`concord.disclosure`) decides on it. What each relation may see, for which purpose, is in
`concord.disclosure.RULES`; this module only names the things the rules speak of.
"""

from __future__ import annotations

from enum import StrEnum


class DataCategory(StrEnum):
    """What a record is about, as the disclosure rules need to tell it apart.

    A category names the *kind* of data, not the law that applies to it: whether a given
    substance-use record falls under 42 CFR Part 2 is for the rules (issue 18) to decide.
    """

    general = "general"
    """Registration and demographics: name, birth date, contact, clinic, the care team and the
    family members the patient named. What a record needs to say whose it is."""

    mental_health = "mental_health"
    """General mental-health care: depression, anxiety and trauma measures (PHQ, GAD, PCL,
    WHO-5), and the Collaborative Care program's own record (episodes, contacts and minutes,
    psychiatric case reviews and their recommendations, tasks, relapse-prevention plans), and
    medications other than those for opioid use disorder, their findings and reports."""

    substance_use = "substance_use"
    """Alcohol and drug use: the AUDIT and AUDIT-C and any instrument a clinic adds with this
    category, and medications for opioid use disorder (buprenorphine, methadone, naltrexone)
    with the findings, reports and overrides about them. The category the consent rules single
    out (42 CFR Part 2)."""

    safety = "safety"
    """Suicide and self-harm risk as the team works it: risk screens (the ASQ), safety alerts
    and their notifications, the patient's risk status over time."""

    safety_plan = "safety_plan"
    """The patient's own safety plan (warning signs, coping steps, people and places to call),
    kept apart from `safety` because a patient may share it with family without sharing the
    team's alerts and risk status."""

    care_plan = "care_plan"
    """The care plan and its items (concerns, goals, interventions, steps, strengths...), its
    revisions and the patient's agreement."""

    decisions = "decisions"
    """Decisions made together (decision aids, the patient's values and questions, the chosen
    option) and the CollaboRATE measure of how shared the decision was."""

    social_needs = "social_needs"
    """Health-related social needs: the answers to a social-needs screen (the AHC HRSN), the
    needs (health concerns) found, and referrals to community services. Kept apart because
    what is shared with a community organization is decided referral by referral, and an
    interpersonal-safety answer is never shared without the patient's say."""

    psychotherapy_notes = "psychotherapy_notes"
    """A therapist's separate notes of a session (HIPAA 45 CFR 164.501 "psychotherapy notes").
    Concord stores none today; the category exists so that a record of this kind can never be
    disclosed by an omission in the rules: no rule permits it."""


class Purpose(StrEnum):
    """Why a record is being read (the purpose of use a disclosure is decided for)."""

    treatment = "treatment"
    """The care team caring for the patient: every clinician page, API and FHIR read."""

    payment = "payment"
    """Billing for the care given (the month's minutes and billing codes)."""

    operations = "operations"
    """Running the service: quality figures, the program view, audits of the service itself."""

    research = "research"
    """Research; nothing is disclosed for it without rules that say so."""

    patient_access = "patient_access"
    """The patient reading their own record (the portal, their API token)."""

    family_sharing = "family_sharing"
    """A person the patient chose to share with (a family member with the patient's consent)."""

    emergency = "emergency"
    """Break the glass: a clinician reading in an emergency what the rules would otherwise
    withhold. No rule grants more for it than for treatment yet; issue 18 decides."""
