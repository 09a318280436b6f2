"""FHIR reads and searches, behind the same access rules and audit as the pages."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from concord import access
from concord.access import PatientAccess
from concord.accounts.models import CLINICAL_ROLES, Organization, Role, User
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.careplans import service as plans
from concord.careplans.models import CarePlan, Goal, PlanRevision
from concord.errors import Conflict, InvalidInput, NotFound
from concord.fhir import mapping
from concord.fhir.mapping import GOAL_LIFECYCLE, SEARCH_PARAMS
from concord.i18n import Msg
from concord.patients.models import CareTeam, Patient
from concord.patients.service import current_members

MAX_COUNT = 200
DEFAULT_COUNT = 50
COMMON_PARAMS = {"_count", "_cursor", "_format", "_pretty"}


@dataclass
class SearchPage:
    resources: list[dict[str, Any]]
    next_cursor: str | None


def mrn_system(base: str, org: Organization) -> str:
    return f"{base}/sid/mrn/{org.slug}"


def _org(session: Session, by: User) -> Organization:
    org = session.get(Organization, by.organization_id)
    assert org is not None
    return org


def _parse_params(kind: str, params: Mapping[str, str]) -> tuple[dict[str, str], int, str | None]:
    allowed = SEARCH_PARAMS[kind]
    criteria: dict[str, str] = {}
    for name, value in params.items():
        base_name = name.split(":", 1)[0]
        if base_name in COMMON_PARAMS:
            continue
        if base_name not in allowed or ":" in name:
            supported = ", ".join(sorted(allowed))
            raise InvalidInput.field(
                name,
                Msg(
                    "is not a search parameter for %(kind)s here (supported: %(supported)s)",
                    kind=kind,
                    supported=supported,
                ),
            )
        criteria[base_name] = value
    if params.get("_format") not in (None, "json", "application/fhir+json", "application/json"):
        raise InvalidInput.field("_format", Msg("only JSON is supported"))
    raw_count = params.get("_count", str(DEFAULT_COUNT))
    if not raw_count.isdigit() or int(raw_count) < 1:
        raise InvalidInput.field(
            "_count", Msg("must be a whole number from 1 to %(max)s", max=MAX_COUNT)
        )
    return criteria, min(int(raw_count), MAX_COUNT), params.get("_cursor")


def _patient_ref(value: str) -> str:
    """'123', 'Patient/123' or a full URL ending in Patient/123."""
    value = value.strip()
    if "Patient/" in value:
        value = value.rsplit("Patient/", 1)[1]
    if "/" in value:
        raise InvalidInput.field("patient", Msg("must be a Patient id or Patient/<id>"))
    return value


def _subject(criteria: dict[str, str]) -> str | None:
    if "patient" in criteria and "subject" in criteria:
        raise InvalidInput.field("subject", Msg("use either patient or subject, not both"))
    value = criteria.get("patient") or criteria.get("subject")
    return _patient_ref(value) if value is not None else None


def _cursor(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput.field("_cursor", Msg("is not a cursor this server gave out")) from None


def _scope(session: Session, by: User, patient_ref: str | None) -> list[PatientAccess] | None:
    """The patients a search may return: one named patient, or None meaning all readable.
    A patient outside the caller's scope gives an empty result, exactly like a missing one."""
    if patient_ref is None:
        return None
    try:
        acc = access.patient_for(session, by, patient_ref, action="search")
    except NotFound:
        return []
    if not acc.can_read_record:
        # Empty, as for a patient outside the caller's scope; the refusal is in the trail.
        access.refuse_record(session, acc, action="search")
        return []
    return [acc]


def _page(rows: list[Any], count: int) -> tuple[list[Any], str | None]:
    if len(rows) > count:
        return rows[:count], str(rows[count - 1].id)
    return rows, None


def _readable_ids(by: User) -> Select[tuple[uuid.UUID]]:
    return access.readable_patients(by).with_only_columns(Patient.id)


def _clinical_reader(by: User) -> bool:
    """FHIR returns whole records: patients (their own) and care teams, not family members."""
    return by.is_clinician or by.is_patient


# --- reads -----------------------------------------------------------------------------------


def read_patient(session: Session, *, by: User, ident: str, base: str) -> dict[str, Any]:
    acc = _owner_access(session, by, ident, "Patient")
    return mapping.patient_resource(acc.patient, mrn_system(base, _org(session, by)))


def _team_resource(session: Session, team: CareTeam, acc: PatientAccess) -> dict[str, Any]:
    return mapping.care_team_resource(team, acc.patient, current_members(session, team_id=team.id))


def _goal_resource(
    session: Session, goal: Goal, acc: PatientAccess, contents: Any = None
) -> dict[str, Any]:
    if contents is None:
        plan = session.get(CarePlan, goal.plan_id)
        assert plan is not None
        contents = plans.load_contents(session, plan)
    return mapping.goal_resource(goal, acc.patient, contents)


def _plan_resource(session: Session, plan: CarePlan, acc: PatientAccess) -> dict[str, Any]:
    team = session.scalar(select(CareTeam).where(CareTeam.patient_id == plan.patient_id))
    latest = session.scalar(
        select(PlanRevision).where(
            PlanRevision.plan_id == plan.id, PlanRevision.number == plan.revision_number
        )
    )
    from concord.fhir.decisions import decisions_for_plan

    return mapping.care_plan_resource(
        plan,
        acc.patient,
        team,
        plans.load_contents(session, plan),
        latest,
        decisions_for_plan(session, plan.id),
    )


def _owner_access(
    session: Session, by: User, patient_id: uuid.UUID | str, object_type: str
) -> PatientAccess:
    """The patient a resource belongs to, if `by` may read their record; otherwise the same
    answer as for a resource that does not exist, word for word (audited either way)."""
    try:
        acc = access.patient_for(session, by, patient_id, object_type=object_type)
    except NotFound:
        raise NotFound(Msg("No such resource.")) from None
    if not acc.can_read_record:
        raise access.refuse_record(
            session, acc, object_type=object_type, message=Msg("No such resource.")
        )
    return acc


def _get(session: Session, model: Any, ident: str) -> Any:
    try:
        return session.get(model, uuid.UUID(ident))
    except ValueError:
        return None


def read_resource(
    session: Session, *, by: User, kind: str, ident: str, base: str
) -> dict[str, Any]:
    if kind == "Patient":
        return read_patient(session, by=by, ident=ident, base=base)
    if kind == "Practitioner":
        user = _get(session, User, ident)
        if (
            user is None
            or user.organization_id != by.organization_id
            or Role(user.role) not in CLINICAL_ROLES
            or not _clinical_reader(by)
        ):
            raise NotFound(Msg("No such resource."))
        return mapping.practitioner_resource(user)
    model = {"CareTeam": CareTeam, "CarePlan": CarePlan, "Goal": Goal}[kind]
    item = _get(session, model, ident)
    if item is None:
        record(
            session,
            by=by,
            action="read",
            object_type=kind,
            object_id=ident[:64],
            outcome=Outcome.denied,
        )
        raise NotFound(Msg("No such resource."))
    patient_id = (
        item.patient_id
        if kind != "Goal"
        else session.scalar(select(CarePlan.patient_id).where(CarePlan.id == item.plan_id))
    )
    acc = _owner_access(session, by, patient_id, kind)
    if kind == "Goal" and item.removed_at is not None:
        raise NotFound(Msg("No such resource."))
    record(
        session,
        by=by,
        action="read",
        object_type=kind,
        object_id=item.id,
        patient_id=acc.patient.id,
    )
    if kind == "CareTeam":
        return _team_resource(session, item, acc)
    if kind == "CarePlan":
        return _plan_resource(session, item, acc)
    return _goal_resource(session, item, acc)


# --- searches --------------------------------------------------------------------------------


def search(
    session: Session, *, by: User, kind: str, params: Mapping[str, str], base: str
) -> SearchPage:
    criteria, count, cursor_raw = _parse_params(kind, params)
    cursor = _cursor(cursor_raw)
    if kind == "Patient":
        return _search_patients(session, by, criteria, count, cursor, base)
    scope = _scope(session, by, _subject(criteria))
    if scope == [] or not _clinical_reader(by):
        return SearchPage([], None)
    accesses: dict[uuid.UUID, PatientAccess] = {a.patient.id: a for a in scope or []}
    if kind == "CareTeam":
        query = select(CareTeam)
        patient_col = CareTeam.patient_id
        status = criteria.get("status")
        if status is not None and status != "active":
            return SearchPage([], None)
    elif kind == "CarePlan":
        query = select(CarePlan)
        patient_col = CarePlan.patient_id
        if "status" in criteria:
            query = query.where(CarePlan.status.in_(criteria["status"].split(",")))
    else:
        query = (
            select(Goal)
            .join(CarePlan, CarePlan.id == Goal.plan_id)
            .where(Goal.removed_at.is_(None))
        )
        patient_col = CarePlan.patient_id
        if "lifecycle-status" in criteria:
            wanted = set(criteria["lifecycle-status"].split(","))
            ours = [k for k, v in GOAL_LIFECYCLE.items() if v in wanted]
            query = query.where(Goal.status.in_(ours))
    if scope is None:
        query = query.where(patient_col.in_(_readable_ids(by)))
    else:
        query = query.where(patient_col.in_(list(accesses)))
    model = {"CareTeam": CareTeam, "CarePlan": CarePlan, "Goal": Goal}[kind]
    if cursor is not None:
        query = query.where(model.id > cursor)
    query = query.add_columns(patient_col).order_by(model.id).limit(count + 1)
    pairs = list(session.execute(query))
    page, next_cursor = _page([row for row, _ in pairs], count)
    patient_of = {row.id: patient_id for row, patient_id in pairs}
    contents_by_plan: dict[uuid.UUID, Any] = {}
    resources = []
    for row in page:
        patient_id = patient_of[row.id]
        acc = accesses.get(patient_id) or access.patient_for(session, by, patient_id)
        accesses[patient_id] = acc
        record(
            session,
            by=by,
            action="search",
            object_type=kind,
            object_id=row.id,
            patient_id=patient_id,
        )
        if kind == "CareTeam":
            resources.append(_team_resource(session, row, acc))
        elif kind == "CarePlan":
            resources.append(_plan_resource(session, row, acc))
        else:
            if row.plan_id not in contents_by_plan:
                plan = session.get(CarePlan, row.plan_id)
                assert plan is not None
                contents_by_plan[row.plan_id] = plans.load_contents(session, plan)
            resources.append(_goal_resource(session, row, acc, contents_by_plan[row.plan_id]))
    return SearchPage(resources, next_cursor)


def _search_patients(
    session: Session,
    by: User,
    criteria: dict[str, str],
    count: int,
    cursor: uuid.UUID | None,
    base: str,
) -> SearchPage:
    if not _clinical_reader(by):
        return SearchPage([], None)
    query = access.readable_patients(by)
    if "_id" in criteria:
        ids = []
        for value in criteria["_id"].split(","):
            try:
                ids.append(uuid.UUID(value.strip()))
            except ValueError:
                continue
        query = query.where(Patient.id.in_(ids))
    org = _org(session, by)
    system = mrn_system(base, org)
    if "identifier" in criteria:
        value = criteria["identifier"]
        if "|" in value:
            wanted_system, value = value.split("|", 1)
            if wanted_system and wanted_system != system:
                return SearchPage([], None)
        query = query.where(Patient.mrn == value)
    if cursor is not None:
        query = query.where(Patient.id > cursor)
    rows = list(session.scalars(query.order_by(Patient.id).limit(count + 1)))
    rows, next_cursor = _page(rows, count)
    for patient in rows:
        record(
            session,
            by=by,
            action="search",
            object_type="Patient",
            object_id=patient.id,
            patient_id=patient.id,
        )
    return SearchPage([mapping.patient_resource(p, system) for p in rows], next_cursor)


# --- questionnaires, responses, scores ----------------------------------------------------------


def _instrument_or_missing(code: str) -> Any:
    from concord.measures.library import library

    instrument = library().get(code)
    if instrument is None or not instrument.usable:
        raise NotFound(Msg("No such resource."))
    return instrument


def read_questionnaire(code: str) -> dict[str, Any]:
    if code.startswith("decision-aid-"):
        from concord.decisions.aids import get_aid
        from concord.fhir.decisions import questionnaire

        aid = get_aid(code.removeprefix("decision-aid-"))
        if aid is None:
            raise NotFound(Msg("No such resource."))
        return questionnaire(aid)
    from concord.fhir.measures import questionnaire_resource

    return questionnaire_resource(_instrument_or_missing(code))


def search_questionnaires(params: Mapping[str, str]) -> SearchPage:
    from concord.fhir.measures import _instrument_for, questionnaire_resource
    from concord.measures.library import library

    criteria, count, _ = _parse_params("Questionnaire", params)
    found = [i for i in library().all() if i.usable]
    if "_id" in criteria:
        found = [i for i in found if i.code in criteria["_id"].split(",")]
    if "url" in criteria:
        wanted = _instrument_for(criteria["url"], library())
        found = [i for i in found if wanted is not None and i.code == wanted.code]
    if "code" in criteria:
        code = criteria["code"].split("|")[-1]
        found = [i for i in found if i.loinc_panel == code]
    return SearchPage([questionnaire_resource(i) for i in found[:count]], None)


def _response_access(session: Session, by: User, response: Any) -> PatientAccess:
    return _owner_access(session, by, response.patient_id, "QuestionnaireResponse")


def read_questionnaire_response(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    from concord.fhir.measures import response_resource
    from concord.measures.library import library
    from concord.measures.models import MeasureResponse

    if ident.startswith("decision-"):
        return read_decision(session, by=by, ident=ident)
    response = _get(session, MeasureResponse, ident)
    if response is None:
        record(
            session,
            by=by,
            action="read",
            object_type="QuestionnaireResponse",
            object_id=ident[:64],
            outcome=Outcome.denied,
        )
        raise NotFound(Msg("No such resource."))
    acc = _response_access(session, by, response)
    record(
        session,
        by=by,
        action="read",
        object_type="QuestionnaireResponse",
        object_id=response.id,
        patient_id=acc.patient.id,
    )
    return response_resource(response, library().get(response.instrument), acc.patient)


def read_decision(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    """A decision made together, as a QuestionnaireResponse (clinicians on the team, the
    patient, a person the patient chose; nobody else learns it exists)."""
    from concord.decisions.models import Decision
    from concord.fhir.decisions import response

    decision = _get(session, Decision, ident.removeprefix("decision-"))
    acc = None
    if decision is not None:
        try:
            acc = access.patient_for(session, by, decision.patient_id, object_type="Decision")
        except NotFound:
            acc = None
    if decision is None or acc is None:  # whom patient_for lets in may read it
        record(
            session,
            by=by,
            action="read",
            object_type="Decision",
            object_id=ident[:64],
            outcome=Outcome.denied,
        )
        raise NotFound(Msg("No such resource."))
    record(
        session,
        by=by,
        action="read",
        object_type="Decision",
        object_id=decision.id,
        patient_id=acc.patient.id,
    )
    from concord.careplans.models import Intervention

    item = session.get(Intervention, decision.intervention_id) if decision.intervention_id else None
    return response(decision, item.plan_id if item else None)


def search_questionnaire_responses(
    session: Session, *, by: User, params: Mapping[str, str]
) -> SearchPage:
    from concord.fhir.measures import _instrument_for, response_resource
    from concord.measures.library import library
    from concord.measures.models import MeasureResponse, ResponseStatus

    criteria, count, cursor_raw = _parse_params("QuestionnaireResponse", params)
    cursor = _cursor(cursor_raw)
    scope = _scope(session, by, _subject(criteria))
    if scope == [] or not _clinical_reader(by):
        return SearchPage([], None)
    query = select(MeasureResponse).where(MeasureResponse.status == ResponseStatus.completed)
    if scope is None:
        query = query.where(MeasureResponse.patient_id.in_(_readable_ids(by)))
    else:
        query = query.where(MeasureResponse.patient_id == scope[0].patient.id)
    if "questionnaire" in criteria:
        wanted = _instrument_for(criteria["questionnaire"], library())
        if wanted is None:
            return SearchPage([], None)
        query = query.where(MeasureResponse.instrument == wanted.code)
    if "identifier" in criteria:
        system, _, value = criteria["identifier"].rpartition("|")
        query = query.where(MeasureResponse.client_identifier == value)
        if system:
            query = query.where(MeasureResponse.client_system == system)
    if cursor is not None:
        query = query.where(MeasureResponse.id > cursor)
    rows = list(session.scalars(query.order_by(MeasureResponse.id).limit(count + 1)))
    rows, next_cursor = _page(rows, count)
    resources = []
    patients: dict[uuid.UUID, Patient] = {}
    for row in rows:
        patient = patients.get(row.patient_id) or session.get(Patient, row.patient_id)
        assert patient is not None
        patients[row.patient_id] = patient
        record(
            session,
            by=by,
            action="search",
            object_type="QuestionnaireResponse",
            object_id=row.id,
            patient_id=row.patient_id,
        )
        resources.append(response_resource(row, library().get(row.instrument), patient))
    return SearchPage(resources, next_cursor)


def read_observation(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    from concord.fhir.measures import item_observations, score_observation
    from concord.measures.library import library
    from concord.measures.models import MeasureObservation, MeasureResponse

    if "." in ident:  # an item of a response: <response id>.<item id>
        response = _get(session, MeasureResponse, ident.split(".", 1)[0])
        if response is not None:
            acc = _response_access(session, by, response)
            instrument = library().get(response.instrument)
            for resource in (
                item_observations(response, instrument, acc.patient) if instrument else []
            ):
                if resource["id"] == ident:
                    record(
                        session,
                        by=by,
                        action="read",
                        object_type="Observation",
                        object_id=ident[:64],
                        patient_id=acc.patient.id,
                    )
                    return resource
        raise NotFound(Msg("No such resource."))
    observation = _get(session, MeasureObservation, ident)
    if observation is None:
        raise NotFound(Msg("No such resource."))
    acc = _owner_access(session, by, observation.patient_id, "Observation")
    record(
        session,
        by=by,
        action="read",
        object_type="Observation",
        object_id=observation.id,
        patient_id=acc.patient.id,
    )
    return score_observation(observation, library().get(observation.instrument), acc.patient)


def search_observations(session: Session, *, by: User, params: Mapping[str, str]) -> SearchPage:
    """Scores, newest first; `derived-from` also returns the response's item observations."""
    from concord.fhir.measures import item_observations, score_observation
    from concord.measures.library import library
    from concord.measures.models import MeasureObservation, MeasureResponse

    criteria, count, cursor_raw = _parse_params("Observation", params)
    scope = _scope(session, by, _subject(criteria))
    if scope == [] or not _clinical_reader(by):
        return SearchPage([], None)
    query = select(MeasureObservation)
    if scope is None:
        query = query.where(MeasureObservation.patient_id.in_(_readable_ids(by)))
    else:
        query = query.where(MeasureObservation.patient_id == scope[0].patient.id)
    if "code" in criteria:
        codes = [c.split("|")[-1] for c in criteria["code"].split(",")]
        query = query.where(MeasureObservation.code.in_(codes))
    extra: list[dict[str, Any]] = []
    if "derived-from" in criteria:
        reference = criteria["derived-from"].rsplit("QuestionnaireResponse/", 1)[-1]
        response = _get(session, MeasureResponse, reference)
        if response is None:
            return SearchPage([], None)
        acc = _response_access(session, by, response)
        query = query.where(MeasureObservation.response_id == response.id)
        instrument = library().get(response.instrument)
        if instrument is not None:
            extra = item_observations(response, instrument, acc.patient)
            if "code" in criteria:
                extra = [o for o in extra if o["code"]["coding"][0]["code"] in codes]
    if cursor_raw:
        try:
            stamp, _, last_id = cursor_raw.partition("_")
            when = datetime.fromisoformat(stamp)
            query = query.where(
                or_(
                    MeasureObservation.effective_at < when,
                    and_(
                        MeasureObservation.effective_at == when,
                        MeasureObservation.id < uuid.UUID(last_id),
                    ),
                )
            )
        except ValueError:
            raise InvalidInput.field(
                "_cursor", Msg("is not a cursor this server gave out")
            ) from None
        extra = []
    rows = list(
        session.scalars(
            query.order_by(
                MeasureObservation.effective_at.desc(), MeasureObservation.id.desc()
            ).limit(count + 1)
        )
    )
    next_cursor = None
    if len(rows) > count:
        rows = rows[:count]
        last = rows[-1]
        next_cursor = f"{last.effective_at.isoformat()}_{last.id}"
    patients: dict[uuid.UUID, Patient] = {}
    resources = []
    for row in rows:
        patient = patients.get(row.patient_id) or session.get(Patient, row.patient_id)
        assert patient is not None
        patients[row.patient_id] = patient
        record(
            session,
            by=by,
            action="search",
            object_type="Observation",
            object_id=row.id,
            patient_id=row.patient_id,
        )
        resources.append(score_observation(row, library().get(row.instrument), patient))
    return SearchPage(resources + extra, next_cursor)


def submit_questionnaire_response(
    session: Session,
    *,
    by: User,
    body: Any,
    body_hash: str | None = None,
    if_none_exist: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Accept a completed response from another system; (resource, what happened): "created",
    "amended" (status amended: a new version of the response under the same identifier),
    "replayed" (the same request again) or "exists" (If-None-Exist matched one). The same
    identifier with different content is refused (409) unless it says it amends."""
    from concord.fhir.measures import parse_response, response_resource
    from concord.measures import service as measures
    from concord.measures.library import library

    intake = parse_response(body, library())
    try:
        acc = access.patient_for(
            session, by, intake.patient_id, action="create", object_type="QuestionnaireResponse"
        )
    except NotFound:
        raise InvalidInput.field("subject", Msg("is not a patient you can record for")) from None
    if if_none_exist is not None:
        existing = _conditional_match(session, acc, if_none_exist)
        if existing is not None:
            record(
                session,
                by=by,
                action="read",
                object_type="QuestionnaireResponse",
                object_id=existing.id,
                patient_id=acc.patient.id,
            )
            instrument = library().get(existing.instrument)
            return response_resource(existing, instrument, acc.patient), "exists"
    system, value = intake.identifier or (None, None)
    completed = measures.record_response(
        session,
        access=acc,
        instrument_code=intake.instrument.code,
        submission=measures.Submission(
            answers=intake.answers,
            mode=measures.Mode.external,
            language=intake.language,
            completed_at=intake.authored,
            client_system=system,
            client_identifier=value,
            content_hash=body_hash,
            amends=intake.amends,
        ),
        field_prefix="item.",
    )
    outcome = "replayed" if completed.duplicate else "amended" if completed.amended else "created"
    return response_resource(completed.response, intake.instrument, acc.patient), outcome


def _conditional_match(session: Session, acc: PatientAccess, criteria: str) -> Any:
    """The current response an If-None-Exist header names, for the body's patient. Only
    `identifier` ([system]|value, or a value in any system) is supported; anything else is
    refused, never ignored (a create that ignored it would store a duplicate)."""
    from urllib.parse import parse_qsl

    from concord.measures.models import MeasureResponse, ResponseStatus

    field = "If-None-Exist"
    try:
        pairs = parse_qsl(criteria.lstrip("?"), keep_blank_values=True, strict_parsing=True)
    except ValueError:
        pairs = []
    if len(pairs) != 1 or pairs[0][0] != "identifier" or not pairs[0][1].strip("|"):
        raise InvalidInput.field(
            field, Msg("only identifier=[system]|value is supported on create")
        )
    raw = pairs[0][1]
    query = select(MeasureResponse).where(
        MeasureResponse.patient_id == acc.patient.id,
        MeasureResponse.status == ResponseStatus.completed,
    )
    if "|" in raw:
        system, value = raw.split("|", 1)
        query = query.where(
            MeasureResponse.client_identifier == value,
            MeasureResponse.client_system == system
            if system
            else MeasureResponse.client_system.is_(None),
        )
    else:
        query = query.where(MeasureResponse.client_identifier == raw)
    matches = list(session.scalars(query.limit(2)))
    if len(matches) > 1:
        raise Conflict(
            Msg("If-None-Exist matches more than one response; name the identifier's system.")
        )
    return matches[0] if matches else None


def search_safety(
    session: Session, *, by: User, kind: str, params: Mapping[str, str]
) -> SearchPage:
    """Task (safety alerts) and Flag (risk status): the care team's only."""
    from concord.fhir.safety import search_flags, search_tasks

    criteria, count, cursor = _parse_params(kind, params)
    search = search_tasks if kind == "Task" else search_flags
    resources, next_cursor = search(session, by=by, criteria=criteria, count=count, cursor=cursor)
    return SearchPage(resources, next_cursor)
