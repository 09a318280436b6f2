"""FHIR reads and searches: parse the search, ask the owning domain's service (which applies
the access rules and writes the audit trail, as for the pages), map what it returns to
resources. No query is run here (tests/test_read_path.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from concord import access, dates
from concord.access import PatientAccess
from concord.accounts.models import Organization, User
from concord.accounts.organizations import organization_of
from concord.accounts.users import get_colleague
from concord.actions import checkin
from concord.careplans import service as plans
from concord.careplans.history import SECTIONS as PLAN_SECTIONS
from concord.careplans.models import GoalCategory, PlanStatus
from concord.decisions import service as decisions
from concord.decisions.aids import all_aids, get_aid
from concord.ehr import service as ehr
from concord.errors import Conflict, InvalidInput, NotFound, NotSupported
from concord.fhir import mapping
from concord.fhir import provenance as fhir_provenance
from concord.fhir import social as fhir_social
from concord.fhir.decisions import questionnaire, response
from concord.fhir.mapping import CAREPLAN_CATEGORY, GOAL_CATEGORY, GOAL_LIFECYCLE
from concord.fhir.measures import (
    _instrument_for,
    item_observations,
    parse_response,
    questionnaire_resource,
    response_resource,
    score_observation,
)
from concord.fhir.safety import search_flags, search_tasks
from concord.fhir.search import (
    Canonical,
    Query,
    Ref,
    Token,
    allowed_codes,
    codings_match,
    offset_of,
    page_of,
)
from concord.i18n import Msg
from concord.measures import service as measures
from concord.measures.library import library
from concord.paging import Page
from concord.part2 import labels as part2_labels
from concord.patients import service as patients
from concord.social import service as social_needs


@dataclass
class SearchPage:
    resources: list[dict[str, Any]]
    next_cursor: str | None
    total: int


def mrn_system(template: str, org: Organization) -> str:
    """The MRN's identifier system: the CONCORD_FHIR_MRN_SYSTEM setting, `{organization}`
    replaced by the organization's short name (never the server's address, which changes)."""
    return template.replace("{organization}", org.slug)


@contextmanager
def missing() -> Iterator[None]:
    """A domain's NotFound as FHIR says it (see _as_missing), for the doors' writes."""
    with _as_missing():
        yield


@contextmanager
def _as_missing() -> Iterator[None]:
    """A domain's NotFound (a missing row, or one outside the caller's scope: the same answer,
    audited there) as FHIR says it, word for word the same for every resource."""
    try:
        yield
    except NotFound:
        raise NotFound(Msg("No such resource.")) from None


def _cursor(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput.field("_cursor", Msg("is not a cursor this server gave out")) from None


def _scope(session: Session, by: User, q: Query) -> list[PatientAccess] | None:
    """The patients a search may return: those named (None: all the caller may read). A
    patient outside the caller's scope is left out, exactly like a missing one (audited)."""
    return access.records_among(session, by, q.patient_ids())


def _clinical_reader(by: User) -> bool:
    """FHIR returns whole records: patients (their own) and care teams, not family members."""
    return by.is_clinician or by.is_patient


def _page(
    page: Page[Any], resource: Callable[[Any], dict[str, Any]], key: Callable[[Any], Any]
) -> SearchPage:
    """A keyset page as FHIR returns it; the cursor is the key of the last row returned."""
    next_cursor = str(key(page.rows[-1])) if page.more and page.rows else None
    return SearchPage([resource(row) for row in page.rows], next_cursor, page.total)


# --- reads -----------------------------------------------------------------------------------


def read_patient(session: Session, *, by: User, ident: str, mrn: str) -> dict[str, Any]:
    with _as_missing():
        acc = access.record_access(session, by, ident, object_type="Patient")
    return mapping.patient_resource(acc.patient, mrn_system(mrn, organization_of(session, by)))


def _plan_resource(session: Session, record: plans.PlanRecord) -> dict[str, Any]:
    return mapping.care_plan_resource(
        record.plan,
        record.access.patient,
        record.team,
        record.contents,
        record.latest,
        decisions.decisions_for_plan(session, record.plan.id),
        author=record.author,
        labelled=_labelled_items(session, record.access.patient, record.contents),
    )


def _goal_resource(
    session: Session, goal: Any, acc: PatientAccess, contents: Any
) -> dict[str, Any]:
    # Goal.addresses names the social need only for a reader who may see it (its Condition).
    need = goal.social_concern_id
    shown = social_needs.concerns_shown(session, access=acc, ids=[need]) if need else set()
    return mapping.goal_resource(
        goal,
        acc.patient,
        contents,
        labelled=_labelled_items(session, acc.patient, contents)
        | _labelled_goal(session, goal, acc),
        addresses=need if need in shown else None,
    )


def _labelled_goal(session: Session, goal: Any, acc: PatientAccess) -> set[uuid.UUID]:
    ctx = part2_labels.context(session, acc.patient.organization_id, [acc.patient.id])
    return {goal.id} if part2_labels.labels_of(goal, ctx, acc.patient.id).part2 else set()


def read_resource(session: Session, *, by: User, kind: str, ident: str, mrn: str) -> dict[str, Any]:
    if kind == "Patient":
        return read_patient(session, by=by, ident=ident, mrn=mrn)
    if kind == "Practitioner":
        user = get_colleague(session, by=by, user_id=ident)
        if user is None or not _clinical_reader(by):
            raise NotFound(Msg("No such resource."))
        return mapping.practitioner_resource(user)
    with _as_missing():
        if kind == "CareTeam":
            team, acc, members = patients.get_care_team_by_id(session, by=by, ident=ident)
            return mapping.care_team_resource(team, acc.patient, members)
        if kind == "CarePlan":
            return _plan_resource(session, plans.get_plan_record(session, by=by, ident=ident))
        goal, acc, contents = plans.get_goal(session, by=by, ident=ident)
        return _goal_resource(session, goal, acc, contents)


# --- searches --------------------------------------------------------------------------------

CARE_TEAM_STATUS = "http://hl7.org/fhir/care-team-status"
REQUEST_STATUS = "http://hl7.org/fhir/request-status"
GOAL_STATUS = "http://hl7.org/fhir/goal-status"


def _statuses(groups: list[list[Token]], system: str, ours: Mapping[str, str]) -> list[str] | None:
    """A status search: the stored values (`ours` maps each to its FHIR code in `system`)."""
    wanted = allowed_codes(groups, system, set(ours.values()))
    if wanted is None:
        return None
    return [k for k, v in ours.items() if v in wanted]


def search(session: Session, *, by: User, q: Query, mrn: str) -> SearchPage:
    kind = q.kind
    if kind == "Patient":
        return _search_patients(session, by, q, mrn)
    scope = _scope(session, by, q)
    if scope == [] or not _clinical_reader(by):
        return SearchPage([], None, 0)
    paging = {"after": _cursor(q.cursor), "limit": q.count, "only_count": q.only_count}
    if kind == "CareTeam":
        # Every care team Concord serves is active.
        wanted = allowed_codes(
            q.groups("status"),
            CARE_TEAM_STATUS,
            {"proposed", "active", "suspended", "inactive", "entered-in-error"},
        )
        if wanted is not None and "active" not in wanted:
            return SearchPage([], None, 0)
        teams = patients.list_care_teams(session, by=by, scope=scope, **paging)
        return _page(
            teams,
            lambda r: mapping.care_team_resource(r[0], r[1].patient, r[2]),
            lambda r: r[0].id,
        )
    if kind == "CarePlan":
        # Every plan is a US Core assess-plan (mapping.CAREPLAN_CATEGORY).
        wanted = allowed_codes(q.groups("category"), CAREPLAN_CATEGORY, {"assess-plan"})
        if wanted == set():
            return SearchPage([], None, 0)
        statuses = _statuses(
            q.groups("status"), REQUEST_STATUS, {s.value: s.value for s in PlanStatus}
        )
        found = plans.list_plan_records(session, by=by, scope=scope, statuses=statuses, **paging)
        return _page(found, lambda r: _plan_resource(session, r), lambda r: r.plan.id)
    statuses = _statuses(q.groups("lifecycle-status"), GOAL_STATUS, GOAL_LIFECYCLE)
    categories = allowed_codes(q.groups("category"), GOAL_CATEGORY, {str(c) for c in GoalCategory})
    goals = plans.list_goals(
        session,
        by=by,
        scope=scope,
        statuses=statuses,
        categories=None if categories is None else sorted(categories),
        **paging,
    )
    return _page(goals, lambda r: _goal_resource(session, r[0], r[1], r[2]), lambda r: r[0].id)


def _search_patients(session: Session, by: User, q: Query, mrn: str) -> SearchPage:
    if not _clinical_reader(by):
        return SearchPage([], None, 0)
    system = mrn_system(mrn, organization_of(session, by))
    where = patients.PatientFilter(
        # `_id` tokens: a plain id each (an id carries no system).
        ids=[
            [access.parse_id(t.code) for t in group if t.system is None and t.code]
            for group in q.groups("_id")
        ],
        # Every patient has one identifier, the MRN, always with this system.
        mrns=q.groups("identifier"),
        mrn_system=system,
        names=q.groups("name"),
        family=q.groups("family"),
        given=q.groups("given"),
        genders=q.groups("gender"),
        born=q.groups("birthdate"),
    )
    if q.sort:
        start = offset_of(q)
        found = patients.list_patients(
            session,
            by=by,
            where=where,
            order=q.sort,
            offset=start,
            limit=q.count,
            only_count=q.only_count,
            with_total=q.total,
        )
        return SearchPage(
            [mapping.patient_resource(p, system) for p in found.rows],
            str(start + q.count) if found.more else None,
            found.total,
        )
    found = patients.list_patients(
        session,
        by=by,
        where=where,
        after=_cursor(q.cursor),
        limit=q.count,
        only_count=q.only_count,
    )
    return _page(found, lambda p: mapping.patient_resource(p, system), lambda p: p.id)


# --- questionnaires, responses, scores ----------------------------------------------------------


def _instrument_or_missing(code: str) -> Any:
    instrument = library().get(code)
    if instrument is None or not instrument.usable:
        raise NotFound(Msg("No such resource."))
    return instrument


def read_questionnaire(code: str) -> dict[str, Any]:
    if code.startswith("decision-aid-"):
        aid = get_aid(code.removeprefix("decision-aid-"))
        if aid is None:
            raise NotFound(Msg("No such resource."))
        return questionnaire(aid)

    return questionnaire_resource(_instrument_or_missing(code))


def _all_questionnaires() -> list[dict[str, Any]]:
    """Every Questionnaire a read answers: the instruments in use and the decision aids."""
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


def _labelled(session: Session, row: Any, patient: Any, resource: dict[str, Any]) -> dict[str, Any]:
    """The resource with its Part 2 security labels when the record carries the label (the
    patient's labels context is loaded once per request, by concord.part2.labels)."""
    ctx = part2_labels.context(session, patient.organization_id, [patient.id])
    if part2_labels.labels_of(row, ctx, patient.id).part2:
        mapping.label_part2(resource)
    return resource


def _labelled_items(session: Session, patient: Any, contents: Any) -> set[uuid.UUID]:
    """The ids of a plan's items (those shown) that are 42 CFR Part 2 records."""
    ctx = part2_labels.context(session, patient.organization_id, [patient.id])
    return {
        item.id
        for section in PLAN_SECTIONS
        for item in getattr(contents, section)
        if part2_labels.labels_of(item, ctx, patient.id).part2
    }


def read_questionnaire_response(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    if ident.startswith("decision-"):
        return read_decision(session, by=by, ident=ident)
    with _as_missing():
        response, acc = measures.get_response_by_id(session, by=by, ident=ident)
    return _labelled(
        session,
        response,
        acc.patient,
        response_resource(response, library().get(response.instrument), acc.patient),
    )


def read_decision(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    """A decision made together, as a QuestionnaireResponse (clinicians on the team and the
    patient; nobody else learns it exists)."""
    with _as_missing():
        decision, plan_id = decisions.find_decision(
            session, by=by, ident=ident.removeprefix("decision-")
        )
    return response(decision, plan_id)


def _questionnaire(base: str, c: Canonical) -> tuple[str, str | None] | None:
    """A QuestionnaireResponse.questionnaire search value: Concord's canonical, a LOINC panel's
    (http://loinc.org/q/...) or Questionnaire/<id>; `|version` must match the version answered.
    The instrument and version it names, or None for one Concord does not have."""
    instrument = _instrument_for(c.url.removeprefix(base.rstrip("/") + "/"), library())
    return None if instrument is None else (instrument.code, c.version)


def search_questionnaire_responses(
    session: Session, *, by: User, q: Query, base: str
) -> SearchPage:
    scope = _scope(session, by, q)
    if scope == [] or not _clinical_reader(by):
        return SearchPage([], None, 0)
    found = measures.search_responses(
        session,
        by=by,
        scope=scope,
        questionnaires=[[_questionnaire(base, c) for c in g] for g in q.groups("questionnaire")],
        identifiers=q.groups("identifier"),
        after=_cursor(q.cursor),
        limit=q.count,
        only_count=q.only_count,
    )
    return _page(
        found,
        lambda r: _labelled(
            session, r[0], r[1], response_resource(r[0], library().get(r[0].instrument), r[1])
        ),
        lambda r: r[0].id,
    )


def read_observation(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    """A score or an answer recorded in Concord; else an Observation the clinic's EHR sent
    (under the EHR's id, tagged imported, meta.source naming the client that sent it)."""
    if _cursor_id(ident) is None and "." not in ident:
        return ehr.read_imported(session, by=by, kind="Observation", ident=ident)
    try:
        return _read_own_observation(session, by=by, ident=ident)
    except NotFound:
        return ehr.read_imported(session, by=by, kind="Observation", ident=ident)


def _cursor_id(ident: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(ident)
    except ValueError:
        return None


def _read_own_observation(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    if "." in ident:  # an item of a response: <response id>.<item id>
        found = measures.find_response(session, by=by, ident=ident.split(".", 1)[0])
        if found is None:
            raise NotFound(Msg("No such resource."))
        response, acc = found
        instrument = library().get(response.instrument)
        for resource in item_observations(response, instrument, acc.patient) if instrument else []:
            if resource["id"] == ident:
                measures.record_read(session, acc, "Observation", ident[:64])
                # An answer carries its response's label.
                return _labelled(session, response, acc.patient, resource)
        raise NotFound(Msg("No such resource."))
    with _as_missing():
        observation, acc = measures.get_observation(session, by=by, ident=ident)
    return _labelled(
        session,
        observation,
        acc.patient,
        score_observation(observation, library().get(observation.instrument), acc.patient),
    )


def _observations_derived_from(
    session: Session, by: User, q: Query, scope: list[PatientAccess] | None
) -> SearchPage:
    """Observations derived from named responses: each response's scores and, for the items
    LOINC codes, an Observation per answer; built in memory (a response has a few dozen)."""
    ids = q.ids("derived-from", target="QuestionnaireResponse") or set()
    wanted = {a.patient.id for a in scope} if scope is not None else None
    found: list[dict[str, Any]] = []
    for ident in sorted(ids):
        named = measures.find_response(session, by=by, ident=ident, patients=wanted)
        if named is None:
            continue
        response, acc = named
        instrument = library().get(response.instrument)
        scores = measures.scores_of(session, response.id)
        found += [
            _labelled(session, o, acc.patient, score_observation(o, instrument, acc.patient))
            for o in scores
        ]
        if instrument is not None:
            found += [
                _labelled(session, response, acc.patient, r)
                for r in item_observations(response, instrument, acc.patient)
            ]
    found = [r for r in found if codings_match(q.groups("code"), r["code"]["coding"])]
    if q.has("date"):
        zone = dates.zone(organization_of(session, by))
        found = [
            r
            for r in found
            if all(
                any(
                    w.matches_instant(datetime.fromisoformat(r["effectiveDateTime"]), zone)
                    for w in group
                )
                for group in q.groups("date")
            )
        ]
    page, next_cursor = page_of(found, q)
    measures.record_searched(
        session,
        by,
        "Observation",
        [
            (r["id"][:64], uuid.UUID(r["subject"]["reference"].removeprefix("Patient/")))
            for r in page
        ],
    )
    return SearchPage(page, next_cursor, len(found))


def _before(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The cursor of the scores search: the last score's time and id."""
    if not cursor:
        return None
    try:
        stamp, _, last_id = cursor.partition("_")
        return datetime.fromisoformat(stamp), uuid.UUID(last_id)
    except ValueError:
        raise InvalidInput.field("_cursor", Msg("is not a cursor this server gave out")) from None


OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def search_observations(session: Session, *, by: User, q: Query) -> SearchPage:
    """Scores, newest first; `derived-from` also returns the response's item observations.
    Every Observation Concord scores is in the category survey. The Observations the clinic's
    EHR sent (imported) follow Concord's own, newest first, on a search by patient and code
    only: with `_sort`, `date`, `_lastUpdated` or `category` they are left out (their pages
    carry an `ehr.<offset>` cursor)."""
    scope = _scope(session, by, q)
    if scope == [] or not _clinical_reader(by):
        return SearchPage([], None, 0)
    if allowed_codes(q.groups("category"), OBSERVATION_CATEGORY, {"survey"}) == set():
        return SearchPage([], None, 0)
    if q.has("derived-from"):
        for name in ("_lastUpdated", "_sort"):
            if name in dict(q.pairs):
                raise NotSupported.field(name, Msg("is not supported together with derived-from"))
        return _observations_derived_from(session, by, q, scope)
    zone = dates.zone(organization_of(session, by))
    common: dict[str, Any] = {
        "scope": scope,
        "codes": q.groups("code"),
        "dates": q.groups("date"),
        "stored": q.groups("_lastUpdated"),
        "zone": zone,
        "limit": q.count,
        "only_count": q.only_count,
    }
    labelled = lambda r: _labelled(  # noqa: E731
        session, r[0], r[1], score_observation(r[0], library().get(r[0].instrument), r[1])
    )
    if q.sort:
        start = offset_of(q)
        found = measures.search_observations(
            session, by=by, order=q.sort, offset=start, with_total=q.total, **common
        )
        return SearchPage(
            [labelled(r) for r in found.rows],
            str(start + q.count) if found.more else None,
            found.total,
        )
    narrowed = any(q.has(name) for name in ("date", "_lastUpdated", "category"))
    imported = (
        []
        if narrowed
        else [
            r
            for r in ehr.imported_observations(session, by=by, scope=scope)
            if codings_match(q.groups("code"), (r.get("code") or {}).get("coding") or [])
        ]
    )
    if q.cursor and q.cursor.startswith(IMPORTED_CURSOR):
        start = _imported_offset(q.cursor)
        rows = imported[start : start + q.count]
        more = start + q.count < len(imported)
        total = measures.search_observations(
            session, by=by, before=None, **{**common, "limit": 1, "only_count": True}
        ).total
        return SearchPage(
            rows,
            f"{IMPORTED_CURSOR}{start + q.count}" if more else None,
            total + len(imported),
        )
    found = measures.search_observations(
        session, by=by, before=None if q.only_count else _before(q.cursor), **common
    )
    page = _page(found, labelled, lambda r: f"{r[0].effective_at.isoformat()}_{r[0].id}")
    total = page.total + len(imported) if page.total is not None else None
    if q.only_count or page.next_cursor is not None or not imported:
        return SearchPage(page.resources, page.next_cursor, total)
    room = max(q.count - len(page.resources), 0)
    rows = imported[:room]
    more = room < len(imported)
    return SearchPage(page.resources + rows, f"{IMPORTED_CURSOR}{room}" if more else None, total)


IMPORTED_CURSOR = "ehr."


def _imported_offset(cursor: str) -> int:
    try:
        value = int(cursor.removeprefix(IMPORTED_CURSOR))
    except ValueError:
        value = -1
    if value < 0:
        raise InvalidInput.field("_cursor", Msg("is not a cursor this server gave out"))
    return value


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
            measures.record_read(session, acc, "QuestionnaireResponse", existing.id)
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
    if "|" in raw:
        system, value = raw.split("|", 1)
        matches = measures.responses_with_identifier(
            session, acc, system or None, value, any_system=False
        )
    else:
        matches = measures.responses_with_identifier(session, acc, None, raw, any_system=True)
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
    """Task (safety alerts and the registry's tasks: the care team's only; then the
    referrals' Tasks, for the care team and the patient) and Flag
    (risk status, the care team's only). The referral Tasks follow the last page of the others
    (their pages carry a `referral.<offset>` cursor)."""
    if q.kind != "Task":
        return SearchPage(*search_flags(session, by=by, q=q))
    referrals = fhir_social.referral_tasks(session, by=by, q=q)
    if q.cursor and q.cursor.startswith(REFERRAL_CURSOR):
        start = _referral_offset(q.cursor)
        counted = replace(q, cursor=None, summary="count")
        total = search_tasks(session, by=by, q=counted)[2] + len(referrals)
        more = start + q.count < len(referrals)
        return SearchPage(
            referrals[start : start + q.count],
            f"{REFERRAL_CURSOR}{start + q.count}" if more else None,
            total,
        )
    resources, next_cursor, total = search_tasks(session, by=by, q=q)
    total += len(referrals)
    if q.only_count or next_cursor is not None or not referrals:
        return SearchPage(resources, next_cursor, total)
    room = max(q.count - len(resources), 0)
    more = room < len(referrals)
    return SearchPage(
        resources + referrals[:room], f"{REFERRAL_CURSOR}{room}" if more else None, total
    )


REFERRAL_CURSOR = "referral."


def _referral_offset(cursor: str) -> int:
    try:
        value = int(cursor.removeprefix(REFERRAL_CURSOR))
    except ValueError:
        value = -1
    if value < 0:
        raise InvalidInput.field("_cursor", Msg("is not a cursor this server gave out"))
    return value


# --- _include and _revinclude ------------------------------------------------------------------

REVINCLUDE_LIMIT = 200


def included(
    session: Session, *, by: User, q: Query, found: list[dict[str, Any]], mrn: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The resources `_include` and `_revinclude` ask for beside a page of `found`, each read
    through the same access rules (and trail) as a read of it; and OperationOutcome issues
    for what was cut (a revinclude stops at REVINCLUDE_LIMIT a type, and says so)."""
    extra: list[dict[str, Any]] = []
    issues: list[dict[str, Any]] = []
    seen = {(r["resourceType"], r["id"]) for r in found}
    if q.includes:
        wanted: list[str] = []
        for resource in found:
            ref = (resource.get("subject") or resource.get("patient") or {}).get("reference", "")
            if ref.startswith("Patient/") and ref.removeprefix("Patient/") not in wanted:
                wanted.append(ref.removeprefix("Patient/"))
        for ident in wanted:
            if ("Patient", ident) in seen:
                continue
            try:
                extra.append(read_patient(session, by=by, ident=ident, mrn=mrn))
            except NotFound:
                continue  # not the caller's to read: left out, as a search leaves it out
            seen.add(("Patient", ident))
    if "Provenance:target" in q.revincludes:
        extra += provenances(session, by=by, resources=found, latest_only=False)
    if q.revincludes and found and found[0]["resourceType"] == "Patient":
        patient_ids = [r["id"] for r in found if r["resourceType"] == "Patient"]
        kinds = list(dict.fromkeys(v.split(":", 1)[0] for v in q.revincludes))
        for kind in kinds if patient_ids else []:
            sub = Query(
                kind,
                {"patient": [[Ref("Patient", i) for i in patient_ids]]},
                count=REVINCLUDE_LIMIT,
            )
            if kind == "Observation":
                page = search_observations(session, by=by, q=sub)
            else:
                page = search(session, by=by, q=sub, mrn=mrn)
            for resource in page.resources:
                if (resource["resourceType"], resource["id"]) not in seen:
                    extra.append(resource)
                    seen.add((resource["resourceType"], resource["id"]))
            if page.total > len(page.resources):
                issues.append(
                    {
                        "severity": "warning",
                        "code": "too-costly",
                        "diagnostics": (
                            f"_revinclude of {kind}: the first {len(page.resources)} of "
                            f"{page.total} are included; search {kind}?patient=... for the rest."
                        ),
                    }
                )
    return extra, issues


# --- versions: vread, _history, Provenance -------------------------------------------------------

VERSIONED = ("Patient", "CarePlan", "Goal")


def read_version(
    session: Session, *, by: User, kind: str, ident: str, version: str, mrn: str
) -> dict[str, Any]:
    """vread: the version a resource is at now (read through the same rules as a read).
    Earlier versions are not served as resources (NotFound says where they are listed)."""
    if kind not in VERSIONED:
        raise NotSupported.field("_history", Msg("%(kind)s is not versioned here", kind=kind[:40]))
    current = read_resource(session, by=by, kind=kind, ident=ident, mrn=mrn)
    if current["meta"]["versionId"] != version:
        raise NotFound(
            Msg(
                "Version %(version)s is not served; this is at version %(current)s (an earlier "
                "care plan is listed, with its Provenance, at CarePlan/[id]/_history).",
                version=version[:20],
                current=current["meta"]["versionId"],
            )
        )
    return current


def plan_revisions(session: Session, *, by: User, ident: str) -> tuple[Any, list[Any]]:
    """The plan's record and its revisions as the caller may see them (the care team's: the
    history is refused, audited, to the patient and family as on the pages)."""
    with _as_missing():
        record = plans.get_plan_record(session, by=by, ident=ident)
        revisions = plans.list_revisions(session, access=record.access, plan=record.plan)
    return record, revisions


def plan_history(session: Session, *, by: User, ident: str, base: str) -> dict[str, Any]:
    record, revisions = plan_revisions(session, by=by, ident=ident)
    current = _plan_resource(session, record)
    versions = [(r.number, r.created_at) for r in revisions]
    if not versions:  # a plan saved before revisions were kept: its one version
        versions = [(record.plan.revision_number, record.plan.created_at)]
    return mapping.history_bundle(base, "CarePlan", str(record.plan.id), current, versions)


def plan_provenances(session: Session, *, by: User, ident: str) -> list[dict[str, Any]]:
    record, revisions = plan_revisions(session, by=by, ident=ident)
    made = [mapping.plan_provenance(record.plan, record.access.patient, r) for r in revisions]
    return [p for p in made if p is not None]


def provenances(
    session: Session, *, by: User, resources: list[dict[str, Any]], latest_only: bool
) -> list[dict[str, Any]]:
    """The Provenance of each resource given that Concord wrote for a person: a care plan's,
    one per revision (`latest_only`: its newest), read as the plan's history is (the care
    team's; the patient and family get none); the others' (Goal, Observation,
    MedicationRequest, MedicationStatement), their one latest (concord.fhir.provenance).
    `resources` must have been read by `by` through the access path."""
    out: list[dict[str, Any]] = []
    for resource in resources:
        if resource.get("resourceType") != "CarePlan":
            continue
        try:
            plan = plan_provenances(session, by=by, ident=resource["id"])
        except NotFound:
            continue  # the plan's history is not the caller's (the patient, family)
        if latest_only and plan:
            # The newest revision's (revisions are listed in either order by their callers).
            plan = [max(plan, key=lambda p: int(p["id"].rsplit("-r", 1)[1]))]
        out += plan
    return out + fhir_provenance.latest(session, resources)


def read_provenance(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    """Provenance/[plan id]-r[n]: who made revision n of the plan, when and why."""
    plan_id, _, number = ident.rpartition("-r")
    if not plan_id or not number.isdigit():
        raise NotFound(Msg("No such resource."))
    for provenance in plan_provenances(session, by=by, ident=plan_id):
        if provenance["id"] == ident:
            return provenance
    raise NotFound(Msg("No such resource."))
