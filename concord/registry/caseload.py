"""The caseload: one row per open episode, built for a whole caseload in a fixed number of
queries (never one query per patient), then sorted and filtered in memory.

Whose rows: a care manager's own caseload (episodes they hold, for patients whose care team
they are on), or every open episode of the care teams a clinician is on (what a psychiatric
consultant, or anyone else on a team, may see). Nobody else sees a row.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session, raiseload

from concord import disclosure
from concord.access import PatientAccess, Relation
from concord.accounts.models import Organization, User
from concord.appointments.models import Appointment, VisitStatus
from concord.audit.service import record
from concord.careplans.models import CURRENT_PLAN_STATUSES, AgreementParty, CarePlan, PlanAgreement
from concord.careplans.service import review_state
from concord.categories import DataCategory
from concord.clock import now
from concord.dates import local_date, org_today
from concord.db import among, core, days_before
from concord.i18n import N_, Msg
from concord.measures.library import library
from concord.measures.models import (
    MeasureObservation,
    MeasureResponse,
    MeasureSchedule,
    ResponseStatus,
    instrument_category,
)
from concord.measures.rules import Point, progress, schedule_state
from concord.measures.service import observation_code
from concord.medications.models import Medication, MedicationStatus, MoudRecord
from concord.medications.service import MoudState, moud_state
from concord.medications.vocabulary import default_vocabulary
from concord.patients.models import CareTeam, CareTeamMember, Patient
from concord.registry.models import (
    CaseReview,
    Contact,
    Episode,
    Program,
    Recommendation,
    RecommendationStatus,
    ReviewStatus,
    UserPreference,
)
from concord.registry.rules import (
    FLAG_CODES,
    CaseFacts,
    ContactFact,
    Flag,
    flags,
    last_reached_on,
    next_contact_due,
)
from concord.safety.models import AlertStatus, SafetyAlert

# The measures each program is judged by, its main measure first: a row shows only its
# program's, and the page a column only for an instrument some row needs (a depression caseload
# has no GAD-7 columns of dashes).
PROGRAM_INSTRUMENTS: dict[Program, tuple[str, ...]] = {
    Program.depression: ("PHQ-9",),
    Program.anxiety: ("GAD-7",),
    Program.ptsd: ("PCL-5",),
    Program.substance_use: ("AUDIT-C",),
    Program.co_occurring: ("PHQ-9", "AUDIT-C"),
}
PROGRAM_MEASURES = {program: codes[0] for program, codes in PROGRAM_INSTRUMENTS.items()}
# The instruments a caseload can show, in the order of its columns, each with the short key its
# sort and CSV columns use.
INSTRUMENT_KEYS = {"PHQ-9": "phq9", "GAD-7": "gad7", "PCL-5": "pcl5", "AUDIT-C": "auditc"}


def instruments_of(program: str) -> tuple[str, ...]:
    try:
        return PROGRAM_INSTRUMENTS[Program(program)]
    except ValueError:
        return ("PHQ-9",)


@dataclass(frozen=True)
class _Scores:
    """One patient's scores on one instrument, as the disclosure decision sees them: the
    instrument's category and the patient (the Part 2 label of substance-use scores is the
    patient's: concord/part2/rules.yaml)."""

    code: str
    patient_id: uuid.UUID

    @property
    def data_category(self) -> DataCategory | None:
        return instrument_category(self.code)


def withheld_instruments(session: Session, access: PatientAccess, program: str) -> frozenset[str]:
    """The instruments of `program` whose scores `access` may not see: the decision
    measures.progress_for makes, by category and Part 2 label (disclosure.filter_records:
    withholding audited and counted in the withheld line, disclosures logged)."""
    scores = [_Scores(code, access.patient.id) for code in instruments_of(program)]
    kept = disclosure.filter_records(session, access, scores, object_type="Observation")
    return frozenset(s.code for s in scores) - {s.code for s in kept}


class _Record:
    """A record the caseload reads by a few columns (never loaded whole), as the disclosure
    decision sees it: its table, id, episode or clinic and author (what the Part 2 rules read,
    concord/part2/rules.yaml) and its data category; `fact` is what a row is built from."""

    def __init__(
        self,
        table: str,
        ident: uuid.UUID,
        category: DataCategory,
        fact: Any,
        *,
        episode_id: uuid.UUID | None = None,
        clinic_id: uuid.UUID | None = None,
        authors: Mapping[str, uuid.UUID | None] | None = None,
    ) -> None:
        self.__tablename__ = table
        self.id = ident
        self.data_category = category
        self.fact = fact
        self.episode_id = episode_id
        self.clinic_id = clinic_id
        for column, value in (authors or {}).items():
            setattr(self, column, value)


@dataclass(frozen=True)
class _Kind:
    """A fact the caseload shows of a patient's records of one category (open safety alerts,
    the plan's review, pending recommendations), decided as the records it summarises."""

    data_category: DataCategory


def instruments_for(rows: Iterable[CaseRow]) -> list[str]:
    """The instrument columns these rows need, in the caseload's order."""
    needed = {code for row in rows for code in instruments_of(row.episode.program)}
    return [code for code in INSTRUMENT_KEYS if code in needed]


@dataclass
class Measure:
    first: Point | None = None
    latest: Point | None = None
    change_percent: float | None = None


@dataclass
class CaseRow:
    episode: Episode
    patient: Patient
    weeks: int
    measures: dict[str, Measure]
    main_instrument: str
    status: str
    status_rule: Msg | None
    last_contact: date | None
    next_due: date
    contacts: int
    open_alerts: int
    review: str  # none, queued, reviewed
    review_on: date | None
    pending_recommendations: int
    plan_review: str
    plan_review_on: date | None
    awaiting_agreement: bool
    flags: list[Flag] = field(default_factory=list)

    @property
    def flag_codes(self) -> set[str]:
        return {f.code for f in self.flags}


def _on_team(user: User) -> Any:
    return exists().where(
        and_(
            CareTeam.patient_id == Episode.patient_id,
            CareTeamMember.care_team_id == CareTeam.id,
            CareTeamMember.user_id == user.id,
            CareTeamMember.ended_at.is_(None),
        )
    )


def open_episodes(session: Session, by: User, *, scope: str) -> list[tuple[Episode, Patient]]:
    """`mine`: the episodes this care manager holds; `teams`: every open episode of the care
    teams this person is on. Only clinicians, only on their teams."""
    if not by.is_clinician or not by.active:
        return []
    query = (
        select(Episode, Patient)
        .join(Patient, Patient.id == Episode.patient_id)
        .where(
            Episode.organization_id == by.organization_id,
            Episode.ended_on.is_(None),
            _on_team(by),
        )
        # The caseload needs neither the episode's people nor the patient's clinic: not
        # loading them keeps the page to a fixed number of queries (raise, never lazy-load).
        .options(
            raiseload(Episode.care_manager),
            raiseload(Episode.consultant),
            raiseload(Patient.clinic),
        )
    )
    if scope == "mine":
        query = query.where(Episode.care_manager_id == by.id)
    return [(e, p) for e, p in session.execute(query)]


def _aware(value: datetime) -> datetime:
    # SQLite gives an aggregate's datetime back without its zone; stored times are UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _local_date(value: datetime, tz: ZoneInfo) -> date:
    day = local_date(value, tz)
    assert day is not None
    return day


# The facts each flag is decided by (concord.registry.rules.flags), by the query that reads
# them below. A row built for some flags only (`build_rows(..., only=...)`) runs only their
# queries: a check-in can change no flag but those of its scores and schedules, so the task
# sync after it reads four of the ten.
FLAG_FACTS: dict[str, frozenset[str]] = {
    "open_safety_alert": frozenset({"alerts"}),
    "needs_initial_assessment": frozenset({"contacts"}),
    "no_follow_up_4_weeks": frozenset({"contacts"}),
    "not_improving": frozenset({"scores"}),
    "not_improving_escalate": frozenset({"scores"}),
    "checkin_overdue": frozenset({"schedules"}),
    "no_contact_30_days": frozenset({"contacts"}),
    "missed_visit": frozenset({"contacts", "visits"}),
    "plan_review_overdue": frozenset({"plans"}),
    "plan_awaiting_agreement": frozenset({"plans"}),
    "recommendation_not_acted_on": frozenset({"recommendations"}),
    "moud_pdmp_check_due": frozenset({"moud"}),
    "moud_no_naloxone": frozenset({"moud"}),
    "moud_missed_reported": frozenset({"moud", "contacts"}),
}
ALL_FACTS = frozenset(
    {
        "contacts",
        "scores",
        "alerts",
        "reviews",
        "recommendations",
        "plans",
        "schedules",
        "moud",
        "visits",
    }
)


def build_rows(
    session: Session,
    pairs: Sequence[tuple[Episode, Patient]],
    *,
    today: date,
    tz: str,
    only: Collection[str] | None = None,
    withheld: Mapping[uuid.UUID, Collection[str]] | None = None,
    by: User | None = None,
) -> list[CaseRow]:
    """Every row's facts in ten queries, whatever the number of patients.

    `only`: flag codes. The rows are then built for those flags alone: only the queries
    their facts need are run (FLAG_FACTS), and a row's flags are those of them that apply;
    its other fields are not to be shown (a task sync reads them, never a page).

    `withheld`: per patient, the instruments whose scores the reader may not see
    (`withheld_instruments`): left out of the row's measures, and the status against
    target and the review cue are not judged by them.

    `by`: the reader (a person, never the system). Each patient's facts then pass the
    disclosure decision (consent, 42 CFR Part 2) before a row is built from them, from one
    load of labels and consents for all the patients: `_decide`, a fixed number of queries."""
    if not pairs:
        return []
    needed = ALL_FACTS if only is None else frozenset().union(*(FLAG_FACTS[code] for code in only))
    zone = ZoneInfo(tz)
    episodes = {e.id: e for e, _ in pairs}
    patients = {p.id: p for _, p in pairs}
    ids = list(patients)
    lib = library()
    facts = _Facts(
        contacts=_contacts(session, episodes) if "contacts" in needed else {},
        points=_points(session, episodes, lib, zone) if "scores" in needed else {},
        alerts=_open_alerts(session, ids, zone) if "alerts" in needed else ({}, {}),
        reviews=_reviews(session, episodes) if "reviews" in needed else [],
        pending=_pending(session, ids, zone) if "recommendations" in needed else {},
        plans=_plan_facts(session, ids, today) if "plans" in needed else {},  # two queries
        schedules=_schedules(session, ids, today, zone) if "schedules" in needed else ({}, {}),
        moud=_moud(session, ids, today) if "moud" in needed else {},
        noshows=_missed_visits(session, ids, zone) if "visits" in needed else {},
    )
    if by is not None:
        pairs, withheld = _decide(session, by, pairs, facts, withheld)
    facts.missed = _latest_missed(facts.noshows)
    facts.review_states = _review_states(facts.reviews)
    return [
        _row(episode, patient, facts, lib, today, only, (withheld or {}).get(patient.id))
        for episode, patient in {p.id: (e, p) for e, p in pairs}.values()
    ]


@dataclass
class _Facts:
    """What the caseload's queries found, keyed by episode or patient."""

    contacts: dict[uuid.UUID, list[_Record]]  # by episode
    points: dict[tuple[uuid.UUID, str], list[Point]]
    # (open alerts, the oldest one's local date) by patient
    alerts: tuple[dict[uuid.UUID, int], dict[uuid.UUID, date]]
    reviews: list[_Record]
    pending: dict[uuid.UUID, list[date]]
    plans: dict[uuid.UUID, _PlanFacts]
    # (schedules by patient, completions by patient and instrument)
    schedules: tuple[dict[uuid.UUID, list[Any]], dict[tuple[uuid.UUID, str], list[date]]]
    # The no-shows by patient (issue 22), then the latest one's local date by patient (of the
    # no-shows the reader may see).
    noshows: dict[uuid.UUID, list[_Record]] = field(default_factory=dict)
    missed: dict[uuid.UUID, date] = field(default_factory=dict)
    # (episodes waiting in the consultant's queue, the last review by episode), from `reviews`
    review_states: tuple[set[uuid.UUID], dict[uuid.UUID, date]] = field(
        default_factory=lambda: (set(), {})
    )
    # The MOUD state by patient (only patients on a MOUD or with MOUD records).
    moud: dict[uuid.UUID, MoudState] = field(default_factory=dict)


def _decide(
    session: Session,
    by: User,
    pairs: Sequence[tuple[Episode, Patient]],
    facts: _Facts,
    withheld: Mapping[uuid.UUID, Collection[str]] | None,
) -> tuple[list[tuple[Episode, Patient]], dict[uuid.UUID, Collection[str]]]:
    """What `by` may see of each patient's facts, by the disclosure decision (relationship,
    Part 2 labels, consents: ADR 0021), and `facts` narrowed to it in place. The labels and
    consents of every patient are loaded once (`disclosure.load_for`); each decision after
    that is made in memory, so a caseload of any size costs the same few extra queries.

    A patient's episode withheld (a Part 2 program's, without a permitting consent) takes its
    whole row with it; otherwise its contacts and case reviews, the scores and check-ins of
    each instrument, open safety alerts, the plan's review and pending recommendations are
    each decided. `filter_records` audits what is withheld, counts it for the care team's
    "N records withheld" line and tells the disclosure log what Part 2 data left the
    program. The returned pairs are those whose episode `by` may see; the returned mapping,
    per patient, the instruments neither shown nor judged by."""
    patients = {p.id: p for _, p in pairs}
    disclosure.load_for(session, by.organization_id, list(patients))
    episodes: dict[uuid.UUID, list[Episode]] = defaultdict(list)
    for episode, patient in pairs:
        episodes[patient.id].append(episode)
    reviews: dict[uuid.UUID, list[_Record]] = defaultdict(list)
    for review in facts.reviews:
        assert review.episode_id is not None
        reviews[review.episode_id].append(review)
    schedules, completed = facts.schedules
    alerts, alert_since = facts.alerts
    kept: list[tuple[Episode, Patient]] = []
    kept_reviews: list[_Record] = []
    hidden: dict[uuid.UUID, Collection[str]] = dict(withheld or {})
    for patient_id, group in episodes.items():
        patient = patients[patient_id]
        # open_episodes found these as the episodes of care teams `by` is on: the care team.
        acc = PatientAccess(by, patient, Relation.team)
        shown = disclosure.filter_records(session, acc, group, object_type="Episode")
        kept += [(episode, patient) for episode in shown]
        if not shown:
            continue
        if facts.noshows.get(patient_id):
            facts.noshows[patient_id] = disclosure.filter_records(
                session, acc, facts.noshows[patient_id], object_type="Appointment"
            )
        for kind, records in (
            ("Contact", [c for e in shown for c in facts.contacts.get(e.id, [])]),
            ("CaseReview", [r for e in shown for r in reviews.get(e.id, [])]),
        ):
            if records:
                seen = {
                    id(r)
                    for r in disclosure.filter_records(session, acc, records, object_type=kind)
                }
                if kind == "Contact":
                    for e in shown:
                        if e.id in facts.contacts:
                            facts.contacts[e.id] = [
                                c for c in facts.contacts[e.id] if id(c) in seen
                            ]
                else:
                    kept_reviews += [r for r in records if id(r) in seen]
        # Scores and check-ins, decided per instrument the patient has any of.
        codes = {code for e in shown for code in instruments_of(e.program)}
        codes = {c for c in codes if (patient_id, c) in facts.points}
        codes |= {s.instrument for s in schedules.get(patient_id, [])}
        scores = [_Scores(code, patient_id) for code in sorted(codes)]
        seen_codes = {
            s.code
            for s in disclosure.filter_records(session, acc, scores, object_type="Observation")
        }
        denied = codes - seen_codes
        if denied:
            hidden[patient_id] = frozenset(hidden.get(patient_id, ())) | denied
            if patient_id in schedules:
                schedules[patient_id] = [
                    s for s in schedules[patient_id] if s.instrument not in denied
                ]
        # What the row sums up of other kinds of record.
        for kind, count, category, drop in (
            ("SafetyAlert", alerts.get(patient_id, 0), SafetyAlert.data_category, _drop_alerts),
            ("CarePlan", int(patient_id in facts.plans), CarePlan.data_category, _drop_plan),
            ("MoudRecord", int(patient_id in facts.moud), DataCategory.substance_use, _drop_moud),
            (
                "Recommendation",
                len(facts.pending.get(patient_id, [])),
                Recommendation.data_category,
                _drop_pending,
            ),
        ):
            if count and not disclosure.filter_records(
                session, acc, [_Kind(category)] * count, object_type=kind
            ):
                drop(facts, patient_id)
    facts.reviews = kept_reviews
    return kept, hidden


def _drop_alerts(facts: _Facts, patient_id: uuid.UUID) -> None:
    facts.alerts[0].pop(patient_id, None)
    facts.alerts[1].pop(patient_id, None)


def _drop_moud(facts: _Facts, patient_id: uuid.UUID) -> None:
    facts.moud.pop(patient_id, None)


def _moud(session: Session, ids: list[uuid.UUID], today: date) -> dict[uuid.UUID, MoudState]:
    """Each patient's MOUD state in two statements: the active MOUD and naloxone medications
    with the clinic's PDMP interval, then the latest MOUD record of each kind."""
    vocabulary = default_vocabulary()
    moud = {i.rxcui for i in vocabulary.members("moud")}
    naloxone = {i.rxcui for i in vocabulary.members("naloxone")}
    interval: dict[uuid.UUID, int | None] = {}
    starts: dict[uuid.UUID, list[date | None]] = defaultdict(list)
    listed: set[uuid.UUID] = set()
    for patient_id, days, rxcui, started_on in session.execute(
        select(
            Patient.id,
            Organization.pdmp_check_interval_days,
            Medication.rxcui,
            Medication.started_on,
        )
        .join(Organization, Organization.id == Patient.organization_id)
        .outerjoin(
            Medication,
            and_(
                Medication.patient_id == Patient.id,
                Medication.status == MedicationStatus.active,
                Medication.rxcui.in_(sorted(moud | naloxone)),
            ),
        )
        .where(among(session, Patient.id, ids))
    ):
        interval[patient_id] = days
        if rxcui in moud:
            starts[patient_id].append(started_on)
        elif rxcui in naloxone:
            listed.add(patient_id)
    last: dict[uuid.UUID, dict[str, date]] = defaultdict(dict)
    for patient_id, kind, latest in session.execute(
        select(MoudRecord.patient_id, MoudRecord.kind, func.max(MoudRecord.on))
        .where(among(session, MoudRecord.patient_id, ids))
        .group_by(MoudRecord.patient_id, MoudRecord.kind)
    ):
        last[patient_id][kind] = latest
    return {
        pid: moud_state(
            moud_started=starts.get(pid, []),
            naloxone_listed=pid in listed,
            last_by_kind=last.get(pid, {}),
            interval_days=interval.get(pid),
            today=today,
        )
        for pid in set(starts) | set(last)
    }


def _drop_plan(facts: _Facts, patient_id: uuid.UUID) -> None:
    facts.plans.pop(patient_id, None)


def _drop_pending(facts: _Facts, patient_id: uuid.UUID) -> None:
    facts.pending.pop(patient_id, None)


def _contacts(session: Session, episodes: dict[uuid.UUID, Episode]) -> Any:
    contacts: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for ident, episode_id, on, kind, user_id, created_by_id in session.execute(
        select(
            Contact.id,
            Contact.episode_id,
            Contact.occurred_on,
            Contact.kind,
            Contact.user_id,
            Contact.created_by_id,
        ).where(among(session, Contact.episode_id, episodes), Contact.voided_at.is_(None))
    ):
        contacts[episode_id].append(
            _Record(
                Contact.__tablename__,
                ident,
                Contact.data_category,
                ContactFact(on, kind),
                episode_id=episode_id,
                authors={"user_id": user_id, "created_by_id": created_by_id},
            )
        )
    return contacts


def _points(
    session: Session, episodes: dict[uuid.UUID, Episode], lib: Any, zone: ZoneInfo
) -> dict[tuple[uuid.UUID, str], list[Point]]:
    """The first and the latest main score per patient and instrument, in one query."""
    wanted = {code for e in episodes.values() for code in instruments_of(e.program)}
    main_scores = {
        code: (instrument.main_score.id, observation_code(instrument, instrument.main_score)[0])
        for code in wanted
        if (instrument := lib.get(code)) is not None and instrument.main_score is not None
    }
    ends = _score_ends(main_scores)
    points: dict[tuple[uuid.UUID, str], list[Point]] = defaultdict(list)
    if not ends:
        return points
    # The rows those subqueries name, fetched in the same statement (their ids never
    # come back to Python).
    found = (
        select(*(end.label(f"end{n}") for n, end in enumerate(ends)))
        .where(among(session, Episode.id, episodes))
        .subquery("ends")
    )
    for patient_id, instrument, value, band, effective_at in session.execute(
        select(
            MeasureObservation.patient_id,
            MeasureObservation.instrument,
            MeasureObservation.value,
            MeasureObservation.band,
            MeasureObservation.effective_at,
        )
        .join(found, MeasureObservation.id.in_(list(found.c)))
        .order_by(MeasureObservation.effective_at)
    ):
        points[(patient_id, instrument)].append(Point(_local_date(effective_at, zone), value, band))
    return points


def _score_ends(main_scores: dict[str, tuple[str, str]]) -> list[Any]:
    """Only the first score of the treatment (from 30 days before the episode began: the
    baseline) and the latest matter, per patient and instrument. Each is one index seek
    (patient, code, time) per episode, as correlated subqueries, and those rows fetched by
    id in the same statement: a few milliseconds on either engine at 100,000 patients,
    whatever the length of each history."""
    ends: list[Any] = []
    for code, (score_id, observation) in main_scores.items():
        for order in (
            MeasureObservation.effective_at.asc(),
            MeasureObservation.effective_at.desc(),
        ):
            end = (
                select(MeasureObservation.id)
                .where(
                    # By the index (patient, code, time): the first row in time order is the
                    # answer, however long the patient's history.
                    MeasureObservation.patient_id == Episode.patient_id,
                    MeasureObservation.code == observation,
                    MeasureObservation.instrument == code,
                    MeasureObservation.score_id == score_id,
                    MeasureObservation.effective_at >= days_before(Episode.started_on, 30),
                )
                .order_by(order)
                .limit(1)
                .correlate(Episode)
                .scalar_subquery()
            )
            # An instrument is looked up only for the episodes of the programs judged by it.
            programs = [p.value for p, codes in PROGRAM_INSTRUMENTS.items() if code in codes]
            ends.append(case((Episode.program.in_(programs), end)))
    return ends


def _open_alerts(
    session: Session, ids: list[uuid.UUID], zone: ZoneInfo
) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, date]]:
    alerts: dict[uuid.UUID, int] = {}
    alert_since: dict[uuid.UUID, date] = {}
    for patient_id, count, oldest in session.execute(
        select(SafetyAlert.patient_id, func.count(), func.min(SafetyAlert.created_at))
        .where(
            among(session, SafetyAlert.patient_id, ids),
            SafetyAlert.status != AlertStatus.closed,
        )
        .group_by(SafetyAlert.patient_id)
    ):
        alerts[patient_id] = count
        alert_since[patient_id] = _local_date(_aware(oldest), zone)
    return alerts, alert_since


def _missed_visits(
    session: Session, ids: list[uuid.UUID], zone: ZoneInfo
) -> dict[uuid.UUID, list[_Record]]:
    """Each patient's no-shows (read from the visits' table, as the caseload reads the plans'
    and the alerts'), as records the disclosure decision can judge: a Part 2 program's visit
    (its clinic, its author: concord/part2/rules.yaml) raises no flag for whom it is withheld
    from. The fact is the visit's local date."""
    found: dict[uuid.UUID, list[_Record]] = defaultdict(list)
    for ident, patient_id, start, clinic_id, created_by_id, requested_by_id in session.execute(
        select(
            Appointment.id,
            Appointment.patient_id,
            Appointment.start,
            Appointment.clinic_id,
            Appointment.created_by_id,
            Appointment.requested_by_id,
        ).where(
            among(session, Appointment.patient_id, ids),
            Appointment.status == VisitStatus.noshow,
        )
    ):
        record = _Record(
            "appointment",
            ident,
            Appointment.data_category,
            _local_date(_aware(start), zone),
            clinic_id=clinic_id,
            authors={"created_by_id": created_by_id, "requested_by_id": requested_by_id},
        )
        found[patient_id].append(record)
    return found


def _latest_missed(noshows: Mapping[uuid.UUID, list[_Record]]) -> dict[uuid.UUID, date]:
    return {pid: max(r.fact for r in rows) for pid, rows in noshows.items() if rows}


def _reviews(session: Session, episodes: dict[uuid.UUID, Episode]) -> list[_Record]:
    found: list[_Record] = []
    for ident, episode_id, status, reviewed_on, requested_by_id in session.execute(
        select(
            CaseReview.id,
            CaseReview.episode_id,
            CaseReview.status,
            CaseReview.reviewed_on,
            CaseReview.requested_by_id,
        ).where(among(session, CaseReview.episode_id, episodes))
    ):
        found.append(
            _Record(
                CaseReview.__tablename__,
                ident,
                CaseReview.data_category,
                (status, reviewed_on),
                episode_id=episode_id,
                authors={"requested_by_id": requested_by_id},
            )
        )
    return found


def _review_states(found: Iterable[_Record]) -> tuple[set[uuid.UUID], dict[uuid.UUID, date]]:
    """(episodes waiting in the consultant's queue, the last review by episode)."""
    queued: set[uuid.UUID] = set()
    reviewed: dict[uuid.UUID, date] = {}
    for r in found:
        status, reviewed_on = r.fact
        assert r.episode_id is not None
        if status == ReviewStatus.queued:
            queued.add(r.episode_id)
        elif status == ReviewStatus.reviewed and reviewed_on is not None:
            reviewed[r.episode_id] = max(reviewed_on, reviewed.get(r.episode_id, reviewed_on))
    return queued, reviewed


def _pending(session: Session, ids: list[uuid.UUID], zone: ZoneInfo) -> Any:
    pending: dict[uuid.UUID, list[date]] = defaultdict(list)
    for patient_id, proposed_at in session.execute(
        select(Recommendation.patient_id, Recommendation.proposed_at).where(
            among(session, Recommendation.patient_id, ids),
            Recommendation.status == RecommendationStatus.proposed,
        )
    ):
        pending[patient_id].append(_local_date(proposed_at, zone))
    return pending


def _schedules(
    session: Session, ids: list[uuid.UUID], today: date, zone: ZoneInfo
) -> tuple[dict[uuid.UUID, list[Any]], dict[tuple[uuid.UUID, str], list[date]]]:
    schedules: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for schedule in session.execute(
        select(
            MeasureSchedule.patient_id,
            MeasureSchedule.instrument,
            MeasureSchedule.every_days,
            MeasureSchedule.start_on,
            MeasureSchedule.end_on,
        ).where(
            among(session, MeasureSchedule.patient_id, ids),
            MeasureSchedule.stopped_at.is_(None),
        )
    ):
        schedules[schedule.patient_id].append(schedule)
    completed: dict[tuple[uuid.UUID, str], list[date]] = defaultdict(list)
    if schedules:
        # Whether today's due date is met needs only the completions since its window opened:
        # at most one period (plus the days a check-in may come early) back.
        longest = max(s.every_days for group in schedules.values() for s in group)
        opened = datetime.combine(today - timedelta(days=longest + 7), datetime.min.time(), zone)
        for patient_id, instrument, completed_at in session.execute(
            select(
                MeasureResponse.patient_id, MeasureResponse.instrument, MeasureResponse.completed_at
            ).where(
                among(session, MeasureResponse.patient_id, schedules),
                MeasureResponse.status == ResponseStatus.completed,
                MeasureResponse.completed_at >= opened,
            )
        ):
            completed[(patient_id, instrument)].append(_local_date(completed_at, zone))
    return schedules, completed


def _row(
    episode: Episode,
    patient: Patient,
    found: _Facts,
    lib: Any,
    today: date,
    only: Collection[str] | None = None,
    withheld: Collection[str] | None = None,
) -> CaseRow:
    """One patient's row from what the queries found (no query here); the `withheld`
    instruments neither shown nor judged by."""
    patient_id = patient.id
    weeks = (today - episode.started_on).days // 7
    shown: dict[str, Measure] = {}
    codes = instruments_of(episode.program)
    main_code = codes[0]
    main_progress = None
    for code in codes:
        instrument = lib.get(code)
        if instrument is None or (withheld and code in withheld):
            continue
        result = progress(
            instrument,
            found.points.get((patient_id, code), []),
            treatment_start=episode.started_on,
            today=today,
        )
        shown[code] = Measure(result.baseline, result.latest, result.change_percent)
        if code == main_code:
            main_progress = result
    plan = found.plans.get(patient_id, _NO_PLAN)
    queued, reviewed = found.review_states
    facts = CaseFacts(
        today=today,
        status=episode.status,
        started_on=episode.started_on,
        contacts=[c.fact for c in found.contacts.get(episode.id, [])],
        weeks=weeks,
        review_cue=bool(main_progress and main_progress.review_cue),
        checkins_overdue=_overdue(found, patient_id, today),
        open_alerts=found.alerts[0].get(patient_id, 0),
        alert_since=found.alerts[1].get(patient_id),
        plan_review=plan.review,
        awaiting_agreement=plan.awaiting_agreement,
        pending_recommendations=found.pending.get(patient_id, []),
        review_queued=episode.id in queued,
        **_moud_facts(found.moud.get(patient_id)),
        missed_visit_on=found.missed.get(patient_id),
    )
    return CaseRow(
        episode=episode,
        patient=patient,
        weeks=weeks,
        measures=shown,
        main_instrument=main_code,
        status=main_progress.status if main_progress else "no_data",
        status_rule=main_progress.rule if main_progress else None,
        last_contact=last_reached_on(facts.contacts),
        next_due=next_contact_due(facts),
        contacts=len(facts.contacts),
        open_alerts=facts.open_alerts,
        review="queued"
        if episode.id in queued
        else ("reviewed" if episode.id in reviewed else "none"),
        review_on=reviewed.get(episode.id),
        pending_recommendations=len(facts.pending_recommendations),
        plan_review=plan.review,
        plan_review_on=plan.next_review_on,
        awaiting_agreement=facts.awaiting_agreement,
        flags=[f for f in flags(facts) if only is None or f.code in only],
    )


def _moud_facts(state: MoudState | None) -> dict[str, Any]:
    if state is None:
        return {}
    return {
        "on_moud": state.on_moud,
        "pdmp_due_on": state.pdmp_due_on,
        "pdmp_overdue": state.pdmp_overdue,
        "naloxone_on_file": state.naloxone_on_file,
        "missed_reported_on": state.last_missed,
    }


def _review_state(episode_id: uuid.UUID, queued: set[uuid.UUID], reviewed: dict[Any, date]) -> str:
    if episode_id in queued:
        return "queued"
    return "reviewed" if episode_id in reviewed else "none"


def _overdue(found: _Facts, patient_id: uuid.UUID, today: date) -> list[str]:
    schedules, completed = found.schedules
    overdue = []
    for schedule in schedules.get(patient_id, []):
        state = schedule_state(
            start_on=schedule.start_on,
            every_days=schedule.every_days,
            end_on=schedule.end_on,
            completed_on=completed.get((patient_id, schedule.instrument), []),
            today=today,
            count_missed=False,
        )
        if state.status == "overdue":
            overdue.append(schedule.instrument)
    return sorted(overdue)


# --- one episode's score and schedule flags (the task sync after a check-in) -------------------


@dataclass(frozen=True)
class _Fact:
    """A record a flag follows from, as the disclosure decision sees it (its id is a name)."""

    id: str
    patient_id: uuid.UUID
    data_category: DataCategory | None
    __tablename__: str | None = None


def flag_records(episode: Episode, code: str) -> list[Any]:
    """The records flag `code` of `episode` follows from, as the disclosure decision sees
    them: the episode itself (a task about it says it exists), and, by the facts the flag
    reads (FLAG_FACTS), the scores of the program's instruments (not improving, a check-in
    overdue) or the plan (a review, an agreement). Contacts are the episode's records and are
    labelled as it is (concord/part2/rules.yaml). A task opened from the flag is opened only
    for an owner from whom none of them is withheld (concord.registry.tasks, ADR 0021)."""
    found: list[Any] = [episode]
    facts = FLAG_FACTS.get(code, frozenset())
    if facts & {"scores", "schedules"}:
        found += [
            _Fact(f"scores:{c}", episode.patient_id, instrument_category(c))
            for c in instruments_of(episode.program)
        ]
    if "plans" in facts:
        found.append(_Fact("plan", episode.patient_id, CarePlan.data_category))
    return found


# The flags one patient's row can be built for by episode_flags: those decided by scores and
# schedules alone.
EPISODE_FACTS = frozenset({"scores", "schedules"})


@dataclass
class FlagRow:
    """What a task sync reads of a row (concord.registry.tasks.sync_flag_tasks)."""

    episode: Any  # an Episode, or a row of its columns the sync reads (episode_flags)
    patient: Patient
    flags: list[Flag]

    @property
    def flag_codes(self) -> set[str]:
        return {f.code for f in self.flags}


@lru_cache(maxsize=32)
def _first_and_latest(code: str, score_id: str, observation: str) -> Any:
    """One patient's first score of the treatment (from 30 days before it began) and latest,
    as build_rows reads them for a caseload; built once per instrument, bound per call."""

    def end(order: Any) -> Any:
        return (
            select(MeasureObservation.id)
            .where(
                MeasureObservation.patient_id == bindparam("patient"),
                MeasureObservation.code == observation,
                MeasureObservation.instrument == code,
                MeasureObservation.score_id == score_id,
                MeasureObservation.effective_at
                >= days_before(bindparam("started", type_=Date), 30),
            )
            .order_by(order)
            .limit(1)
            .scalar_subquery()
        )

    return (
        select(MeasureObservation.value, MeasureObservation.band, MeasureObservation.effective_at)
        .where(
            MeasureObservation.id.in_(
                [
                    end(MeasureObservation.effective_at.asc()),
                    end(MeasureObservation.effective_at.desc()),
                ]
            )
        )
        .order_by(MeasureObservation.effective_at)
    )


@lru_cache(maxsize=32)
def _scores_and_completed(code: str, score_id: str, observation: str) -> Any:
    """`_first_and_latest` and `_COMPLETED` in one statement (a UNION ALL: "s" the scores,
    "c" the check-ins done since bound `opened`), for a patient with schedules: a check-in's
    sync reads both. The scores come unordered: the caller sorts them by time."""
    first_latest = _first_and_latest(code, score_id, observation)
    obs = MeasureObservation.__table__
    response = MeasureResponse.__table__
    return union_all(
        select(
            literal("s", String()).label("kind"),
            obs.c.value,
            obs.c.band,
            obs.c.effective_at.label("at"),
            cast(null(), response.c.instrument.type).label("instrument"),
        ).where(first_latest.whereclause),
        *(
            select(
                literal("c", String()).label("kind"),
                cast(null(), obs.c.value.type),
                cast(null(), obs.c.band.type),
                latest,
                response.c.instrument,
            )
            .where(*where)
            .group_by(response.c.instrument)
            for latest, where in _completed_bounds()
        ),
    )


def _completed_bounds() -> list[tuple[Any, tuple[Any, ...]]]:
    """The check-ins done since bound `opened` that decide whether a schedule is overdue, per
    instrument: the latest before bound `tomorrow` (the organization's next midnight) and the
    latest of all. A check-in's sync asks schedule_state(count_missed=False), which reads only
    whether a check-in's local date falls in the window of the due date that holds today, and
    that window ends after today: every date up to today is before its end, so the latest of
    them tells whether one is in it; a date after today (a response dated a few minutes
    ahead, past midnight) is in it only if the window ends later still, and the latest of all
    brings it. So these two give the same answer as every check-in in the window, at two rows
    an instrument however often the patient checks in (a daily diary, the benchmark's
    thousands)."""
    response = MeasureResponse.__table__
    since = (
        response.c.patient_id == bindparam("patient"),
        response.c.status == ResponseStatus.completed,
        response.c.completed_at >= bindparam("opened"),
    )
    latest = func.max(response.c.completed_at).label("at")
    return [(latest, (*since, response.c.completed_at < bindparam("tomorrow"))), (latest, since)]


_SCHEDULES = select(
    MeasureSchedule.instrument,
    MeasureSchedule.every_days,
    MeasureSchedule.start_on,
    MeasureSchedule.end_on,
).where(MeasureSchedule.patient_id == bindparam("patient"), MeasureSchedule.stopped_at.is_(None))
# The check-ins that decide overdue schedules, per instrument (_completed_bounds).
_COMPLETED = union_all(
    *(
        select(MeasureResponse.__table__.c.instrument, latest)
        .where(*where)
        .group_by(MeasureResponse.__table__.c.instrument)
        for latest, where in _completed_bounds()
    )
)


def episode_flags(
    session: Session,
    episode: Any,
    patient: Patient,
    *,
    today: date,
    tz: str,
    only: Collection[str],
    schedules: Sequence[Any] | None = None,
) -> FlagRow:
    """One open episode's flags among `only`, which must be decided by scores and schedules
    alone (EPISODE_FACTS): the same decisions as build_rows(..., only=only), by statements
    built once (a statement built per call costs more than it takes to run). Three
    statements at most: the first and latest score of the program's measure (one per
    instrument), the schedules, and the check-ins done since the longest's window opened.
    `episode`: an Episode, or a row with its id, organization_id, patient_id, program,
    status, started_on, care_manager_id and consultant_id (what the flags and the tasks
    read). `schedules`: the patient's active schedules (instrument, every_days, start_on,
    end_on) when the caller read them already (a check-in's sync: one statement fewer)."""
    needed = frozenset().union(*(FLAG_FACTS[code] for code in only))
    assert needed <= EPISODE_FACTS, needed
    zone = ZoneInfo(tz)
    lib = library()
    # The session's connection (after writing what the session holds, as autoflush would):
    # these return plain rows, so the ORM's work per statement (its execution context, its
    # result wrapping) buys nothing here.
    connection = core(session)
    weeks = (today - episode.started_on).days // 7
    review_cue = False
    codes = instruments_of(episode.program)
    main = lib.get(codes[0]) if "scores" in needed else None
    if "schedules" in needed and schedules is None:
        schedules = connection.execute(_SCHEDULES, {"patient": patient.id}).all()
    completed: dict[str, list[date]] = defaultdict(list)
    opened = tomorrow = None
    if "schedules" in needed and schedules:
        longest = max(s.every_days for s in schedules)
        opened = datetime.combine(today - timedelta(days=longest + 7), datetime.min.time(), zone)
        tomorrow = datetime.combine(today + timedelta(days=1), datetime.min.time(), zone)
    scored: list[tuple[Any, Any, datetime]] | None = None
    if main is not None and main.main_score is not None:
        observation = observation_code(main, main.main_score)[0]
        bound = {"patient": patient.id, "started": episode.started_on}
        if opened is not None:
            # The scores and the check-ins done in one statement (a check-in's usual case).
            scored = []
            for kind, value, band, at, instrument in connection.execute(
                _scores_and_completed(codes[0], main.main_score.id, observation),
                {**bound, "opened": opened, "tomorrow": tomorrow},
            ):
                if kind == "s":
                    scored.append((value, band, at))
                else:
                    completed[instrument].append(_local_date(at, zone))
            scored.sort(key=lambda s: s[2])
            opened = None  # read
        else:
            scored = list(
                connection.execute(
                    _first_and_latest(codes[0], main.main_score.id, observation), bound
                )
            )
    if main is not None:
        points = [
            Point(_local_date(effective_at, zone), value, band)
            for value, band, effective_at in scored or []
        ]
        review_cue = progress(
            main, points, treatment_start=episode.started_on, today=today
        ).review_cue
    overdue: list[str] = []
    if "schedules" in needed:
        assert schedules is not None
        if opened is not None:
            for instrument, completed_at in connection.execute(
                _COMPLETED, {"patient": patient.id, "opened": opened, "tomorrow": tomorrow}
            ):
                completed[instrument].append(_local_date(completed_at, zone))
        for schedule in schedules:
            state = schedule_state(
                start_on=schedule.start_on,
                every_days=schedule.every_days,
                end_on=schedule.end_on,
                completed_on=completed.get(schedule.instrument, []),
                today=today,
                count_missed=False,
            )
            if state.status == "overdue":
                overdue.append(schedule.instrument)
    facts = CaseFacts(
        today=today,
        status=episode.status,
        started_on=episode.started_on,
        weeks=weeks,
        review_cue=review_cue,
        checkins_overdue=sorted(overdue),
    )
    return FlagRow(episode, patient, [f for f in flags(facts) if f.code in only])


@dataclass(frozen=True)
class _PlanFacts:
    review: str = "not_scheduled"
    next_review_on: date | None = None
    awaiting_agreement: bool = False


_NO_PLAN = _PlanFacts()


def _plan_facts(session: Session, ids: list[uuid.UUID], today: date) -> dict[uuid.UUID, _PlanFacts]:
    """Each patient's current plan: its review state and whether both parties agreed to its
    latest substantive revision (the same rules as concord.careplans.service)."""
    current = {
        row.id: row
        for row in session.execute(
            select(
                CarePlan.id,
                CarePlan.patient_id,
                CarePlan.status,
                CarePlan.next_review_on,
                CarePlan.substantive_revision_number,
            ).where(
                among(session, CarePlan.patient_id, ids),
                CarePlan.status.in_([str(s) for s in CURRENT_PLAN_STATUSES]),
            )
        )
    }
    agreed: dict[uuid.UUID, set[str]] = defaultdict(set)
    if current:
        for plan_id, party, revision in session.execute(
            select(PlanAgreement.plan_id, PlanAgreement.party, PlanAgreement.revision_number).where(
                among(session, PlanAgreement.plan_id, current)
            )
        ):
            if revision >= current[plan_id].substantive_revision_number:
                agreed[plan_id].add(party)
    both = {AgreementParty.patient.value, AgreementParty.lead_clinician.value}
    return {
        row.patient_id: _PlanFacts(
            review=review_state(row, today),  # type: ignore[arg-type]
            next_review_on=row.next_review_on,
            awaiting_agreement=not both <= agreed[plan_id],
        )
        for plan_id, row in current.items()
    }


# --- the page: sort, filter, remember ----------------------------------------------------------

SORTS = {
    "patient": lambda r: (r.patient.family_name.lower(), r.patient.given_name.lower()),
    "program": lambda r: r.episode.program,
    "episode": lambda r: r.episode.status,
    "weeks": lambda r: r.weeks,
    **{
        f"{key}_{which}": (
            (lambda r, c=code: _change(r, c))
            if which == "change"
            else (lambda r, c=code, w=which: _value(r, c, w))
        )
        for code, key in INSTRUMENT_KEYS.items()
        for which in ("first", "latest", "change")
    },
    "status": lambda r: r.status,
    "last_contact": lambda r: r.last_contact or date.min,
    "next_due": lambda r: r.next_due,
    "contacts": lambda r: r.contacts,
    "alerts": lambda r: r.open_alerts,
    "review": lambda r: r.review,
    "plan_review": lambda r: r.plan_review_on or date.max,
    "flags": lambda r: len(r.flags),
}

# Each sort in words, for the sort menu (never its key).
SORT_LABELS: dict[str, Msg] = {
    "patient": Msg("Name"),
    "program": Msg("Program"),
    "episode": Msg("Episode status"),
    "weeks": Msg("Weeks in care"),
    **{
        f"{key}_{which}": Msg(words, instrument=code)
        for code, key in INSTRUMENT_KEYS.items()
        for which, words in (
            ("first", N_("%(instrument)s: first score")),
            ("latest", N_("%(instrument)s: latest score")),
            ("change", N_("%(instrument)s: how much lower")),
        )
    },
    "status": Msg("Progress against target"),
    "last_contact": Msg("Last contact"),
    "next_due": Msg("Next contact due"),
    "contacts": Msg("Number of contacts"),
    "alerts": Msg("Open safety alerts"),
    "review": Msg("Psychiatric review"),
    "plan_review": Msg("Plan review due"),
    "flags": Msg("Number of flags"),
}

# The columns a person may hide (the patient's name is always shown), in the page's order.
COLUMNS: dict[str, Msg] = {
    "flags": Msg("Flags"),
    "weeks": Msg("Weeks"),
    "measures": Msg("Scores (the program's measures)"),
    "status": Msg("Against target"),
    "contacts": Msg("Contacts"),
    "alerts": Msg("Open alerts"),
    "review": Msg("Psychiatric review"),
    "plan_review": Msg("Plan review due"),
}


def sorts_for(instruments: Sequence[str]) -> list[str]:
    """The sorts worth offering: the instrument sorts only for the instruments shown."""
    keys = {INSTRUMENT_KEYS[c] for c in instruments}
    return [
        s
        for s in SORTS
        if s.split("_")[0] not in INSTRUMENT_KEYS.values() or s.split("_")[0] in keys
    ]


def _value(row: CaseRow, code: str, which: str) -> float:
    measure = row.measures.get(code)
    point = getattr(measure, which) if measure else None
    return point.value if point else -1.0


def _change(row: CaseRow, code: str) -> float:
    measure = row.measures.get(code)
    return measure.change_percent if measure and measure.change_percent is not None else -1000.0


@dataclass
class View:
    sort: str = "flags"
    descending: bool = True
    flags: tuple[str, ...] = ()
    programs: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    columns: tuple[str, ...] = tuple(COLUMNS)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sort": self.sort,
            "descending": self.descending,
            "flags": list(self.flags),
            "programs": list(self.programs),
            "statuses": list(self.statuses),
            "columns": list(self.columns),
        }


def view_from(values: dict[str, Any], base: View | None = None) -> View:
    """A view from query parameters (or a saved preference); unknown values are dropped."""
    base = base or View()

    def many(name: str, allowed: Iterable[str], default: tuple[str, ...]) -> tuple[str, ...]:
        if name not in values:
            return default
        raw = values[name]
        items = raw if isinstance(raw, list) else [v for v in str(raw).split(",") if v]
        return tuple(v for v in items if v in set(allowed))

    sort = values.get("sort", base.sort)
    return View(
        sort=sort if sort in SORTS else base.sort,
        descending=str(values.get("descending", base.descending)).lower() in ("1", "true", "yes"),
        flags=many("flags", FLAG_CODES, base.flags),
        programs=many("programs", [p.value for p in Program], base.programs),
        statuses=many(
            "statuses", ["awaiting_first_contact", "active", "relapse_prevention"], base.statuses
        ),
        columns=many("columns", COLUMNS, base.columns),
    )


def apply_view(rows: list[CaseRow], view: View) -> list[CaseRow]:
    shown = [
        r
        for r in rows
        if (not view.flags or r.flag_codes & set(view.flags))
        and (not view.programs or r.episode.program in view.programs)
        and (not view.statuses or r.episode.status in view.statuses)
    ]
    key = SORTS[view.sort]
    # A stable secondary order: the patient's name.
    shown.sort(key=SORTS["patient"])
    shown.sort(key=key, reverse=view.descending)
    return shown


def list_caseload(
    session: Session, *, by: User, scope: str, view: View
) -> tuple[list[CaseRow], list[CaseRow]]:
    """(every row of the caseload, the rows the view shows), each row audited as seen. The one
    read the caseload page, its CSV and the JSON API share."""
    org = session.get(Organization, by.organization_id)
    assert org is not None

    today = org_today(org)
    # Each patient's facts pass the disclosure decision (consent, Part 2: `_decide`).
    rows = build_rows(
        session, open_episodes(session, by, scope=scope), today=today, tz=org.timezone, by=by
    )
    shown = apply_view(rows, view)
    for row in shown:
        record(
            session,
            by=by,
            action="list",
            object_type="Episode",
            object_id=row.episode.id,
            patient_id=row.patient.id,
        )
    return rows, shown


caseload = list_caseload  # the older name, still used by the JSON API


# --- a person's saved view of the caseload -------------------------------------------------------

VIEW_KEY = "registry.caseload"


def get_saved_view(session: Session, by: User) -> View:
    """The view this person saved (their own preference; nobody else's), or the default."""
    saved = session.get(UserPreference, (by.id, VIEW_KEY))
    return view_from(saved.value) if saved else View()


def save_view(session: Session, by: User, view: View) -> None:
    """Remember this person's view, so the page opens the same way next time."""
    saved = session.get(UserPreference, (by.id, VIEW_KEY))
    if saved is None:
        session.add(
            UserPreference(user_id=by.id, key=VIEW_KEY, value=view.as_dict(), updated_at=now())
        )
    else:
        saved.value = view.as_dict()
        saved.updated_at = now()
