"""The referral Task's state machine and the partner's link, as pure functions.

Who may set each status is the SDOH Clinical Care IG's table for the referral-management Task
(HL7/fhir-sdoh-clinicalcare, StructureDefinition-SDOHCC-TaskForReferralManagement-intro.md,
"Status Management"): the requester sets draft, requested and entered-in-error; the responder
(the community organization) sets accepted, rejected, in-progress, on-hold, failed and
completed; either may cancel. Which status may follow which is the FHIR R4 Task state machine
(hl7.org/fhir/R4/task.html#statemachine) as the IG's state diagram draws it for referrals:
requested -> accepted or rejected; accepted -> in-progress; in-progress <-> on-hold; in-progress
-> completed or failed; on-hold -> failed; any open status -> cancelled.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from concord.social.models import ReferralStatus as S

REQUESTER = "requester"  # the care team that sent it
PARTNER = "partner"  # the community organization, through its link

# status -> {next status: who may set it}
TRANSITIONS: Mapping[str, Mapping[str, frozenset[str]]] = {
    S.draft: {
        S.requested: frozenset({REQUESTER}),
        S.cancelled: frozenset({REQUESTER}),
        S.entered_in_error: frozenset({REQUESTER}),
    },
    S.requested: {
        S.accepted: frozenset({PARTNER}),
        S.rejected: frozenset({PARTNER}),
        S.cancelled: frozenset({REQUESTER, PARTNER}),
        S.entered_in_error: frozenset({REQUESTER}),
    },
    S.accepted: {
        S.in_progress: frozenset({PARTNER}),
        S.cancelled: frozenset({REQUESTER, PARTNER}),
        S.entered_in_error: frozenset({REQUESTER}),
    },
    S.in_progress: {
        S.on_hold: frozenset({PARTNER}),
        S.completed: frozenset({PARTNER}),
        S.failed: frozenset({PARTNER}),
        S.cancelled: frozenset({REQUESTER, PARTNER}),
        S.entered_in_error: frozenset({REQUESTER}),
    },
    S.on_hold: {
        S.in_progress: frozenset({PARTNER}),
        S.failed: frozenset({PARTNER}),
        S.cancelled: frozenset({REQUESTER, PARTNER}),
        S.entered_in_error: frozenset({REQUESTER}),
    },
}
CLOSED = frozenset({S.rejected, S.cancelled, S.failed, S.completed, S.entered_in_error})
OPEN = frozenset({S.draft, S.requested, S.accepted, S.in_progress, S.on_hold})
# A reason is required to say no, stop, pause or give up; completing says what was done.
NEEDS_REASON = frozenset({S.rejected, S.cancelled, S.failed, S.on_hold, S.entered_in_error})
NEEDS_OUTCOME = frozenset({S.completed})


def allowed(current: str, target: str, party: str) -> bool:
    return party in TRANSITIONS.get(current, {}).get(target, frozenset())


def next_for(current: str, party: str) -> list[str]:
    """The statuses `party` may set from `current`, in the table's order."""
    return [t for t, who in TRANSITIONS.get(current, {}).items() if party in who]


# --- the partner's link ----------------------------------------------------------------------
# The token in the URL path is opaque: a random part and an HMAC of it under the server's
# secret key. Only the random part's SHA-256 is stored, so neither the database nor the audit
# trail holds a usable link; a forged or altered token is refused before any lookup.

_PURPOSE = b"concord-referral-link:"


def _mac(secret: str, nonce: str) -> str:
    digest = hmac.new(secret.encode(), _PURPOSE + nonce.encode(), hashlib.sha256).digest()
    return digest[:16].hex()


def new_token(secret: str) -> tuple[str, str]:
    """(token for the link, hash to store)."""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_mac(secret, nonce)}", token_hash(nonce)


def token_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def verify_token(secret: str, token: str) -> str | None:
    """The stored hash the token stands for, or None when it is not one of ours."""
    nonce, _, mac = token.partition(".")
    if not nonce or len(token) > 200 or not hmac.compare_digest(mac, _mac(secret, nonce)):
        return None
    return token_hash(nonce)
