"""The consents a patient gives in the portal ("Share my record"): a few templates for the common
cases, each shown with the elements 42 CFR Part 2 § 2.31(a) requires of a written consent, in
plain words (English and Spanish), and signed with the typed full name and today's date.

A template fills in everything but the choices the patient makes (which clinician or family
member, until when) and the signature. What it records is an ordinary consent
(`concord.consents.service.record`, method portal_signature): the same rules, the same audit,
the same decision as a consent the team records from paper.

The element letters follow docs/part2-sources.md: (a)(1) to (a)(4) are confirmed in the 2024
text; purpose, revocation, expiry, signature and date are cited only as "2.31(a)" because their
paragraph numbers in the 2024 text were not confirmed. Nothing here quotes the rule: the words
are a plain paraphrase, and the forms' already-reviewed sentences are reused where they fit.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from concord.consents.forms import NOT_A_CONDITION, PART2_PROTECTION, REVOKE
from concord.consents.models import GranteeKind
from concord.i18n import N_


@dataclass(frozen=True)
class PortalTemplate:
    id: str
    title: str  # what the patient chooses, in their words
    grantee_kind: GranteeKind
    categories: tuple[str, ...]
    purposes: tuple[str, ...]
    part2: bool  # covers substance-use treatment records (42 CFR Part 2)
    recipient: str | None  # the recipient in words; None: the one the patient chooses
    what: str  # § 2.31(a)(3), in words; %(program)s is the program's name
    purpose: str
    # Part 2 consents end on a date the patient chooses (the stricter reading: § 2.31(a) asks
    # for an expiration date, event or condition). Family sharing lasts until taken back.
    ends: bool


PART2_CATEGORIES = ("substance_use", "mental_health", "care_plan")
PART2_WHAT = N_(
    "Your substance-use treatment records from %(program)s: your visits there and their notes, "
    "your answers to substance-use questionnaires (such as the AUDIT-C), and the parts of your "
    "care plan its staff wrote. Nothing else from that program."
)

TEMPLATES: dict[str, PortalTemplate] = {
    t.id: t
    for t in (
        PortalTemplate(
            id="treating-providers",
            title=N_(
                "My treating providers may see my substance-use treatment records, for my treatment"
            ),
            grantee_kind=GranteeKind.treating_providers,
            categories=PART2_CATEGORIES,
            purposes=("treatment",),
            part2=True,
            recipient=N_(
                "My treating providers: the clinicians on my care team while they treat me"
            ),
            what=PART2_WHAT,
            purpose=N_("My treatment"),
            ends=True,
        ),
        PortalTemplate(
            id="named-clinician",
            title=N_(
                "One clinician who treats me (such as my primary care provider) may see my "
                "substance-use treatment records, for my treatment"
            ),
            grantee_kind=GranteeKind.user,
            categories=PART2_CATEGORIES,
            purposes=("treatment",),
            part2=True,
            recipient=None,
            what=PART2_WHAT,
            purpose=N_("My treatment"),
            ends=True,
        ),
        PortalTemplate(
            id="family-member",
            title=N_("A family member or carer may see my care plan"),
            grantee_kind=GranteeKind.related_person,
            categories=("care_plan",),
            purposes=("family_sharing",),
            part2=False,
            recipient=None,
            what=N_("Your care plan as it stands. Not the rest of your record."),
            purpose=N_("So they can follow and support my care"),
            ends=False,
        ),
    )
}

# What every Part 2 template says before the signature (the 2024 notices, in plain words).
PART2_NOTICES = (PART2_PROTECTION, NOT_A_CONDITION)
FAMILY_NOTICES = (NOT_A_CONDITION,)
REVOKE_TEXT = REVOKE


def normalized_name(value: str) -> str:
    """A name for comparison: case, accents' composition and spacing do not matter."""
    text = unicodedata.normalize("NFC", value or "")
    return re.sub(r"\s+", " ", text).strip().casefold()


def signature_matches(typed: str | None, full_name: str) -> bool:
    return bool(typed) and normalized_name(typed or "") == normalized_name(full_name)
