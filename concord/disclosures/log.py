"""The listener that writes the disclosure log, registered on concord.disclosure's hook.

For every permitted read, `concord.disclosure.filter_records`/`check_record` call the listeners
with the decisions. This one keeps the decisions that disclose 42 CFR Part 2 records outside
the Part 2 program (`Decision.part2`) or break the glass (`Decision.emergency`), and writes one
row per (request, recipient, patient, category, consent): the first read of a request adds the
row, later reads in the same request add to its counts (one insert a request, whatever the
number of records). The rows are part of the request's transaction: a request that fails
writes none. Reads inside the program, and of records Part 2 does not cover, write nothing.

It also marks the request as one that disclosed Part 2 records, so the page footer, the CSV
and the PDF carry the § 2.32 notice (concord.disclosures.notice).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.consents.models import Consent
from concord.disclosure import Disclosed, register_disclosure_listener
from concord.disclosures.models import DisclosureLog, Door

ROWS = "disclosure_log_rows"  # session.info: this transaction's rows, by key
PART2 = "part2_disclosed"  # session.info: this request disclosed Part 2 records
REQUEST_STATE = "request_state"  # session.info: the web request's state (set by concord.web)


def door_of(session: Session) -> Door:
    channel = session.info.get("audit_context", {}).get("channel")
    if channel in (Door.web, Door.api, Door.fhir):
        return Door(channel)
    # The worker and the command line disclose only as exports (bulk, files).
    return Door.export


def _rows(session: Session) -> dict[tuple[Any, ...], DisclosureLog]:
    """This transaction's rows (a new request, or a commit, starts afresh)."""
    txn = session.get_transaction()
    held = session.info.get(ROWS)
    if held is None or held[0] is not txn:
        held = session.info[ROWS] = (txn, {}, uuid.uuid4())
    rows: dict[tuple[Any, ...], DisclosureLog] = held[1]
    return rows


def _request_id(session: Session) -> uuid.UUID:
    _rows(session)
    request_id: uuid.UUID = session.info[ROWS][2]
    return request_id


CONSENTS = "part2_consents"  # session.info: (patient, consent) pairs this request disclosed under


def mark_part2(session: Session, consents: set[tuple[uuid.UUID, uuid.UUID]] | None = None) -> None:
    """Note that this request disclosed Part 2 records (the notice must go with them), and under
    which of the patient's consents (§ 2.32(b): the consent's explanation goes with them)."""
    session.info[PART2] = True
    held: set[tuple[uuid.UUID, uuid.UUID]] = session.info.setdefault(CONSENTS, set())
    held |= consents or set()
    state = session.info.get(REQUEST_STATE)
    if state is not None:
        state.part2_notice = True
        # The consents themselves (already in the session: the decision read them), for the
        # page to explain each beside the notice.
        rows = [session.get(Consent, cid) for _, cid in sorted(held)]
        state.part2_consents = [c for c in rows if c is not None]


def part2_disclosed(session: Session) -> bool:
    return bool(session.info.get(PART2))


def part2_consents(session: Session) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The (patient, consent) pairs this request disclosed Part 2 records under."""
    return sorted(session.info.get(CONSENTS, set()))


def record_disclosures(session: Session, access: PatientAccess, disclosed: list[Disclosed]) -> None:
    """The listener: log what `access.by` received of Part 2 (or under emergency)."""
    logged = [
        d for d in disclosed if d.decision.permit and (d.decision.part2 or d.decision.emergency)
    ]
    if not logged:
        return
    if any(d.decision.part2 for d in logged):
        mark_part2(
            session,
            {
                (access.patient.id, d.decision.consent_id)
                for d in logged
                if d.decision.part2 and d.decision.consent_id is not None
            },
        )
    rows = _rows(session)
    door = door_of(session)
    for d in logged:
        category = str(d.category) if d.category is not None else "none"
        purpose = str(d.purpose) if d.purpose is not None else "none"
        key = (
            access.by.id,
            access.patient.id,
            category,
            purpose,
            d.decision.consent_id,
            d.decision.emergency,
        )
        row = rows.get(key)
        if row is None:
            row = rows[key] = DisclosureLog(
                organization_id=access.patient.organization_id,
                patient_id=access.patient.id,
                recipient_id=access.by.id,
                category=category,
                kinds={},
                count=0,
                purpose=purpose,
                consent_id=d.decision.consent_id,
                emergency=d.decision.emergency,
                door=door,
                request_id=_request_id(session),
            )
            session.add(row)
        kinds = dict(row.kinds or {})
        kinds[d.object_type] = kinds.get(d.object_type, 0) + d.count
        row.kinds = kinds  # a new dict: the JSON column sees the change
        row.count = (row.count or 0) + d.count


def as_export(session: Session) -> None:
    """This request's disclosures left as an export (a CSV or PDF file), whatever the door."""
    for row in _rows(session).values():
        row.door = Door.export


register_disclosure_listener(record_disclosures)
