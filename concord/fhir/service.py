"""FHIR reads and searches, behind the same access rules and audit as the pages."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, false, func, or_, select
from sqlalchemy.orm import Session

from concord import access, disclosure
from concord.access import PatientAccess
from concord.accounts.models import CLINICAL_ROLES, Organization, Role, User
from concord.actions import checkin
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.careplans import service as plans
from concord.careplans.models import CarePlan, Goal, PlanRevision, PlanStatus
from concord.categories import DataCategory
from concord.errors import Conflict, InvalidInput, NotFound
from concord.fhir import mapping
from concord.fhir.mapping import GOAL_LIFECYCLE
from concord.fhir.search import (
    Canonical,
    Query,
    Token,
    allowed_codes,
    codings_match,
    token_filter,
)
from concord.i18n import Msg
from concord.patients.models import CareTeam, Patient
from concord.patients.service import current_members


@dataclass
class SearchPage:
    resources: list[dict[str, Any]]
    next_cursor: str | None
    total: int


def mrn_system(template: str, org: Organization) -> str:
    """The MRN's identifier system: the CONCORD_FHIR_MRN_SYSTEM setting, `{organization}`
    replaced by the organization's short name (never the server's address, which changes)."""
    return template.replace("{organization}", org.slug)


def _org(session: Session, by: User) -> Organization:
    org = session.get(Organization, by.organization_id)
    assert org is not None
    return org


def _cursor(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput.field("_cursor", Msg("is not a cursor this server gave out")) from None


def _scope(session: Session, by: User, patient_ids: set[str] | None) -> list[PatientAccess] | None:
    """The patients a search may return: those named (None: all the caller may read). A
    patient outside the caller's scope is left out, exactly like a missing one (audited)."""
    if patient_ids is None:
        return None
    found = []
    for ident in sorted(patient_ids):
        try:
            acc = access.patient_for(session, by, ident, action="search")
        except NotFound:
            continue
        if not acc.can_read_record:
            # Left out, as for a patient outside the caller's scope; the refusal is in the trail.
            access.refuse_record(session, acc, action="search")
            continue
        found.append(acc)
    return found


def _readable_ids(by: User) -> Select[tuple[uuid.UUID]]:
    return access.readable_patients(by).with_only_columns(Patient.id)


def _clinical_reader(by: User) -> bool:
    """FHIR returns whole records: patients (their own) and care teams, not family members."""
    return by.is_clinician or by.is_patient


# --- reads -----------------------------------------------------------------------------------


def read_patient(session: Session, *, by: User, ident: str, mrn: str) -> dict[str, Any]:
    acc = _owner_access(session, by, ident, "Patient")
    return mapping.patient_resource(acc.patient, mrn_system(mrn, _org(session, by)))


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
        author=session.get(User, plan.created_by_id),
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


def read_resource(session: Session, *, by: User, kind: str, ident: str, mrn: str) -> dict[str, Any]:
    if kind == "Patient":
        return read_patient(session, by=by, ident=ident, mrn=mrn)
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

CARE_TEAM_STATUS = "http://hl7.org/fhir/care-team-status"
REQUEST_STATUS = "http://hl7.org/fhir/request-status"
GOAL_STATUS = "http://hl7.org/fhir/goal-status"


def _total(session: Session, query: Select[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.order_by(None).subquery())))


def _keyset(
    session: Session, query: Select[Any], id_col: Any, q: Query
) -> tuple[list[Any], str | None, int]:
    """One page of `query` in id order after the cursor, the next cursor, and the total."""
    total = _total(session, query)
    if q.only_count:
        return [], None, total
    cursor = _cursor(q.cursor)
    if cursor is not None:
        query = query.where(id_col > cursor)
    rows = list(session.execute(query.order_by(id_col).limit(q.count + 1)))
    if len(rows) > q.count:
        rows = rows[: q.count]
        return rows, str(rows[-1][0].id), total
    return rows, None, total


def page_of(items: list[Any], q: Query) -> tuple[list[Any], str | None]:
    """A page of a list built in memory; the cursor is the offset of the next page."""
    start = 0
    if q.cursor is not None:
        if not q.cursor.isdigit() or int(q.cursor) > len(items):
            raise InvalidInput.field("_cursor", Msg("is not a cursor this server gave out"))
        start = int(q.cursor)
    if q.only_count:
        return [], None
    end = start + q.count
    return items[start:end], (str(end) if end < len(items) else None)


def _id_filter(groups: list[list[Token]], id_col: Any) -> list[Any]:
    """`_id` tokens: a plain id each (an id carries no system)."""
    clauses = []
    for group in groups:
        ids = [access.parse_id(t.code) for t in group if t.system is None and t.code]
        clauses.append(id_col.in_([i for i in ids if i is not None]))
    return clauses


def _status_filter(
    groups: list[list[Token]], system: str, ours: Mapping[str, str], col: Any
) -> Any:
    """A status search: `ours` maps each stored value to its FHIR code in `system`."""
    wanted = allowed_codes(groups, system, set(ours.values()))
    if wanted is None:
        return None
    return col.in_([k for k, v in ours.items() if v in wanted])


def search(session: Session, *, by: User, q: Query, mrn: str) -> SearchPage:
    kind = q.kind
    if kind == "Patient":
        return _search_patients(session, by, q, mrn)
    scope = _scope(session, by, q.patient_ids())
    if scope == [] or not _clinical_reader(by):
        return SearchPage([], None, 0)
    accesses: dict[uuid.UUID, PatientAccess] = {a.patient.id: a for a in scope or []}
    if kind == "CareTeam":
        query = select(CareTeam)
        patient_col = CareTeam.patient_id
        # Every care team Concord serves is active.
        wanted = allowed_codes(
            q.groups("status"),
            CARE_TEAM_STATUS,
            {"proposed", "active", "suspended", "inactive", "entered-in-error"},
        )
        if wanted is not None and "active" not in wanted:
            return SearchPage([], None, 0)
    elif kind == "CarePlan":
        query = select(CarePlan)
        patient_col = CarePlan.patient_id
        statuses = {s.value: s.value for s in PlanStatus}
        status = _status_filter(q.groups("status"), REQUEST_STATUS, statuses, CarePlan.status)
        if status is not None:
            query = query.where(status)
    else:
        query = (
            select(Goal)
            .join(CarePlan, CarePlan.id == Goal.plan_id)
            .where(Goal.removed_at.is_(None))
        )
        patient_col = CarePlan.patient_id
        status = _status_filter(
            q.groups("lifecycle-status"), GOAL_STATUS, GOAL_LIFECYCLE, Goal.status
        )
        if status is not None:
            query = query.where(status)
    if scope is None:
        query = query.where(patient_col.in_(_readable_ids(by)))
    else:
        query = query.where(patient_col.in_(list(accesses)))
    model = {"CareTeam": CareTeam, "CarePlan": CarePlan, "Goal": Goal}[kind]
    pairs, next_cursor, total = _keyset(session, query.add_columns(patient_col), model.id, q)
    contents_by_plan: dict[uuid.UUID, Any] = {}
    resources = []
    for row, patient_id in pairs:
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
    return SearchPage(resources, next_cursor, total)


def _search_patients(session: Session, by: User, q: Query, mrn: str) -> SearchPage:
    if not _clinical_reader(by):
        return SearchPage([], None, 0)
    query = access.readable_patients(by)
    for clause in _id_filter(q.groups("_id"), Patient.id):
        query = query.where(clause)
    org = _org(session, by)
    system = mrn_system(mrn, org)
    # Every patient has one identifier, the MRN, always with this system.
    for group in q.groups("identifier"):
        query = query.where(or_(*(t.fixed_system_clause(system, Patient.mrn) for t in group)))
    rows, next_cursor, total = _keyset(session, query, Patient.id, q)
    patients = [row[0] for row in rows]
    for patient in patients:
        record(
            session,
            by=by,
            action="search",
            object_type="Patient",
            object_id=patient.id,
            patient_id=patient.id,
        )
    return SearchPage([mapping.patient_resource(p, system) for p in patients], next_cursor, total)


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


def _all_questionnaires() -> list[dict[str, Any]]:
    """Every Questionnaire a read answers: the instruments in use and the decision aids."""
    from concord.decisions.aids import all_aids
    from concord.fhir.decisions import questionnaire
    from concord.fhir.measures import questionnaire_resource
    from concord.measures.library import library

    found = [questionnaire_resource(i) for i in library().all() if i.usable]
    found += [questionnaire(aid) for _, aid in sorted(all_aids().items())]
    return found


def _canonical_matches(group: list[Canonical], resource: dict[str, Any]) -> bool:
    """`url` or `url|version` of the questionnaire; a LOINC panel's questionnaire URL
    (derivedFrom, http://loinc.org/q/...) names it too, without a version of Concord's."""
    return any(
        (c.url == resource["url"] and c.version in (None, resource.get("version")))
        or (c.version is None and c.url in resource.get("derivedFrom", []))
        for c in group
    )


def search_questionnaires(q: Query) -> SearchPage:
    found = _all_questionnaires()
    for group in q.groups("_id"):
        found = [r for r in found if any(t.system is None and t.code == r["id"] for t in group)]
    for group in q.groups("url"):
        found = [r for r in found if _canonical_matches(group, r)]
    if q.has("code"):
        found = [r for r in found if codings_match(q.groups("code"), r.get("code", []))]
    page, next_cursor = page_of(found, q)
    return SearchPage(page, next_cursor, len(found))


def _response_access(session: Session, by: User, response: Any) -> PatientAccess:
    acc = _owner_access(session, by, response.patient_id, "QuestionnaireResponse")
    # Its instrument's data category, decided as the domain service decides it.
    disclosure.check_record(
        session,
        acc,
        response,
        object_type="QuestionnaireResponse",
        message=Msg("No such resource."),
    )
    return acc


# A record of a 42 CFR Part 2 program (ADR 0021): the law (v3-ActCode 42CFRPart2), the
# obligation not to redisclose without consent (NORDSCLCD), and the confidentiality R.
PART2_SECURITY = (
    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2"},
    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NORDSCLCD"},
    {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"},
)


def _labelled(session: Session, row: Any, resource: dict[str, Any]) -> dict[str, Any]:
    """The resource with its Part 2 security labels when the record carries the label (the
    patient's labels context is loaded once per request)."""
    from concord.part2 import labels

    patient = session.get(Patient, row.patient_id)
    if patient is None:
        return resource
    ctx = labels.context(session, patient.organization_id, [row.patient_id])
    if labels.labels_of(row, ctx, row.patient_id).part2:
        security = resource.setdefault("meta", {}).setdefault("security", [])
        security.extend(dict(c) for c in PART2_SECURITY if c not in security)
    return resource


def _disclosed(
    session: Session, by: User, query: Select[Any], column: Any, object_type: str
) -> Select[Any]:
    """`query` less the rows whose instrument's category may not be disclosed to `by` (the
    same decision as measures.list_responses), before paging and Bundle.total; a search that
    withholds rows is counted in the trail (that count is the only extra query, and only
    when something is withheld)."""
    from concord.measures.library import library
    from concord.measures.service import disclosed_instruments

    permitted = disclosure.permitted_to(by)
    codes = disclosed_instruments(permitted)
    # Per patient (consent, 42 CFR Part 2): the patients of the search whose records of a
    # category are withheld, loaded once for all of them (ADR 0021).
    model = column.class_
    patients = list(session.scalars(query.with_only_columns(model.patient_id).distinct()))
    withheld_patients, forced = disclosure.withheld_for_search(
        session, by, patients, sorted(permitted)
    )
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
    if forced:
        response = model.response_id if hasattr(model, "response_id") else model.id
        # A record corrected to Part 2 goes only where Part 2 records of its patient go.
        part2_denied = sorted(withheld_patients.get(DataCategory.substance_use, set(patients)))
        allowed = and_(
            allowed,
            or_(response.not_in(sorted(forced)), model.patient_id.not_in(part2_denied)),
        )
    some = forced or any(withheld_patients.values())
    if some or len(codes) < len(library().instruments):
        withheld = _total(session, query.where(~allowed))
        if withheld:
            disclosure.audit_withheld_search(session, by, withheld, object_type=object_type)
    return query.where(allowed)


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
    return _labelled(
        session,
        response,
        response_resource(response, library().get(response.instrument), acc.patient),
    )


def read_decision(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    """A decision made together, as a QuestionnaireResponse (clinicians on the team and the
    patient; nobody else learns it exists)."""
    from concord.decisions.models import Decision
    from concord.fhir.decisions import response

    decision = _get(session, Decision, ident.removeprefix("decision-"))
    acc = None
    if decision is not None:
        try:
            # The patient's record, as on the pages (not a family member's shared plan).
            acc = access.record_access(session, by, decision.patient_id, object_type="Decision")
        except NotFound:
            acc = None
    if decision is None or acc is None:
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


def _questionnaire_clause(base: str, c: Canonical) -> Any:
    """A QuestionnaireResponse.questionnaire search value: Concord's canonical, a LOINC panel's
    (http://loinc.org/q/...) or Questionnaire/<id>; `|version` must match the version answered."""
    from concord.fhir.measures import _instrument_for
    from concord.measures.library import library
    from concord.measures.models import MeasureResponse

    url = c.url.removeprefix(base.rstrip("/") + "/")
    instrument = _instrument_for(url, library())
    if instrument is None:
        return false()
    clause = MeasureResponse.instrument == instrument.code
    if c.version is not None:
        clause = and_(clause, MeasureResponse.instrument_version == c.version)
    return clause


def search_questionnaire_responses(
    session: Session, *, by: User, q: Query, base: str
) -> SearchPage:
    from concord.fhir.measures import response_resource
    from concord.measures.library import library
    from concord.measures.models import MeasureResponse, ResponseStatus

    scope = _scope(session, by, q.patient_ids())
    if scope == [] or not _clinical_reader(by):
        return SearchPage([], None, 0)
    query = select(MeasureResponse).where(MeasureResponse.status == ResponseStatus.completed)
    if scope is None:
        query = query.where(MeasureResponse.patient_id.in_(_readable_ids(by)))
    else:
        query = query.where(MeasureResponse.patient_id.in_([a.patient.id for a in scope]))
    for group in q.groups("questionnaire"):
        query = query.where(or_(*(_questionnaire_clause(base, c) for c in group)))
    for clause in token_filter(
        q.groups("identifier"), MeasureResponse.client_system, MeasureResponse.client_identifier
    ):
        query = query.where(clause)
    query = _disclosed(session, by, query, MeasureResponse.instrument, "QuestionnaireResponse")
    rows, next_cursor, total = _keyset(session, query, MeasureResponse.id, q)
    resources = []
    patients: dict[uuid.UUID, Patient] = {}
    for (row,) in rows:
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
        resources.append(
            _labelled(session, row, response_resource(row, library().get(row.instrument), patient))
        )
    return SearchPage(resources, next_cursor, total)


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
    disclosure.check_record(
        session, acc, observation, object_type="Observation", message=Msg("No such resource.")
    )
    record(
        session,
        by=by,
        action="read",
        object_type="Observation",
        object_id=observation.id,
        patient_id=acc.patient.id,
    )
    return _labelled(
        session,
        observation,
        score_observation(observation, library().get(observation.instrument), acc.patient),
    )


def _observations_derived_from(
    session: Session, by: User, q: Query, scope: list[PatientAccess] | None
) -> SearchPage:
    """Observations derived from named responses: each response's scores and, for the items
    LOINC codes, an Observation per answer; built in memory (a response has a few dozen)."""
    from concord.fhir.measures import item_observations, score_observation
    from concord.measures.library import library
    from concord.measures.models import MeasureObservation, MeasureResponse

    ids = q.ids("derived-from", target="QuestionnaireResponse") or set()
    wanted = {a.patient.id for a in scope} if scope is not None else None
    found: list[dict[str, Any]] = []
    for ident in sorted(ids):
        response = _get(session, MeasureResponse, ident)
        if response is None or (wanted is not None and response.patient_id not in wanted):
            continue
        try:
            acc = _response_access(session, by, response)
        except NotFound:
            continue
        instrument = library().get(response.instrument)
        scores = session.scalars(
            select(MeasureObservation)
            .where(MeasureObservation.response_id == response.id)
            .order_by(MeasureObservation.id)
        )
        found += [score_observation(o, instrument, acc.patient) for o in scores]
        if instrument is not None:
            found += item_observations(response, instrument, acc.patient)
    found = [r for r in found if codings_match(q.groups("code"), r["code"]["coding"])]
    page, next_cursor = page_of(found, q)
    for resource in page:
        record(
            session,
            by=by,
            action="search",
            object_type="Observation",
            object_id=resource["id"][:64],
            patient_id=uuid.UUID(resource["subject"]["reference"].removeprefix("Patient/")),
        )
    return SearchPage(page, next_cursor, len(found))


def search_observations(session: Session, *, by: User, q: Query) -> SearchPage:
    """Scores, newest first; `derived-from` also returns the response's item observations."""
    from concord.fhir.measures import score_observation
    from concord.measures.library import library
    from concord.measures.models import MeasureObservation

    scope = _scope(session, by, q.patient_ids())
    if scope == [] or not _clinical_reader(by):
        return SearchPage([], None, 0)
    if q.has("derived-from"):
        return _observations_derived_from(session, by, q, scope)
    query = select(MeasureObservation)
    if scope is None:
        query = query.where(MeasureObservation.patient_id.in_(_readable_ids(by)))
    else:
        query = query.where(MeasureObservation.patient_id.in_([a.patient.id for a in scope]))
    for clause in token_filter(
        q.groups("code"), MeasureObservation.code_system, MeasureObservation.code
    ):
        query = query.where(clause)
    query = _disclosed(session, by, query, MeasureObservation.instrument, "Observation")
    total = _total(session, query)
    if q.only_count:
        return SearchPage([], None, total)
    if q.cursor:
        try:
            stamp, _, last_id = q.cursor.partition("_")
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
    rows = list(
        session.scalars(
            query.order_by(
                MeasureObservation.effective_at.desc(), MeasureObservation.id.desc()
            ).limit(q.count + 1)
        )
    )
    next_cursor = None
    if len(rows) > q.count:
        rows = rows[: q.count]
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
        resources.append(
            _labelled(session, row, score_observation(row, library().get(row.instrument), patient))
        )
    return SearchPage(resources, next_cursor, total)


def submit_questionnaire_response(
    session: Session,
    *,
    by: User,
    body: Any,
    body_hash: str | None = None,
    if_none_exist: str | None = None,
    issues: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], str]:
    """Accept a completed response from another system; (resource, what happened): "created",
    "amended" (status amended: a new version of the response under the same identifier),
    "replayed" (the same request again) or "exists" (If-None-Exist matched one). The same
    identifier with different content is refused (409) unless it says it amends. What the
    sender should know about it (not scored, and why) is appended to `issues` as
    OperationOutcome issues."""
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
    completed = checkin.record_response(
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
    if issues is not None:
        issues.extend(scoring_issues(intake.instrument, completed.scored))
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


def scoring_issues(instrument: Any, scored: Any) -> list[dict[str, Any]]:
    """OperationOutcome warnings for a stored response that has no score, or a prorated one:
    a sender must never read silence as a score."""
    if not instrument.scores:
        return [
            {
                "severity": "warning",
                "code": "informational",
                "diagnostics": (
                    f"Stored, not scored: {instrument.code} has no score; it is read from its "
                    "answers (and any alert they raise)."
                ),
            }
        ]
    found = []
    for score in instrument.scores:
        result = scored.scores.get(score.id)
        if result is None:
            continue
        if result.value is None:
            found.append(
                {
                    "severity": "warning",
                    "code": "incomplete",
                    "diagnostics": f"Stored, not scored ({score.id}): {result.reason}",
                    "expression": [
                        f"QuestionnaireResponse.item.where(linkId='{i}')" for i in result.missing
                    ],
                }
            )
        elif result.prorated:
            found.append(
                {
                    "severity": "warning",
                    "code": "informational",
                    "diagnostics": (
                        f"Score {score.id} prorated from the answered questions, as the "
                        f"scoring rule allows; unanswered: {', '.join(result.missing)}"
                    ),
                }
            )
    return found


def search_safety(session: Session, *, by: User, q: Query) -> SearchPage:
    """Task (safety alerts and the registry's tasks) and Flag (risk status): the care team's
    only."""
    from concord.fhir.safety import search_flags, search_tasks

    search = search_tasks if q.kind == "Task" else search_flags
    resources, next_cursor, total = search(session, by=by, q=q)
    return SearchPage(resources, next_cursor, total)
