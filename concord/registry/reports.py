"""The month's minutes and billing codes, and the clinic's program view.

Minutes: every contact's minutes, per patient, per calendar month, by role. The collaborative-
care codes count the behavioral health care manager's minutes (the care manager role); the
psychiatric consultant's minutes are shown beside them but not counted, following the codes'
wording ("behavioral health care manager activities"). A payer that counts differently is a
setting for later; see docs/clinical-sources.md.

Who sees what: an administrator sees the organization's (optionally one clinic's) minutes,
names and codes only, no clinical content; a clinician sees the rows of patients on their care
teams. The program view is counts and rates only, no names.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.orm import Session

from concord.accounts.models import Clinic, Organization, Role, User
from concord.audit.service import record
from concord.dates import org_today
from concord.db import days_before
from concord.errors import InvalidInput, PermissionDenied
from concord.i18n import Msg
from concord.measures.models import MeasureObservation
from concord.patients.models import CareTeam, CareTeamMember, Patient
from concord.registry.models import (
    REACHED,
    Contact,
    Episode,
    EpisodeStatus,
    Program,
)
from concord.registry.rules import MonthCodes, codes_for_month, next_month

BHCM_ROLES = (Role.care_manager.value,)
CONSULTANT_ROLES = (Role.psychiatric_consultant.value,)


def parse_month(value: str | None, on: date) -> date:
    if not value:
        return on.replace(day=1)
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise InvalidInput.field("month", Msg("must be a month written as YYYY-MM")) from None


def _months_before(month: date, count: int) -> date:
    year, index = divmod(month.year * 12 + month.month - 1 - count, 12)
    return date(year, index + 1, 1)


def _visible_patients(by: User) -> Any:
    """Rows of patients on this clinician's teams; an administrator sees the organization."""
    if by.can_administer and not by.is_clinician:
        return None
    return exists().where(
        and_(
            CareTeam.patient_id == Patient.id,
            CareTeamMember.care_team_id == CareTeam.id,
            CareTeamMember.user_id == by.id,
            CareTeamMember.ended_at.is_(None),
        )
    )


def _check_reader(by: User) -> None:
    if not (by.is_clinician or by.can_administer) or not by.active:
        raise PermissionDenied(Msg("The registry is for clinicians and administrators."))


@dataclass
class MinutesRow:
    patient_id: uuid.UUID
    patient_name: str
    mrn: str
    clinic: str
    program: str
    episode_started: date
    initial: bool
    care_manager_minutes: int
    consultant_minutes: int
    other_minutes: int
    contacts: int
    codes: MonthCodes

    @property
    def code_text(self) -> str:
        return " + ".join(f"{c}" if n == 1 else f"{c} x{n}" for c, n in self.codes.codes)


@dataclass
class MinutesReport:
    month: date
    clinic: Clinic | None
    rows: list[MinutesRow]
    totals: dict[str, int] = field(default_factory=dict)


def minutes_report(
    session: Session, *, by: User, month: date, clinic_id: uuid.UUID | None = None
) -> MinutesReport:
    _check_reader(by)
    end = next_month(month)
    query = (
        select(Contact.episode_id, Contact.role, Contact.minutes, Episode, Patient, Clinic.name)
        .join(Episode, Episode.id == Contact.episode_id)
        .join(Patient, Patient.id == Contact.patient_id)
        .join(Clinic, Clinic.id == Episode.clinic_id)
        .where(
            Contact.organization_id == by.organization_id,
            Contact.voided_at.is_(None),
            Contact.occurred_on >= month,
            Contact.occurred_on < end,
        )
    )
    visible = _visible_patients(by)
    if visible is not None:
        query = query.where(visible)
    clinic = None
    if clinic_id is not None:
        clinic = session.get(Clinic, clinic_id)
        if clinic is None or clinic.organization_id != by.organization_id:
            raise InvalidInput.field("clinic", Msg("must be one of this organization's clinics"))
        query = query.where(Episode.clinic_id == clinic_id)
    per: dict[uuid.UUID, dict[str, Any]] = {}
    for episode_id, role, minutes, episode, patient, clinic_name in session.execute(query):
        entry = per.setdefault(
            episode_id,
            {
                "episode": episode,
                "patient": patient,
                "clinic": clinic_name,
                "cm": 0,
                "psy": 0,
                "other": 0,
                "n": 0,
            },
        )
        key = "cm" if role in BHCM_ROLES else ("psy" if role in CONSULTANT_ROLES else "other")
        entry[key] += minutes
        entry["n"] += 1
    # The initial month (99492) is a month with care-manager minutes after at least six
    # calendar months without any (AMA episode definition, via NC Medicaid): the first month
    # of a patient's collaborative care, or of a new episode after a long enough break.
    window_start = _months_before(month, 6)
    earlier = (
        {
            patient_id
            for (patient_id,) in session.execute(
                select(Contact.patient_id)
                .where(
                    Contact.patient_id.in_([e["patient"].id for e in per.values()]),
                    Contact.voided_at.is_(None),
                    Contact.role.in_(BHCM_ROLES),
                    Contact.minutes > 0,
                    Contact.occurred_on >= window_start,
                    Contact.occurred_on < month,
                )
                .distinct()
            )
        }
        if per
        else set()
    )
    rows = []
    totals: dict[str, int] = defaultdict(int)
    for entry in per.values():
        initial = entry["cm"] > 0 and entry["patient"].id not in earlier
        codes = codes_for_month(entry["cm"], initial=initial)
        for code, units in codes.codes:
            totals[code] += units
        patient = entry["patient"]
        rows.append(
            MinutesRow(
                patient_id=patient.id,
                patient_name=patient.display_name,
                mrn=patient.mrn,
                clinic=entry["clinic"],
                program=entry["episode"].program,
                episode_started=entry["episode"].started_on,
                initial=initial,
                care_manager_minutes=entry["cm"],
                consultant_minutes=entry["psy"],
                other_minutes=entry["other"],
                contacts=entry["n"],
                codes=codes,
            )
        )
    rows.sort(key=lambda r: (r.clinic, r.patient_name.lower()))
    for row in rows:
        record(
            session,
            by=by,
            action="report",
            object_type="Minutes",
            patient_id=row.patient_id,
            detail={"month": month.isoformat()},
        )
    return MinutesReport(month, clinic, rows, dict(totals))


# --- the program view --------------------------------------------------------------------------


@dataclass
class ProgramView:
    on: date
    clinic: Clinic | None
    by_status: dict[str, int]
    open_episodes: int
    contacted_30_days: int
    with_follow_up_measure: int
    band_10_24: int  # PHQ-9-judged episodes at 10-24 weeks with a baseline and a later score
    responded: int
    remitted: int
    caseloads: list[tuple[str, int]]

    @staticmethod
    def percent(part: int, whole: int) -> float | None:
        return round(100 * part / whole, 1) if whole else None


def program_view(session: Session, *, by: User, clinic_id: uuid.UUID | None = None) -> ProgramView:
    """Counts by status; the share contacted in the last 30 days and with a follow-up measure;
    response and remission at 10-24 weeks (PHQ-9: 50% lower than baseline; below 5); caseload
    size per care manager. No patient is named."""
    _check_reader(by)
    org = session.get(Organization, by.organization_id)
    assert org is not None
    on = org_today(org)
    clinic = None
    if clinic_id is not None:
        clinic = session.get(Clinic, clinic_id)
        if clinic is None or clinic.organization_id != by.organization_id:
            raise InvalidInput.field("clinic", Msg("must be one of this organization's clinics"))
    by_status = {s.value: 0 for s in EpisodeStatus}
    status_query = select(Episode.status, func.count()).where(
        Episode.organization_id == by.organization_id
    )
    if clinic_id is not None:
        status_query = status_query.where(Episode.clinic_id == clinic_id)
    for status, count in session.execute(status_query.group_by(Episode.status)):
        by_status[status] = count
    # Everything below is counted by the database: at 100,000 patients, bringing the rows to
    # Python (ids, dates, ~1.3 million PHQ-9 scores) took seconds; the aggregates take a
    # fraction of that (bench: concord bench, "program outcome figures").
    scope = [Episode.organization_id == by.organization_id, Episode.ended_on.is_(None)]
    if clinic_id is not None:
        scope.append(Episode.clinic_id == clinic_id)
    open_count = session.scalar(select(func.count()).select_from(Episode).where(*scope)) or 0
    # Contacts of the last 30 days first (index on organization and date), then whether
    # their episode is in scope: far fewer lookups than one per open episode.
    contacted_count = (
        session.scalar(
            select(func.count(func.distinct(Contact.episode_id))).where(
                Contact.organization_id == by.organization_id,
                Contact.occurred_on > on - timedelta(days=30),
                Contact.voided_at.is_(None),
                Contact.kind.in_([k.value for k in REACHED]),
                Contact.episode_id.in_(select(Episode.id).where(*scope)),
            )
        )
        or 0
    )
    # PHQ-9 totals (LOINC 44261-6) from 30 days before each episode began.
    scores_scope = [
        *scope,
        MeasureObservation.code == "44261-6",
        MeasureObservation.effective_at >= days_before(Episode.started_on, 30),
    ]
    two_or_more = (
        select(MeasureObservation.patient_id)
        .join(Episode, Episode.patient_id == MeasureObservation.patient_id)
        .where(*scores_scope)
        .group_by(MeasureObservation.patient_id)
        .having(func.count() >= 2)
        .subquery()
    )
    follow_up = session.scalar(select(func.count()).select_from(two_or_more)) or 0
    # At 10-24 weeks (70-174 days), depression and co-occurring: first and latest score.
    # One window (each patient's scores in time order, the whole partition as the frame), so
    # the database sorts the scores once, not once per figure.
    window = {
        "partition_by": MeasureObservation.patient_id,
        "order_by": MeasureObservation.effective_at,
        "rows": (None, None),
    }
    ends = (
        select(
            func.first_value(MeasureObservation.value).over(**window).label("first"),
            func.last_value(MeasureObservation.value).over(**window).label("latest"),
            func.count().over(**window).label("n"),
            func.row_number().over(**window).label("rn"),
        )
        .join(Episode, Episode.patient_id == MeasureObservation.patient_id)
        .where(
            *scores_scope,
            Episode.program.in_([Program.depression.value, Program.co_occurring.value]),
            Episode.started_on.between(on - timedelta(days=174), on - timedelta(days=70)),
        )
        .subquery()
    )
    band, responded, remitted = session.execute(
        select(
            func.count(),
            func.sum(
                case(
                    (
                        and_(
                            ends.c.first > 0,
                            (ends.c.first - ends.c.latest) >= ends.c.first * 0.5,
                        ),
                        1,
                    ),
                    else_=0,
                )
            ),
            func.sum(case((ends.c.latest < 5, 1), else_=0)),
        ).where(ends.c.rn == 1, ends.c.n >= 2)
    ).one()
    band, responded, remitted = band or 0, responded or 0, remitted or 0
    sizes = dict(
        session.execute(
            select(Episode.care_manager_id, func.count())
            .where(*scope)
            .group_by(Episode.care_manager_id)
        ).all()
    )
    names = (
        {u.id: u.name for u in session.scalars(select(User).where(User.id.in_(list(sizes))))}
        if sizes
        else {}
    )
    record(
        session,
        by=by,
        action="report",
        object_type="ProgramView",
        detail={"clinic": str(clinic_id) if clinic_id else None},
    )
    return ProgramView(
        on=on,
        clinic=clinic,
        by_status=by_status,
        open_episodes=open_count,
        contacted_30_days=contacted_count,
        with_follow_up_measure=follow_up,
        band_10_24=band,
        responded=responded,
        remitted=remitted,
        caseloads=sorted(
            ((names.get(k, "?"), v) for k, v in sizes.items()), key=lambda x: (-x[1], x[0])
        ),
    )
