"""Measurement-based care: check-ins, scoring into stored scores, schedules, reminders, progress.

Every response goes through `_complete()`: validated, scored by the instrument's own rules,
stored with its scores (as observations that can be charted and searched). Doors do not call
`record_response()` or `submit()` directly: they call concord.actions.checkin, which also runs
the safety rules (a critical answer becomes an urgent alert in the same transaction) and brings
the patient's tasks up to date.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, bindparam, false, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import (
    PatientAccess,
    SystemPurpose,
    deny,
    in_scope,
    owned_by_id,
    parse_id,
    record_access,
    refuse_record,
    system_access,
)
from concord.accounts.models import Organization, User
from concord.audit.service import record
from concord.categories import DataCategory, Purpose
from concord.clock import now
from concord.dates import in_range, org_today
from concord.dates import local_date as _local_date
from concord.db import core, isolated_each, new_id
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg
from concord.measures.library import Instrument, library
from concord.measures.models import (
    MeasureObservation,
    MeasureResponse,
    MeasureSchedule,
    Mode,
    ReminderSent,
    ResponseStatus,
)
from concord.measures.rules import Point, Progress, ScheduleState, progress, schedule_state
from concord.measures.scoring import Scored, asked_items, score_response, validate_answers
from concord.notifications import service as notices
from concord.paging import (
    CodeCriterion,
    DateCriterion,
    Page,
    any_of,
    count,
    keyset,
    ordered,
    total_of,
)
from concord.patients.models import Patient
from concord.validation import check_datetime_range

LOINC = "http://loinc.org"
CONCORD_SCORES = "https://concord-care.org/fhir/CodeSystem/score"
# Built-in schedule when a plan becomes active, unless the organization sets its own:
# the examples given in the product requirement (issue 3).
DEFAULT_SCHEDULES = (
    {"instrument": "PHQ-9", "every_days": 14},
    {"instrument": "GAD-7", "every_days": 28},
)


NOT_IN_LANGUAGE = Msg(
    "This questionnaire is not available in your language yet. Your care team will go "
    "through it with you, with an interpreter."
)


def in_language(instrument: Instrument, language: str | None) -> bool:
    """Whether a person who reads `language` can be given this questionnaire to fill in."""
    return (language or "en") in instrument.languages


def get_instrument(code: str, field_name: str = "instrument") -> Instrument:
    instrument = library().get(code)
    if instrument is None:
        available = ", ".join(i.code for i in library().all())
        raise InvalidInput.field(
            field_name,
            Msg(
                "%(code)s is not an instrument here; available: %(available)s",
                code=code[:40],
                available=available,
            ),
        )
    return instrument


def _org(session: Session, patient: Patient) -> Organization:
    org = session.get(Organization, patient.organization_id)
    assert org is not None
    return org


def local_date(session: Session, patient: Patient, when: datetime) -> date:
    day = _local_date(when, _org(session, patient))
    assert day is not None
    return day


def patient_sex(patient: Patient) -> str | None:
    return patient.gender if patient.gender in ("female", "male") else None


@dataclass
class Submission:
    answers: dict[str, int]
    mode: Mode
    answered_by: str = "patient"
    proxy_name: str | None = None
    proxy_relationship: str | None = None
    language: str = "en"
    completed_at: datetime | None = None
    client_system: str | None = None
    client_identifier: str | None = None
    # Questions the patient explicitly declined (only where the instrument allows it).
    declined: tuple[str, ...] = ()
    # SHA-256 of the request that carried it; the same identifier again is a replay only with
    # the same hash.
    content_hash: str | None = None
    # The sender says this amends the response stored under the same identifier.
    amends: bool = False


@dataclass
class Completed:
    """A completed response. `response` is the row as stored; for one just recorded whole
    (record_response, not a duplicate) it is a snapshot, not attached to the session."""

    response: MeasureResponse
    scored: Scored
    alert: Any = None  # set by concord.actions.checkin, which runs the safety rules
    duplicate: bool = False
    amended: MeasureResponse | None = None  # the earlier version this one replaced


def _check_answers(instrument: Instrument, answers: Mapping[str, Any], prefix: str) -> None:
    problems = validate_answers(instrument, answers)
    if problems:
        raise InvalidInput(
            Msg("Some answers are not allowed."),
            errors={f"{prefix}{item}": Msg(problem) for item, problem in problems.items()},
        )


def _check_declined(
    instrument: Instrument, answers: Mapping[str, Any], declined: Iterable[str], prefix: str
) -> None:
    errors: dict[str, Msg] = {}
    for item_id in declined:
        item = instrument.item(item_id)
        if item is None:
            errors[f"{prefix}{item_id}"] = Msg(
                "is not a question of %(code)s", code=instrument.code
            )
        elif not item.declinable:
            errors[f"{prefix}{item_id}"] = Msg(
                "cannot be declined: %(code)s does not allow it; choose an answer",
                code=instrument.code,
            )
        elif item_id in answers:
            errors[f"{prefix}{item_id}"] = Msg("is both answered and declined; choose one")
    if errors:
        raise InvalidInput(Msg("Some answers are not allowed."), errors=errors)


def require_complete(
    instrument: Instrument,
    answers: Mapping[str, Any],
    declined: Iterable[str] = (),
    prefix: str = "answers.",
    sex: str | None = None,
) -> None:
    """Refuse a response that leaves a required question unanswered (and not declined where
    the instrument allows it): an incomplete response is never stored as done. Each unanswered
    question is named; a suicide-risk question is called out. `sex` is the patient's recorded
    sex, for a question asked of one sex only."""
    declined = set(declined)
    missing = [
        item.id
        for item in asked_items(instrument, answers, sex)
        if item.required and item.id not in answers and item.id not in declined
    ]
    if not missing:
        return
    risk = [i for i in missing if i in instrument.risk_items]
    errors: dict[str, Msg] = {}
    for item_id in missing:
        if item_id in risk:
            errors[f"{prefix}{item_id}"] = Msg(
                "not answered: this question asks about suicide or self-harm, and the care "
                "team needs its answer"
            )
        else:
            errors[f"{prefix}{item_id}"] = Msg("not answered")
    if risk:
        message = Msg(
            "Not every question is answered (%(items)s), including the question about "
            "suicide or self-harm (%(risk)s). Answer them before sending.",
            items=", ".join(missing),
            risk=", ".join(risk),
        )
    else:
        message = Msg(
            "Not every question is answered (%(items)s). Answer them before sending.",
            items=", ".join(missing),
        )
    raise InvalidInput(message, errors=errors)


def _can_answer(session: Session, access: PatientAccess, action: str) -> None:
    if not (access.on_team or access.is_self):
        raise deny(
            session,
            access,
            action=action,
            object_type="QuestionnaireResponse",
            message="Only the patient or their care team can record answers.",
        )


def _can_record_for(session: Session, access: PatientAccess) -> None:
    if not (access.on_team and access.by.is_clinician):
        raise deny(
            session,
            access,
            action="create",
            object_type="QuestionnaireResponse",
            message="Only the care team can record answers on a patient's behalf.",
        )


def start_or_resume(
    session: Session,
    *,
    access: PatientAccess,
    instrument_code: str,
    schedule_id: uuid.UUID | None = None,
) -> MeasureResponse:
    """The patient's unfinished response to this instrument, or a new one (portal)."""
    _can_answer(session, access, "create")
    instrument = get_instrument(instrument_code)
    unfinished = session.scalar(
        select(MeasureResponse).where(
            MeasureResponse.patient_id == access.patient.id,
            MeasureResponse.instrument == instrument.code,
            MeasureResponse.status == ResponseStatus.in_progress,
        )
    )
    if unfinished is not None:
        return unfinished
    if access.is_self and not in_language(instrument, access.by.language):
        # Never the English text to a patient who reads another language (the suicide screen
        # least of all): the care team goes through it with an interpreter instead.
        raise Conflict(NOT_IN_LANGUAGE)
    language = access.by.language if access.by.language in instrument.languages else "en"
    response = MeasureResponse(
        patient_id=access.patient.id,
        instrument=instrument.code,
        instrument_version=instrument.version,
        language=language,
        status=ResponseStatus.in_progress,
        mode=Mode.portal if access.is_self else Mode.in_person,
        entered_by_id=access.by.id,
        schedule_id=schedule_id,
        started_at=now(),
        updated_at=now(),
        answers={},
        scores={},
        flags={},
    )
    session.add(response)
    session.flush()
    record(
        session,
        by=access.by,
        action="create",
        object_type="QuestionnaireResponse",
        object_id=response.id,
        patient_id=access.patient.id,
        detail={"instrument": instrument.code},
    )
    return response


def get_response(
    session: Session,
    *,
    access: PatientAccess,
    response_id: uuid.UUID | str,
    purpose: Purpose | None = None,
) -> MeasureResponse:
    """One of the patient's responses, if its category may be disclosed (NotFound otherwise,
    audited, as for a response that does not exist)."""
    try:
        rid = uuid.UUID(str(response_id))
    except ValueError:
        raise NotFound(Msg("No such response.")) from None
    response = session.get(MeasureResponse, rid)
    if response is None or response.patient_id != access.patient.id:
        raise NotFound(Msg("No such response."))
    if not access.can_read_record:
        raise refuse_record(
            session,
            access,
            object_type="QuestionnaireResponse",
            message=Msg("No such response."),
        )
    disclosure.check_record(
        session,
        access,
        response,
        object_type="QuestionnaireResponse",
        purpose=purpose,
        message=Msg("No such response."),
    )
    record(
        session,
        by=access.by,
        action="read",
        object_type="QuestionnaireResponse",
        object_id=response.id,
        patient_id=access.patient.id,
    )
    return response


def save_progress(
    session: Session,
    *,
    access: PatientAccess,
    response_id: uuid.UUID | str,
    answers: Mapping[str, Any],
    version: int,
    declined: Iterable[str] | None = None,
    complete: bool = False,
) -> MeasureResponse:
    """Keep the answers so far, to finish later. `declined`, when given, is the full list of
    questions the patient declined so far. With `complete`, refuse (changing nothing) unless
    every required question is answered or declined."""
    _can_answer(session, access, "update")
    response = get_response(session, access=access, response_id=response_id)
    if response.status != ResponseStatus.in_progress:
        raise Conflict(Msg("This check-in was already sent."))
    if response.version != version:
        raise Conflict(
            Msg(
                "This check-in was changed somewhere else (another tab or "
                "device). Reload it to continue."
            )
        )
    instrument = get_instrument(response.instrument)
    _check_answers(instrument, answers, "answers.")
    merged = {**response.answers, **{k: int(v) for k, v in answers.items()}}
    if declined is not None:
        declined = sorted(set(declined))
        # A question declined now drops an earlier answer to it, and one answered now is no
        # longer declined.
        merged = {k: v for k, v in merged.items() if k not in declined or k in answers}
        declined = [d for d in declined if d not in answers]
        _check_declined(instrument, merged, declined, "answers.")
    else:
        declined = list((response.flags or {}).get("declined", []))
    if complete:
        require_complete(instrument, merged, declined, sex=patient_sex(access.patient))
    response.flags = {**(response.flags or {}), "declined": declined}
    response.answers = merged
    response.updated_at = now()
    response.version += 1
    record(
        session,
        by=access.by,
        action="update",
        object_type="QuestionnaireResponse",
        object_id=response.id,
        patient_id=access.patient.id,
    )
    return response


def submit(
    session: Session,
    *,
    access: PatientAccess,
    response_id: uuid.UUID | str,
    answers: Mapping[str, Any],
    version: int,
    declined: Iterable[str] | None = None,
) -> Completed:
    """Send a check-in: score it, store it, and act on what it says. Refused, changing
    nothing, while a required question is unanswered."""
    response = save_progress(
        session,
        access=access,
        response_id=response_id,
        answers=answers,
        version=version,
        declined=declined,
        complete=True,
    )
    instrument = get_instrument(response.instrument)
    return _complete(
        session, access=access, response=response, instrument=instrument, completed_at=now()
    )


# Built once (the check-in is the busiest write; building a statement costs more than running
# it). A response sent without a client system is matched on IS NULL, which a bound parameter
# cannot express.
_EARLIER = select(MeasureResponse.id, MeasureResponse.content_hash).where(
    MeasureResponse.patient_id == bindparam("patient"),
    MeasureResponse.client_identifier == bindparam("identifier"),
)
_EARLIER_IN_SYSTEM = _EARLIER.where(MeasureResponse.client_system == bindparam("system"))
_EARLIER_NO_SYSTEM = _EARLIER.where(MeasureResponse.client_system.is_(None))
_RESPONSE_COLUMNS = tuple(c.key for c in MeasureResponse.__table__.columns)
# A new response is inserted unless one with the same client identifier is already stored: two
# requests carrying the same submission at once (a client retrying before its first answer
# came) both pass the check above, and the second must be answered as a duplicate, not fail
# on the unique constraint. The statement waits for the first to commit or roll back.
_INSERT_RESPONSE = {
    name: dialect_insert(MeasureResponse.__table__)
    .on_conflict_do_nothing(index_elements=["patient_id", "client_system", "client_identifier"])
    .returning(MeasureResponse.__table__.c.id)
    for name, dialect_insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
_INSERT_OBSERVATIONS = insert(MeasureObservation.__table__)


class _AlreadyStored(Exception):
    """Another request stored this submission first (see _INSERT_RESPONSE)."""


def _earlier(session: Session, patient_id: uuid.UUID, submission: Submission) -> Any:
    """(id, content_hash) of the response stored under the submission's identifier, or None:
    one statement, and the row itself is loaded only when it is needed (a replay)."""
    if submission.client_system:
        query, params = _EARLIER_IN_SYSTEM, {"system": submission.client_system}
    else:
        query, params = _EARLIER_NO_SYSTEM, {}
    return (
        core(session)
        .execute(
            query, {"patient": patient_id, "identifier": submission.client_identifier, **params}
        )
        .first()
    )


def _same_request(session: Session, found: Any, submission: Submission) -> MeasureResponse | None:
    """The stored response if `submission` repeats the request that stored it, else None.
    A response stored before requests were hashed is compared on its answers and time."""
    earlier = session.get(MeasureResponse, found.id)
    assert earlier is not None
    if found.content_hash is not None and submission.content_hash is not None:
        return earlier if found.content_hash == submission.content_hash else None
    answers = {k: int(v) for k, v in submission.answers.items()}
    same_time = submission.completed_at is None or submission.completed_at == earlier.completed_at
    return earlier if earlier.answers == answers and same_time else None


def _identifier_taken() -> Conflict:
    return Conflict(
        Msg(
            "A different response is already stored under this identifier. Send it with "
            'status "amended" to amend that response, or give it a new identifier.'
        )
    )


def record_response(
    session: Session,
    *,
    access: PatientAccess,
    instrument_code: str,
    submission: Submission,
    field_prefix: str = "answers.",
) -> Completed:
    """A whole response at once: entered by a clinician (in person, phone, video, or for a
    proxy) or sent by another system. The same client identifier twice is stored once."""
    if submission.mode == Mode.external:
        _can_answer(session, access, "create")
    else:
        _can_record_for(session, access)
    instrument = get_instrument(instrument_code)
    amending: MeasureResponse | None = None
    if submission.client_identifier:
        found = _earlier(session, access.patient.id, submission)
        if found is not None:
            earlier = _same_request(session, found, submission)
            if earlier is not None:
                return _replayed(earlier, instrument, access)
            if not submission.amends:
                raise _identifier_taken()
            amending = session.get(MeasureResponse, found.id)
    _check_answers(instrument, submission.answers, field_prefix)
    _check_declined(instrument, submission.answers, submission.declined, field_prefix)
    require_complete(
        instrument,
        submission.answers,
        submission.declined,
        field_prefix,
        sex=patient_sex(access.patient),
    )
    current = now()
    completed_at = submission.completed_at or current
    date_field = "authored" if submission.mode == Mode.external else "completed_at"
    if completed_at > current + timedelta(minutes=5):
        raise InvalidInput.field(date_field, Msg("cannot be in the future"))
    check_datetime_range(completed_at, date_field)
    if submission.answered_by == "proxy" and not (submission.proxy_name or "").strip():
        raise InvalidInput.field("proxy_name", Msg("say who answered for the patient"))
    language = submission.language if submission.language in instrument.languages else "en"
    # Every column set here: the row is inserted from these values (see _complete).
    response = MeasureResponse(
        id=new_id(),
        patient_id=access.patient.id,
        instrument=instrument.code,
        instrument_version=instrument.version,
        language=language,
        status=ResponseStatus.in_progress,
        mode=submission.mode,
        answered_by=submission.answered_by,
        proxy_name=submission.proxy_name,
        proxy_relationship=submission.proxy_relationship,
        entered_by_id=access.by.id,
        schedule_id=None,
        started_at=completed_at,
        updated_at=current,
        completed_at=None,
        client_system=submission.client_system,
        client_identifier=submission.client_identifier,
        answers={k: int(v) for k, v in submission.answers.items()},
        scores={},
        flags={"declined": sorted(set(submission.declined))},
        version=1,
        content_hash=submission.content_hash,
        amends_id=amending.id if amending is not None else None,
    )
    response.entered_by = access.by
    if amending is not None:
        _supersede(session, access=access, earlier=amending, by=response)
    try:
        completed = _complete(
            session,
            access=access,
            response=response,
            instrument=instrument,
            completed_at=completed_at,
            new=True,
        )
    except _AlreadyStored:
        found = _earlier(session, access.patient.id, submission)
        assert found is not None
        earlier = _same_request(session, found, submission)
        if earlier is None or amending is not None:
            raise _identifier_taken() from None
        return _replayed(earlier, instrument, access)
    completed.amended = amending
    return completed


_DELETE_OBSERVATIONS = MeasureObservation.__table__.delete().where(
    MeasureObservation.__table__.c.response_id == bindparam("response")
)


def _supersede(
    session: Session, *, access: PatientAccess, earlier: MeasureResponse, by: MeasureResponse
) -> None:
    """Keep `earlier` as history of the amendment `by`: its answers and scores stay as they
    were; it stops being current (its status, and the identifier passes to the amendment)
    and its score observations go, so charts, searches and schedules count the amendment
    alone. Audited with both versions' ids."""
    if earlier.status != ResponseStatus.completed:
        raise Conflict(Msg("Only a completed response can be amended."))
    if earlier.instrument != by.instrument:
        raise Conflict(
            Msg(
                "An amendment answers the same questionnaire as the response it amends (%(code)s).",
                code=earlier.instrument,
            )
        )
    earlier.status = ResponseStatus.superseded
    earlier.client_identifier = None
    earlier.updated_at = now()
    earlier.version += 1
    core(session).execute(_DELETE_OBSERVATIONS, {"response": earlier.id})
    record(
        session,
        by=access.by,
        action="update",
        object_type="QuestionnaireResponse",
        object_id=earlier.id,
        patient_id=access.patient.id,
        detail={"amended_by": str(by.id), "status": str(ResponseStatus.superseded)},
    )


def _replayed(earlier: MeasureResponse, instrument: Instrument, access: PatientAccess) -> Completed:
    """The answer to a submission already stored: the stored response, as it was scored."""
    return Completed(
        earlier,
        score_response(instrument, earlier.answers, patient_sex(access.patient)),
        duplicate=True,
    )


def observation_code(instrument: Instrument, score: Any) -> tuple[str, str]:
    """The code (and its system) a score's observations are stored and indexed under: its
    LOINC code where it has one, else Concord's own."""
    if score.loinc:
        return score.loinc, LOINC
    return f"{instrument.code}/{score.id}", CONCORD_SCORES


def _complete(
    session: Session,
    *,
    access: PatientAccess,
    response: MeasureResponse,
    instrument: Instrument,
    completed_at: datetime,
    new: bool = False,
) -> Completed:
    """Score and store `response`: a new one (`new`, not in the session) is inserted as it
    stands, one the session holds (a check-in started in the portal) is updated; its scores
    are inserted as observations either way. Core statements, not the ORM's unit of work:
    this is the busiest write, and the flush cost more than the rest of the submit."""
    scored = score_response(instrument, response.answers, patient_sex(access.patient))
    response.status = ResponseStatus.completed
    response.completed_at = completed_at
    response.updated_at = now()
    response.scores = {
        score_id: {
            "value": r.value,
            "band": r.band,
            "prorated": r.prorated,
            "missing": list(r.missing),
            "reason": r.reason,
        }
        for score_id, r in scored.scores.items()
    }
    response.flags = {
        "items": [
            {"id": f.id, "kind": f.kind, "severity": f.severity, "only_if_sex": f.only_if_sex}
            for f in scored.flags
        ],
        "unanswered": list(scored.unanswered),
        "declined": [
            d for d in (response.flags or {}).get("declined", []) if d in scored.unanswered
        ],
    }
    connection = core(session)  # a response the session holds is written here
    if new:
        inserted = connection.execute(
            _INSERT_RESPONSE[connection.dialect.name],
            {name: getattr(response, name) for name in _RESPONSE_COLUMNS},
        ).first()
        if inserted is None:
            raise _AlreadyStored  # before anything else of this response is written
    observations = []
    for score in instrument.scores:
        result = scored.scores[score.id]
        if result.value is None:
            continue
        code, code_system = observation_code(instrument, score)
        observations.append(
            {
                "id": new_id(),
                "response_id": response.id,
                "patient_id": access.patient.id,
                "instrument": instrument.code,
                "score_id": score.id,
                "code": code,
                "code_system": code_system,
                "value": result.value,
                "band": result.band,
                "effective_at": completed_at,
            }
        )
    if observations:
        connection.execute(_INSERT_OBSERVATIONS, observations)
    record(
        session,
        by=access.by,
        action="complete",
        object_type="QuestionnaireResponse",
        object_id=response.id,
        patient_id=access.patient.id,
        detail={"instrument": instrument.code, "mode": str(response.mode)},
    )
    # What the response means for the patient's safety and tasks is decided above the domains
    # (concord.actions.checkin), which every door calls.
    return Completed(response, scored)


def _completed() -> Select[tuple[MeasureResponse]]:
    """The responses a reader sees: completed ones (not one in progress, entered in error or
    superseded by an amendment)."""
    return select(MeasureResponse).where(MeasureResponse.status == ResponseStatus.completed)


def list_responses(
    session: Session,
    *,
    access: PatientAccess,
    instrument_code: str | None = None,
    limit: int = 200,
    purpose: Purpose | None = None,
) -> list[MeasureResponse]:
    """The patient's completed responses, newest first, less those whose category (their
    instrument's) may not be disclosed for `purpose` (withheld, and counted in the trail)."""
    if not access.can_read_record:
        raise refuse_record(session, access, action="list", object_type="QuestionnaireResponse")
    query = _completed().where(MeasureResponse.patient_id == access.patient.id)
    if instrument_code:
        query = query.where(MeasureResponse.instrument == instrument_code)
    rows = list(session.scalars(query.order_by(MeasureResponse.completed_at.desc()).limit(limit)))
    rows = disclosure.filter_records(
        session, access, rows, object_type="QuestionnaireResponse", purpose=purpose
    )
    record(
        session,
        by=access.by,
        action="search",
        object_type="QuestionnaireResponse",
        patient_id=access.patient.id,
    )
    return rows


def disclosed_instruments(categories: Iterable[DataCategory]) -> list[str]:
    """The codes of the loaded instruments whose category is among `categories`: a query's
    `instrument IN (...)`, so a count or a page never holds what is withheld (a response to
    an instrument this installation no longer loads has no category, and is withheld)."""
    wanted = set(categories)
    return sorted(code for code, i in library().instruments.items() if i.category in wanted)


def _disclosed(
    session: Session,
    by: User,
    query: Select[Any],
    column: Any,
    object_type: str,
    scope: list[PatientAccess] | None = None,
) -> Select[Any]:
    """`query` less the rows whose instrument's category may not be disclosed to `by` (the
    same decision as list_responses), before paging and a total; a search that withholds rows
    is counted in the trail (that count is the only extra query, and only when something is
    withheld). Per patient (consent, 42 CFR Part 2): the patients of the search whose records
    of a category are withheld are loaded once for all of them (ADR 0021)."""
    permitted = disclosure.permitted_to(by, session=session)
    codes = disclosed_instruments(permitted)
    model = column.class_
    # A search by patient names them already; otherwise the query's patients, found once.
    patients = (
        [a.patient.id for a in scope]
        if scope is not None
        else list(session.scalars(query.with_only_columns(model.patient_id).distinct()))
    )
    withheld_patients, forced = disclosure.withheld_for_search(
        session, by, patients, sorted(permitted)
    )
    if any(withheld_patients.values()):
        allowed = or_(
            *(
                and_(
                    column.in_(disclosed_instruments([cat])),
                    model.patient_id.not_in(sorted(withheld_patients[cat])),
                )
                if withheld_patients[cat]
                else column.in_(disclosed_instruments([cat]))
                for cat in sorted(permitted)
            ),
            false(),
        )
    else:
        # No patient's consent withholds a permitted category: the categories' instruments
        # together (the same rows as the clause per category; one IN to build and to bind).
        allowed = column.in_(codes) if codes else false()
    if forced:
        response = model.response_id if hasattr(model, "response_id") else model.id
        # A record corrected to Part 2 goes only where a Part 2 record of its category goes
        # (the label filter_records gives it: tests/part2/test_decision_sql_equals_python.py).
        part2_denied = disclosure.withheld_corrected_for_search(
            session, by, patients, sorted(permitted)
        )
        allowed = and_(
            allowed,
            *(
                or_(
                    response.not_in(sorted(forced)),
                    column.not_in(disclosed_instruments([cat])),
                    model.patient_id.not_in(sorted(part2_denied[cat])),
                )
                for cat in sorted(permitted)
                if part2_denied[cat]
            ),
        )
    some = forced or any(withheld_patients.values())
    if some or len(codes) < len(library().instruments):
        withheld = count(session, query.where(~allowed))
        if withheld:
            disclosure.audit_withheld_search(session, by, withheld, object_type=object_type)
    return query.where(allowed)


# --- schedules -------------------------------------------------------------------------------


@dataclass
class DueCheckIn:
    schedule: MeasureSchedule
    instrument: Instrument
    state: ScheduleState
    in_progress: MeasureResponse | None = None


def _completed_dates(
    session: Session, patient: Patient, instruments: set[str]
) -> dict[str, list[date]]:
    result: dict[str, list[date]] = {code: [] for code in instruments}
    if not instruments:
        return result
    tz = ZoneInfo(_org(session, patient).timezone)
    for code, completed_at, flags in session.execute(
        select(
            MeasureResponse.instrument, MeasureResponse.completed_at, MeasureResponse.flags
        ).where(
            MeasureResponse.patient_id == patient.id,
            MeasureResponse.instrument.in_(instruments),
            MeasureResponse.status == ResponseStatus.completed,
        )
    ):
        if incomplete(flags):
            continue  # never satisfies a schedule: the check-in is still to do
        if not in_range(completed_at):
            continue  # a date stored before dates were checked (year 0001) tells no schedule
        result[code].append(_local_date(completed_at, tz))
    return result


def incomplete(flags: Mapping[str, Any] | None) -> list[str]:
    """The required questions a stored response left unanswered without declining them (only
    responses stored before every path refused them can have any)."""
    flags = flags or {}
    declined = set(flags.get("declined") or ())
    return [i for i in flags.get("unanswered") or () if i not in declined]


def active_schedules(session: Session, patient_id: uuid.UUID) -> list[MeasureSchedule]:
    return list(
        session.scalars(
            select(MeasureSchedule)
            .where(MeasureSchedule.patient_id == patient_id, MeasureSchedule.stopped_at.is_(None))
            .order_by(MeasureSchedule.instrument)
        )
    )


def check_ins(session: Session, *, access: PatientAccess) -> list[DueCheckIn]:
    """Every active schedule and where it stands today."""
    if not access.can_read_record:
        raise refuse_record(session, access, action="list", object_type="MeasureSchedule")
    schedules = disclosure.filter_records(
        session,
        access,
        active_schedules(session, access.patient.id),
        object_type="MeasureSchedule",
        action="list",
    )
    dates = _completed_dates(session, access.patient, {s.instrument for s in schedules})
    on = org_today(_org(session, access.patient))
    unfinished = {
        r.instrument: r
        for r in session.scalars(
            select(MeasureResponse).where(
                MeasureResponse.patient_id == access.patient.id,
                MeasureResponse.status == ResponseStatus.in_progress,
            )
        )
    }
    result = []
    for schedule in schedules:
        instrument = library().get(schedule.instrument)
        if instrument is None:
            continue  # an instrument a clinic removed; the schedule stays for history
        state = schedule_state(
            start_on=schedule.start_on,
            every_days=schedule.every_days,
            end_on=schedule.end_on,
            completed_on=dates[schedule.instrument],
            today=on,
        )
        result.append(DueCheckIn(schedule, instrument, state, unfinished.get(instrument.code)))
    record(
        session,
        by=access.by,
        action="search",
        object_type="MeasureSchedule",
        patient_id=access.patient.id,
    )
    return result


def _require_team(session: Session, access: PatientAccess, action: str) -> None:
    if not access.can_edit_plan:
        raise deny(
            session,
            access,
            action=action,
            object_type="MeasureSchedule",
            message="Only the care team can change what a patient is asked to complete.",
        )


def add_schedule(
    session: Session,
    *,
    access: PatientAccess,
    instrument_code: str,
    every_days: int,
    start_on: date | None = None,
    end_on: date | None = None,
    reason: str | None = None,
) -> MeasureSchedule:
    _require_team(session, access, "create")
    instrument = get_instrument(instrument_code)
    if not 1 <= every_days <= 366:
        raise InvalidInput.field("every_days", Msg("must be a number of days from 1 to 366"))
    on = org_today(_org(session, access.patient))
    start_on = start_on or on
    if end_on is not None and end_on < start_on:
        raise InvalidInput.field("end_on", Msg("must be on or after the start date"))
    existing = session.scalar(
        select(MeasureSchedule).where(
            MeasureSchedule.patient_id == access.patient.id,
            MeasureSchedule.instrument == instrument.code,
            MeasureSchedule.stopped_at.is_(None),
            # A schedule that has ended (a one-off "ask now") does not block a new one.
            or_(MeasureSchedule.end_on.is_(None), MeasureSchedule.end_on >= on),
        )
    )
    if existing is not None:
        raise Conflict(
            Msg(
                "%(code)s is already scheduled for this patient; change that schedule instead.",
                code=instrument.code,
            )
        )
    schedule = MeasureSchedule(
        patient_id=access.patient.id,
        instrument=instrument.code,
        every_days=every_days,
        start_on=start_on,
        end_on=end_on,
        created_by_id=access.by.id,
        created_at=now(),
        reason=reason,
    )
    session.add(schedule)
    session.flush()
    record(
        session,
        by=access.by,
        action="create",
        object_type="MeasureSchedule",
        object_id=schedule.id,
        patient_id=access.patient.id,
        detail={"instrument": instrument.code, "every_days": every_days},
    )
    return schedule


def _schedule(
    session: Session, access: PatientAccess, schedule_id: uuid.UUID | str
) -> MeasureSchedule:
    try:
        sid = uuid.UUID(str(schedule_id))
    except ValueError:
        raise NotFound(Msg("No such schedule.")) from None
    schedule = session.get(MeasureSchedule, sid)
    if schedule is None or schedule.patient_id != access.patient.id or schedule.stopped_at:
        raise NotFound(Msg("No such schedule."))
    return schedule


def change_schedule(
    session: Session,
    *,
    access: PatientAccess,
    schedule_id: uuid.UUID | str,
    every_days: int,
    end_on: date | None,
    version: int,
) -> MeasureSchedule:
    _require_team(session, access, "update")
    schedule = _schedule(session, access, schedule_id)
    if schedule.version != version:
        raise Conflict(
            Msg("Someone else changed this schedule after you opened it. Check it and save again."),
            current_version=schedule.version,
        )
    if not 1 <= every_days <= 366:
        raise InvalidInput.field("every_days", Msg("must be a number of days from 1 to 366"))
    if end_on is not None and end_on < schedule.start_on:
        raise InvalidInput.field("end_on", Msg("must be on or after the start date"))
    schedule.every_days = every_days
    schedule.end_on = end_on
    schedule.version += 1
    record(
        session,
        by=access.by,
        action="update",
        object_type="MeasureSchedule",
        object_id=schedule.id,
        patient_id=access.patient.id,
        detail={"every_days": every_days},
    )
    return schedule


def stop_schedule(session: Session, *, access: PatientAccess, schedule_id: uuid.UUID | str) -> None:
    _require_team(session, access, "delete")
    schedule = _schedule(session, access, schedule_id)
    schedule.stopped_at = now()
    record(
        session,
        by=access.by,
        action="delete",
        object_type="MeasureSchedule",
        object_id=schedule.id,
        patient_id=access.patient.id,
    )


ASK_ONCE_EVERY_DAYS = 14  # a one-off check-in's windows: as early and as late as a fortnightly one


def ask_now(session: Session, *, access: PatientAccess, instrument_code: str) -> MeasureSchedule:
    """A clinician asks the patient to complete a questionnaire today. A scheduled one starts
    its cadence again from today (asked now, then every N days); one that is not scheduled is
    asked once, today. A check-in already waiting for the patient is left as it is. Adding a
    schedule answered 409 for a scheduled instrument, so there was no way to ask now."""
    _require_team(session, access, "update")
    instrument = get_instrument(instrument_code)
    on = org_today(_org(session, access.patient))
    schedule = session.scalar(
        select(MeasureSchedule).where(
            MeasureSchedule.patient_id == access.patient.id,
            MeasureSchedule.instrument == instrument.code,
            MeasureSchedule.stopped_at.is_(None),
            or_(MeasureSchedule.end_on.is_(None), MeasureSchedule.end_on >= on),
        )
    )
    if schedule is None:
        schedule = MeasureSchedule(
            patient_id=access.patient.id,
            instrument=instrument.code,
            every_days=ASK_ONCE_EVERY_DAYS,
            start_on=on,
            end_on=on,
            created_by_id=access.by.id,
            created_at=now(),
            reason="Asked now by the care team",
        )
        session.add(schedule)
        session.flush()
        action = "create"
    else:
        state = schedule_state(
            start_on=schedule.start_on,
            every_days=schedule.every_days,
            end_on=schedule.end_on,
            completed_on=_completed_dates(session, access.patient, {instrument.code})[
                instrument.code
            ],
            today=on,
            count_missed=False,
        )
        if state.status in ("due", "overdue"):
            return schedule  # already waiting for the patient
        schedule.start_on = on
        if schedule.end_on is not None and schedule.end_on < on:
            schedule.end_on = on
        schedule.version += 1
        action = "update"
    record(
        session,
        by=access.by,
        action=action,
        object_type="MeasureSchedule",
        object_id=schedule.id,
        patient_id=access.patient.id,
        detail={"instrument": instrument.code, "asked_now": True},
    )
    return schedule


def schedule_defaults(
    session: Session, *, access: PatientAccess, start_on: date
) -> list[MeasureSchedule]:
    """Schedule the organization's default check-ins (called when a plan becomes active);
    an instrument already scheduled is left as it is."""
    org = _org(session, access.patient)
    defaults = (org.measurement_defaults or {}).get("schedules") or DEFAULT_SCHEDULES
    made = []
    scheduled = {s.instrument for s in active_schedules(session, access.patient.id)}
    for entry in defaults:
        code = entry["instrument"]
        if code in scheduled or library().get(code) is None:
            continue
        made.append(
            add_schedule(
                session,
                access=access,
                instrument_code=code,
                every_days=int(entry["every_days"]),
                start_on=start_on,
                reason="Default when the plan became active",
            )
        )
    return made


# --- reminders ----------------------------------------------------------------------------------


# The portal's home, where a waiting check-in is started: no instrument, nothing about the patient.
CHECKIN_LINK = "/my"


def queue_reminders(session: Session) -> int:
    """One notice per due date for each due check-in of a patient with a portal account,
    through the one notification service (concord/notifications, ADR 0029): the bell, then the
    patient's own channels in order, after their quiet hours, retried with back-off and falling
    back to the next channel. The notice says only that a check-in is waiting: no clinical
    content. Each patient's reminders are worked out on their own (concord.db.isolated): a
    record that cannot be read skips that patient, reported, not everyone's reminders."""
    queued = 0
    schedules = session.scalars(
        select(MeasureSchedule).where(MeasureSchedule.stopped_at.is_(None))
    ).all()
    by_patient: dict[uuid.UUID, list[MeasureSchedule]] = {}
    for schedule in schedules:
        by_patient.setdefault(schedule.patient_id, []).append(schedule)
    queued += sum(
        isolated_each(
            session,
            list(by_patient.items()),
            lambda entry: _remind(session, entry[0], entry[1]),
            job="reminders",
            object_type="Patient",
            key=lambda entry: entry[0],
        )
    )
    session.flush()
    return queued


def _remind(
    session: Session, patient_id: uuid.UUID, patient_schedules: list[MeasureSchedule]
) -> int:
    # The worker acts as the system, for one named purpose (not an unscoped read).
    reach = system_access(session, patient_id, purpose=SystemPurpose.checkin_reminder)
    if reach is None or reach.patient.user_id is None:
        return 0
    patient = reach.patient
    user = session.get(User, patient.user_id)
    if user is None or not user.active:
        return 0
    queued = 0
    on = org_today(_org(session, patient))
    dates = _completed_dates(session, patient, {s.instrument for s in patient_schedules})
    for schedule in patient_schedules:
        instrument = library().get(schedule.instrument)
        if instrument is not None and not in_language(instrument, user.language):
            # The portal will not hand it over (the care team goes through it with an
            # interpreter): a reminder would send the patient to a check-in they cannot start.
            continue
        state = schedule_state(
            start_on=schedule.start_on,
            every_days=schedule.every_days,
            end_on=schedule.end_on,
            completed_on=dates[schedule.instrument],
            today=on,
        )
        if state.status != "due" or state.due_on is None:
            continue
        if session.get(ReminderSent, (schedule.id, state.due_on)) is not None:
            continue
        try:
            # Two workers can both get this far; the reminder's key lets one record it
            # and the other (waiting on that key, then refused) queues nothing.
            with session.begin_nested():
                session.add(
                    ReminderSent(schedule_id=schedule.id, due_on=state.due_on, queued_at=now())
                )
        except IntegrityError:
            continue

        notices.notify(
            session,
            user=user,
            kind="checkin_waiting",
            link=CHECKIN_LINK,
            source=f"checkin:{schedule.id}:{state.due_on.isoformat()}",
        )
        reach.record(session, action="remind", object_type="MeasureSchedule", object_id=schedule.id)
        queued += 1
    return queued


# --- progress ------------------------------------------------------------------------------------


@dataclass
class InstrumentProgress:
    instrument: Instrument
    points: list[Point]
    summary: Progress
    treatment_start: date | None
    goals: list[Any] = field(default_factory=list)
    # Whether any score in the series is a 42 CFR Part 2 record (the page's badge).
    part2: bool = False


def progress_for(
    session: Session,
    *,
    access: PatientAccess,
    treatment_start: date | None,
    goals: list[Any],
    instrument_codes: list[str] | None = None,
) -> list[InstrumentProgress]:
    """The main score of each instrument the patient has answered, with its status, against
    when treatment began and the plan's goals linked to a measure (the care plan's, passed in:
    careplans sits above measures; concord.actions.progress joins the two)."""
    if not access.can_read_record:
        raise refuse_record(session, access, action="list", object_type="Observation")
    rows = (
        session.execute(
            select(MeasureObservation)
            .where(MeasureObservation.patient_id == access.patient.id)
            .order_by(MeasureObservation.effective_at)
        )
        .scalars()
        .all()
    )
    rows = disclosure.filter_records(session, access, rows, object_type="Observation")
    tz = ZoneInfo(_org(session, access.patient).timezone)
    series: dict[str, list[Point]] = {}
    labelled: set[str] = set()
    for row in rows:
        instrument = library().get(row.instrument)
        main = instrument.main_score if instrument else None
        if main is None or row.score_id != main.id:
            continue
        if row.instrument not in labelled and disclosure.label_of(session, access, row).part2:
            labelled.add(row.instrument)
        series.setdefault(row.instrument, []).append(
            Point(_local_date(row.effective_at, tz), row.value, row.band, str(row.response_id))
        )
    start = treatment_start
    on = org_today(_org(session, access.patient))
    result = []
    for code in instrument_codes or sorted(series):
        instrument = library().get(code)
        if instrument is None or instrument.main_score is None:
            continue  # a screen with no score (the ASQ) has nothing to chart
        if not disclosure.decide(access, instrument.category).permit:
            continue  # withheld (its scores were counted in the trail above)
        points = series.get(code, [])
        result.append(
            InstrumentProgress(
                instrument,
                points,
                progress(instrument, points, treatment_start=start, today=on),
                start,
                [g for g in goals if g.measure_instrument == code],
                part2=code in labelled,
            )
        )
    record(
        session,
        by=access.by,
        action="read",
        object_type="Observation",
        patient_id=access.patient.id,
    )
    return result


def goal_met(goal: Any, latest: float | None) -> bool:
    """Whether the latest score meets a goal linked to a measure."""
    if latest is None or goal.measure_value is None:
        return False
    return {
        "below": latest < goal.measure_value,
        "at_most": latest <= goal.measure_value,
        "at_least": latest >= goal.measure_value,
    }.get(goal.measure_op or "", False)


def latest_scores(session: Session, access: PatientAccess) -> dict[str, MeasureObservation]:
    """The newest main-score observation of each instrument that `access` may see, for goals
    linked to measures: each passes the disclosure decision (an AUDIT-C of a Part 2 program
    without a permitting consent, or a category the patient refused the reader, is left out,
    counted and audited; a Part 2 score shown under consent is logged)."""
    latest: dict[str, MeasureObservation] = {}
    for row in session.scalars(
        select(MeasureObservation)
        .where(MeasureObservation.patient_id == access.patient.id)
        .order_by(MeasureObservation.effective_at.desc())
    ):
        instrument = library().get(row.instrument)
        main = instrument.main_score if instrument else None
        if main is not None and row.score_id == main.id and row.instrument not in latest:
            latest[row.instrument] = row
    kept = disclosure.filter_records(
        session, access, list(latest.values()), object_type="Observation", action="list"
    )
    return {row.instrument: row for row in kept}


# --- reads for the FHIR API (access and audit applied here, once) -------------------------------


def _patients_of(session: Session, rows: Iterable[Any]) -> dict[uuid.UUID, Patient]:
    found: dict[uuid.UUID, Patient] = {}
    for row in rows:
        if row.patient_id not in found:
            patient = session.get(Patient, row.patient_id)
            assert patient is not None
            found[row.patient_id] = patient
    return found


def _search_disclosed(
    session: Session,
    by: User,
    object_type: str,
    rows: list[Any],
    scope: list[PatientAccess] | None,
) -> None:
    """Tell the disclosure decision what a search page disclosed, patient by patient, so a
    Part 2 record leaving its program (or read under break-the-glass) is in the disclosure
    log as on every other path (ADR 0022). The page was already filtered in SQL by the same
    decision (`_disclosed`); this decides each patient's rows again only to record them."""
    by_patient: dict[uuid.UUID, list[Any]] = {}
    for row in rows:
        by_patient.setdefault(row.patient_id, []).append(row)
    known = {a.patient.id: a for a in scope or []}  # a search by patient found these already
    for patient_id, group in by_patient.items():
        acc = known.get(patient_id) or record_access(
            session, by, patient_id, object_type=object_type
        )
        disclosure.filter_records(session, acc, group, object_type=object_type)


def _searched(session: Session, by: User, object_type: str, rows: list[Any]) -> None:
    for row in rows:
        record(
            session,
            by=by,
            action="search",
            object_type=object_type,
            object_id=row.id,
            patient_id=row.patient_id,
        )


def get_response_by_id(
    session: Session, *, by: User, ident: str
) -> tuple[MeasureResponse, PatientAccess]:
    """A response by its id, if `by` may read its patient's whole record; NotFound (audited)
    for a missing one and one outside the scope alike. The read is in the trail."""
    response, acc = owned_by_id(
        session, by, MeasureResponse, ident, object_type="QuestionnaireResponse"
    )
    # Its instrument's data category, decided as list_responses decides it.
    disclosure.check_record(
        session, acc, response, object_type="QuestionnaireResponse", message=Msg("No such record.")
    )
    record(
        session,
        by=by,
        action="read",
        object_type="QuestionnaireResponse",
        object_id=response.id,
        patient_id=acc.patient.id,
    )
    return response, acc


def find_response(
    session: Session, *, by: User, ident: str, patients: set[uuid.UUID] | None = None
) -> tuple[MeasureResponse, PatientAccess] | None:
    """A response by its id for what is derived from it (its scores, its items), if `by` may
    read its patient's whole record (and it is one of `patients`' when given); None otherwise
    (a refusal is in the trail). What is returned from it goes to the trail by record_read or
    record_searched."""
    key = parse_id(ident)
    response = session.get(MeasureResponse, key) if key is not None else None
    if response is None or (patients is not None and response.patient_id not in patients):
        return None
    try:
        acc = record_access(session, by, response.patient_id, object_type="QuestionnaireResponse")
        disclosure.check_record(session, acc, response, object_type="QuestionnaireResponse")
    except NotFound:
        return None
    return response, acc


def search_responses(
    session: Session,
    *,
    by: User,
    scope: list[PatientAccess] | None,
    questionnaires: Sequence[Sequence[tuple[str, str | None] | None]] = (),
    identifiers: Sequence[Sequence[CodeCriterion]] = (),
    after: uuid.UUID | None = None,
    limit: int = 100,
    only_count: bool = False,
) -> Page[tuple[MeasureResponse, Patient]]:
    """Completed responses of the patients in `scope` (None: every patient `by` may read), in
    id order. Each questionnaires group keeps those answering one of its (instrument, version)
    (None: a questionnaire Concord does not have); each identifiers group those whose client
    identifier one of its criteria matches. Each response returned is in the trail."""
    query = _completed().where(in_scope(by, scope, MeasureResponse.patient_id))
    for group in questionnaires:
        query = query.where(or_(false(), *(_answering(q) for q in group if q is not None)))
    for clause in any_of(
        identifiers, MeasureResponse.client_system, MeasureResponse.client_identifier
    ):
        query = query.where(clause)
    query = _disclosed(
        session, by, query, MeasureResponse.instrument, "QuestionnaireResponse", scope
    )
    page = keyset(
        session, query, MeasureResponse.id, after=after, limit=limit, only_count=only_count
    )
    rows = [row for (row,) in page.rows]
    patients = _patients_of(session, rows)
    _searched(session, by, "QuestionnaireResponse", rows)
    _search_disclosed(session, by, "QuestionnaireResponse", rows, scope)
    return Page([(r, patients[r.patient_id]) for r in rows], page.more, page.total)


def _answering(questionnaire: tuple[str, str | None]) -> Any:
    code, version = questionnaire
    clause = MeasureResponse.instrument == code
    if version is not None:
        clause = and_(clause, MeasureResponse.instrument_version == version)
    return clause


def responses_with_identifier(
    session: Session, access: PatientAccess, system: str | None, value: str, *, any_system: bool
) -> list[MeasureResponse]:
    """The patient's completed responses under a client identifier (at most two: one is the
    answer, two say the identifier is ambiguous). `system` None is no system."""
    query = _completed().where(
        MeasureResponse.patient_id == access.patient.id,
        MeasureResponse.client_identifier == value,
    )
    if not any_system:
        query = query.where(
            MeasureResponse.client_system == system
            if system
            else MeasureResponse.client_system.is_(None)
        )
    return list(session.scalars(query.limit(2)))


def get_observation(
    session: Session, *, by: User, ident: str
) -> tuple[MeasureObservation, PatientAccess]:
    """A score by its id, if `by` may read its patient's whole record; NotFound otherwise (a
    refusal is in the trail). The read is in the trail."""
    key = parse_id(ident)
    observation = session.get(MeasureObservation, key) if key is not None else None
    if observation is None:
        raise NotFound(Msg("No such record."))
    acc = record_access(session, by, observation.patient_id, object_type="Observation")
    disclosure.check_record(
        session, acc, observation, object_type="Observation", message=Msg("No such record.")
    )
    record(
        session,
        by=by,
        action="read",
        object_type="Observation",
        object_id=observation.id,
        patient_id=acc.patient.id,
    )
    return observation, acc


def scores_of(session: Session, response_id: uuid.UUID) -> list[MeasureObservation]:
    """A response's scores, in id order."""
    return list(
        session.scalars(
            select(MeasureObservation)
            .where(MeasureObservation.response_id == response_id)
            .order_by(MeasureObservation.id)
        )
    )


# The keys a search of scores may be sorted by (FHIR's _sort names): their columns.
OBSERVATION_ORDER: dict[str, Any] = {
    "date": MeasureObservation.effective_at,
    "code": MeasureObservation.code,
    "_id": MeasureObservation.id,
}


def search_observations(
    session: Session,
    *,
    by: User,
    scope: list[PatientAccess] | None,
    codes: Sequence[Sequence[CodeCriterion]] = (),
    dates: Sequence[Sequence[DateCriterion]] = (),
    stored: Sequence[Sequence[DateCriterion]] = (),
    zone: Any = None,
    order: Sequence[tuple[str, bool]] = (),
    offset: int = 0,
    before: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 100,
    only_count: bool = False,
    with_total: bool = True,
) -> Page[tuple[MeasureObservation, Patient]]:
    """Scores of the patients in `scope` (None: every patient `by` may read), newest first,
    those before `before` (a score's time and id) when given; or in `order` (OBSERVATION_ORDER
    keys, each descending or not, then by id) from `offset`. Each codes group keeps those
    whose code one of its criteria matches; each dates group those whose time one of its
    criteria matches, each stored group those whose response was last stored (updated) then
    (`zone`: the organization's, for values without one). Each score returned is in the
    trail."""
    query = select(MeasureObservation).where(in_scope(by, scope, MeasureObservation.patient_id))
    for clause in any_of(codes, MeasureObservation.code_system, MeasureObservation.code):
        query = query.where(clause)
    for group in dates:
        query = query.where(or_(*(d.clause(MeasureObservation.effective_at, zone) for d in group)))
    for group in stored:
        query = query.where(
            MeasureObservation.response_id.in_(
                select(MeasureResponse.id).where(
                    or_(*(d.clause(MeasureResponse.updated_at, zone) for d in group))
                )
            )
        )
    query = _disclosed(session, by, query, MeasureObservation.instrument, "Observation", scope)
    if only_count:
        return Page([], False, count(session, query))
    if order:
        columns = [
            OBSERVATION_ORDER[key].desc() if descending else OBSERVATION_ORDER[key].asc()
            for key, descending in order
        ]
        found = ordered(
            session,
            query,
            [*columns, MeasureObservation.id],
            offset=offset,
            limit=limit,
            with_total=with_total,
        )
        rows = [row[0] for row in found.rows]
        more, total = found.more, found.total
    else:
        page = query
        if before is not None:
            when, last_id = before
            page = query.where(
                or_(
                    MeasureObservation.effective_at < when,
                    and_(MeasureObservation.effective_at == when, MeasureObservation.id < last_id),
                )
            )
        rows = list(
            session.scalars(
                page.order_by(
                    MeasureObservation.effective_at.desc(), MeasureObservation.id.desc()
                ).limit(limit + 1)
            )
        )
        total = total_of(session, query, rows, before, limit)
        more = len(rows) > limit
        rows = rows[:limit]
    patients = _patients_of(session, rows)
    _searched(session, by, "Observation", rows)
    _search_disclosed(session, by, "Observation", rows, scope)
    return Page([(r, patients[r.patient_id]) for r in rows], more, total)


def record_read(
    session: Session, access: PatientAccess, object_type: str, object_id: uuid.UUID | str
) -> None:
    """A read of something derived from a response (an item's Observation) or found for a
    caller already given the patient's access, in the trail."""
    record(
        session,
        by=access.by,
        action="read",
        object_type=object_type,
        object_id=object_id,
        patient_id=access.patient.id,
    )


def record_searched(
    session: Session,
    by: User,
    object_type: str,
    found: Iterable[tuple[uuid.UUID | str, uuid.UUID]],
) -> None:
    """What a search returned that was derived from responses (object id, patient id) in
    memory, in the trail (find_response gave the access to each)."""
    for object_id, patient_id in found:
        record(
            session,
            by=by,
            action="search",
            object_type=object_type,
            object_id=object_id,
            patient_id=patient_id,
        )


def observation_writers(
    session: Session, observation_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, tuple[MeasureObservation, MeasureResponse, Patient]]:
    """Each scored Observation with the response it was scored from (who answered, who
    entered it) and its patient: what its Provenance says (concord.fhir.provenance). No access
    decision here: asked only about Observations the caller has just been given through one."""
    ids = list(observation_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(MeasureObservation, MeasureResponse, Patient)
        .join(MeasureResponse, MeasureResponse.id == MeasureObservation.response_id)
        .join(Patient, Patient.id == MeasureObservation.patient_id)
        .where(MeasureObservation.id.in_(ids))
    ).all()
    return {obs.id: (obs, response, patient) for obs, response, patient in rows}
