"""The referral Task's state machine and the partner's link, as pure functions.

Who may set each status is the SDOH Clinical Care IG's table for the referral-management Task
(HL7/fhir-sdoh-clinicalcare, StructureDefinition-SDOHCC-TaskForReferralManagement-intro.md,
"Status Management"): the requester sets draft, requested and entered-in-error; the responder
(the community organization) sets accepted, rejected, in-progress, on-hold, failed and
completed; either may cancel. Which status may follow which is the IG's own "Referral Task
State Diagram" (input/images/ReferralTaskStateDiagram.svg, STU3): draft (optional) ->
requested; requested -> accepted, rejected or cancelled; accepted -> in-progress, on-hold,
completed or failed, or cancelled; in-progress <-> on-hold; in-progress and on-hold ->
completed, failed or cancelled; entered-in-error "can be reached from any other status".
Where the diagram is silent Concord adds one edge, draft -> cancelled (a draft the team drops);
ADR 0027, decision 6, lists how this table was compared with the diagram.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from concord.social.models import ReferralStatus as S

REQUESTER = "requester"  # the care team that sent it
PARTNER = "partner"  # the community organization, through its link

# status -> {next status: who may set it}, as the diagram draws it
_FLOW: Mapping[str, Mapping[str, frozenset[str]]] = {
    S.draft: {
        S.requested: frozenset({REQUESTER}),
        S.cancelled: frozenset({REQUESTER}),  # not drawn in the IG's diagram: see above
    },
    S.requested: {
        S.accepted: frozenset({PARTNER}),
        S.rejected: frozenset({PARTNER}),
        S.cancelled: frozenset({REQUESTER, PARTNER}),
    },
    S.accepted: {
        S.in_progress: frozenset({PARTNER}),
        S.on_hold: frozenset({PARTNER}),
        S.completed: frozenset({PARTNER}),
        S.failed: frozenset({PARTNER}),
        S.cancelled: frozenset({REQUESTER, PARTNER}),
    },
    S.in_progress: {
        S.on_hold: frozenset({PARTNER}),
        S.completed: frozenset({PARTNER}),
        S.failed: frozenset({PARTNER}),
        S.cancelled: frozenset({REQUESTER, PARTNER}),
    },
    S.on_hold: {
        S.in_progress: frozenset({PARTNER}),
        S.completed: frozenset({PARTNER}),
        S.failed: frozenset({PARTNER}),
        S.cancelled: frozenset({REQUESTER, PARTNER}),
    },
}
# "Can be reached from any other status" (the IG's diagram), set by the requester (its table):
# a referral that should never have existed, found out even after it closed.
TRANSITIONS: Mapping[str, Mapping[str, frozenset[str]]] = {
    status: {**_FLOW.get(status, {}), S.entered_in_error: frozenset({REQUESTER})}
    for status in S
    if status != S.entered_in_error
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
