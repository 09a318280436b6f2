"""Quality measures (CMS159, CMS2) over the EHR's data: `$evaluate-measure` for every door.

The measures are pure functions (concord.quality); the patients' resources come from the EHR
import store's reads (concord.ehr.service), which decide who may read whom: an integration
client with the quality scope reads the organization's patients (for operations), a clinician
the patients of their care teams, with consent and 42 CFR Part 2 applied per record. Every
patient read is audited by those reads; the evaluation itself is audited here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import team_access
from concord.accounts.models import User
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.dates import org_today
from concord.ehr import service as ehr
from concord.errors import NotFound
from concord.i18n import Msg
from concord.measures import service as measures
from concord.patients.service import lead_of, list_my_patients
from concord.quality import catalog, cms159, process, stats
from concord.registry import reviews as registry_reviews
from concord.registry import service as registry
from concord.registry.models import Program, ReviewStatus
from concord.registry.rules import FOLLOW_UP_WITHIN_DAYS


def _may_evaluate(by: User) -> bool:
    # An integration client (its scope is checked by the store's read) or a clinician; a
    # patient or a family member asks nothing of the population's measures.
    return by.active and (by.is_client or by.is_clinician)


def _subject_patient(session: Session, by: User, subject: str) -> uuid.UUID | str:
    """Patient/<id>: Concord's patient id, or the id the EHR sent its Patient under."""
    ident = subject.removeprefix("Patient/")
    # The EHR's own id first: an EHR's ids may be UUIDs too.
    found = ehr.patient_id_for_sender(session, organization_id=by.organization_id, sender_id=ident)
    if found is not None:
        return found
    try:
        return uuid.UUID(ident)
    except ValueError:
        return ident


def patients_for(
    session: Session,
    *,
    by: User,
    scopes: frozenset[str],
    patient_ids: Iterable[uuid.UUID] | None = None,
    having: Iterable[str] = (),
    audit: dict[str, Any] | None = None,
) -> Iterator[tuple[uuid.UUID, list[dict[str, Any]]]]:
    """Each patient `by` may read with their imported data for the measures, streamed by the
    store's population read (access and the consent/Part 2 decision per patient, one read
    event for the whole population); with `patient_ids`, only those."""
    wanted = set(patient_ids) if patient_ids is not None else None
    for pid, resources in ehr.population_resources(
        session,
        access=by,
        types=catalog.RESOURCE_TYPES,
        scopes=scopes,
        having=having,
        audit=audit,
    ):
        if wanted is None or pid in wanted:
            yield pid, resources


def evaluate_measure(
    session: Session,
    *,
    by: User,
    scopes: frozenset[str],
    measure_id: str,
    pairs: Iterable[tuple[str, str]],
) -> dict[str, Any]:
    """FHIR `$evaluate-measure`: a MeasureReport for one patient (subject) or for every
    patient the caller may read (population, subject-list)."""
    request = catalog.parse_parameters(measure_id, list(pairs))
    if not _may_evaluate(by):
        record(
            session,
            by=by,
            action="evaluate",
            object_type="Measure",
            object_id=measure_id,
            outcome=Outcome.denied,
        )
        raise NotFound(
            Msg("This server does not evaluate the measure %(measure)s.", measure=measure_id[:40])
        )
    if request.subject is not None:
        pid = _subject_patient(session, by, request.subject)
        resources = ehr.patient_resources(
            session, access=by, patient_id=pid, types=catalog.RESOURCE_TYPES, scopes=scopes
        )
        # The report names the patient as this server serves them.
        request = catalog.Request(
            request.measure_id,
            request.period_start,
            request.period_end,
            request.report_type,
            f"Patient/{pid}",
        )
        patients: Iterable[tuple[object, list[dict]]] = [(pid, resources)]
    else:
        # Streamed: each patient is evaluated as their rows arrive, none kept but the result;
        # patients the measure says are in none of its populations are not read.
        patients = patients_for(
            session,
            by=by,
            scopes=scopes,
            having=catalog.required_types(measure_id),
            audit={"measure": measure_id[:40]},
        )
    seen = 0

    def supplied() -> Iterator[tuple[object, list[dict]]]:
        nonlocal seen
        for item in patients:
            seen += 1
            yield item

    report = catalog.evaluate_measure(request, supplied)
    record(
        session,
        by=by,
        action="evaluate",
        object_type="Measure",
        object_id=measure_id,
        detail={"report": request.report_type, "patients": seen},
    )
    return report


# --- the Quality page: each measure over the patients the clinician may read ---------------


@dataclass(frozen=True)
class Rate:
    """One group's counts for one measure, the rate and its 95% Wilson interval."""

    label: str
    counts: dict[str, int]
    performance_denominator: int  # denominator - exclusions - exceptions
    numerator: int
    rate: float | None
    interval: tuple[float, float] | None
    too_small: bool


@dataclass(frozen=True)
class PatientRow:
    patient_id: uuid.UUID
    name: str
    mrn: str
    clinic: str
    clinician: str
    populations: dict[str, bool]

    @property
    def open(self) -> bool:
        """In the denominator, not excluded, not an exception, not in the numerator: the
        patients a care manager can act on."""
        p = self.populations
        return (
            p.get("denominator", False)
            and not p.get("denominator-exclusion", False)
            and not p.get("denominator-exception", False)
            and not p.get("numerator", False)
        )


@dataclass(frozen=True)
class MeasureView:
    measure_id: str
    title: str
    version: str
    populations: tuple[str, ...]
    overall: Rate
    by_clinic: list[Rate]
    by_clinician: list[Rate]
    patients: list[PatientRow]
    # The rate over rolling 12-month measurement periods, one ending at each month's end.
    trend: list[MonthPoint] = field(default_factory=list)


ROLLING_MONTHS = 12  # each trend point: the measure over the 12 months up to a month's end


def rolling_periods(period_start: date, period_end: date, today: date) -> list[tuple[date, date]]:
    """One measurement period of 12 months ending at each month's last day that falls in
    [period_start, period_end], up to the current month (its end, even if still ahead: the
    month to date)."""
    out = []
    month = date(period_start.year, period_start.month, 1)
    while month <= period_end and month <= today:
        end = process.add_months(month, 1) - timedelta(days=1)
        if end >= period_start:
            start = process.add_months(end + timedelta(days=1), -ROLLING_MONTHS)
            out.append((start, end))
        month = process.add_months(month, 1)
    return out


def _rate(label: str, counts: dict[str, int]) -> Rate:
    base = (
        counts.get("denominator", 0)
        - counts.get("denominator-exclusion", 0)
        - counts.get("denominator-exception", 0)
    )
    num = counts.get("numerator", 0)
    return Rate(
        label=label,
        counts=counts,
        performance_denominator=max(base, 0),
        numerator=num,
        rate=num / base if base > 0 else None,
        interval=stats.wilson_interval(num, base),
        too_small=stats.too_small(base),
    )


def _grouped(rows: list[PatientRow], key: str, populations: tuple[str, ...]) -> list[Rate]:
    groups: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = groups.setdefault(getattr(row, key), dict.fromkeys(populations, 0))
        for code in populations:
            counts[code] += 1 if row.populations.get(code) else 0
    return [_rate(label, counts) for label, counts in sorted(groups.items())]


def quality_overview(
    session: Session, *, by: User, period_start: date, period_end: date
) -> list[MeasureView]:
    """CMS159 and CMS2 over the patients of `by`'s care teams (a clinician; anyone else has
    none): counts overall, per clinic and per clinician (the care team's lead), and the
    patients in each population. Every patient read is audited by the store."""
    if not (by.active and by.is_clinician):
        record(session, by=by, action="evaluate", object_type="Measure", outcome=Outcome.denied)
        raise NotFound(Msg("No such page."))
    patients = {p.id: p for p in list_my_patients(session, by=by)}
    supplied = [(pid, res) for pid, res in patients_for(session, by=by, scopes=frozenset())]
    today = org_today(by.organization)
    leads = {pid: lead_of(session, patient_id=pid) for pid, _ in supplied}
    views = []
    for measure_id in catalog.measure_ids():
        request = catalog.Request(measure_id, period_start, period_end, "population", None)
        module = catalog.MODULES[measure_id]
        spec = module.spec_for(period_start)
        rows = []
        for pid, result in catalog.evaluate_patients(request, supplied):
            patient = patients.get(uuid.UUID(pid))
            if patient is None:
                continue
            lead = leads.get(patient.id)
            rows.append(
                PatientRow(
                    patient_id=patient.id,
                    name=patient.display_name,
                    mrn=patient.mrn,
                    clinic=patient.clinic.name,
                    clinician=lead.user.name if lead is not None else "",
                    populations={code: result[code] for code in module.POPULATIONS},
                )
            )
        rows.sort(key=lambda r: (not r.open, r.name))
        measure = catalog.measure_resource(measure_id)
        populations = tuple(module.POPULATIONS)
        counts = {c: sum(1 for r in rows if r.populations.get(c)) for c in populations}
        trend = []
        for start, end in rolling_periods(period_start, period_end, today):
            rolling = catalog.Request(measure_id, start, end, "population", None)
            month_counts = dict.fromkeys(populations, 0)
            for pid, result in catalog.evaluate_patients(rolling, supplied):
                if uuid.UUID(pid) in patients:
                    for code in populations:
                        month_counts[code] += 1 if result[code] else 0
            r = _rate("", month_counts)
            trend.append(
                MonthPoint(end.strftime("%Y-%m"), r.performance_denominator, r.numerator, r.rate)
            )
        views.append(
            MeasureView(
                measure_id=measure_id,
                title=str(measure.get("title") or measure_id),
                version=spec.version,
                populations=populations,
                overall=_rate("", counts),
                by_clinic=_grouped(rows, "clinic", populations),
                by_clinician=_grouped(rows, "clinician", populations),
                patients=[r for r in rows if r.populations.get("initial-population")],
                trend=trend,
            )
        )
    record(
        session,
        by=by,
        action="evaluate",
        object_type="Measure",
        detail={"report": "quality-page", "patients": len(supplied)},
    )
    return views


# --- the process measures: Concord's own registry data -----------------------------------------

# The rule the follow-up measure counts is the registry's own (concord.registry.rules).
assert process.FOLLOW_UP_DAYS == FOLLOW_UP_WITHIN_DAYS
PHQ9_PROGRAMS = (Program.depression.value, Program.co_occurring.value)
# The EHR's PHQ-9 totals (concord.ehr.PHQ9_CODES: the PHQ-9 and the PHQ-9 modified for
# teens, both counted by CMS159 and NQF 0712).
IMPORTED_PHQ9 = ("PHQ-9", "PHQ-9M")


@dataclass(frozen=True)
class MonthPoint:
    month: str  # YYYY-MM
    denominator: int
    numerator: int
    rate: float | None


@dataclass(frozen=True)
class ProcessMeasure:
    """One process measure: a proportion (rates with counts and intervals, overall, per clinic
    and clinician, and by month) or a number of days (count and median)."""

    measure: str
    kind: str  # "proportion" or "days"
    overall: Rate | None
    by_clinic: list[Rate]
    by_clinician: list[Rate]
    trend: list[MonthPoint]
    days_count: int = 0
    days_median: float | None = None
    days_within_28: int = 0


def _proportion_rate(label: str, tally: process.Tally) -> Rate:
    return _rate(
        label,
        {
            "denominator": tally.denominator + tally.excluded,
            "denominator-exclusion": tally.excluded,
            "numerator": tally.numerator,
        },
    )


def _episode_facts(
    session: Session, by: User, patient_id: uuid.UUID
) -> list[tuple[str, process.EpisodeFacts]]:
    """The patient's episodes as the process measures read them, through the registry's and
    the measures' reads (care team only; each read audited; PHQ-9 responses less what may not
    be disclosed to `by`)."""
    acc = team_access(session, by, patient_id, action="read", object_type="Episode")
    # Each kind of record as the caseload decides it (a Part 2 program's episode, its contacts
    # and reviews withheld without a permitting consent; the withholding audited).
    episodes = disclosure.filter_records(
        session, acc, registry.episodes_for(session, acc), object_type="Episode"
    )
    if not episodes:
        return []
    shown = {e.id for e in episodes}
    contacts = disclosure.filter_records(
        session,
        acc,
        [
            c
            for c in registry.contacts_for(session, acc)
            if c.voided_at is None and c.episode_id in shown
        ],
        object_type="Contact",
    )
    reviews = disclosure.filter_records(
        session,
        acc,
        [
            r
            for r in registry_reviews.reviews_for(session, acc)
            if r.status == ReviewStatus.reviewed
            and r.reviewed_on is not None
            and r.episode_id in shown
        ],
        object_type="CaseReview",
    )
    phq9 = []
    for r in measures.list_responses(session, access=acc, instrument_code="PHQ-9", limit=1000):
        total = (r.scores or {}).get("total") or {}
        value = total.get("value") if isinstance(total, dict) else None
        if r.completed_at is not None and isinstance(value, int | float):
            phq9.append((measures.local_date(session, acc.patient, r.completed_at), float(value)))
    # The EHR's PHQ-9 totals count too (issue 20), as sent; a total outside 0-27 is a data
    # error the patient's page flags, and is not counted.
    # The EHR's record (its hospice, palliative care, death, diagnoses) for the exclusions of
    # the measures built on CMS159; read as this clinician may (consent, Part 2), audited.
    exclusions = cms159.Exclusions(ehr.patient_record(session, access=acc))
    imported = ehr.imported_scores(session, access=acc)
    for code in IMPORTED_PHQ9:
        for score in imported.get(code, []):
            if score.on is not None and score.score is not None and not score.out_of_range:
                phq9.append((score.on, score.score))
    facts = []
    for ep in episodes:
        facts.append(
            (
                ep.clinic_id.hex,
                process.EpisodeFacts(
                    started_on=ep.started_on,
                    depression=ep.program in PHQ9_PROGRAMS,
                    contacts=[(c.occurred_on, c.kind) for c in contacts if c.episode_id == ep.id],
                    phq9=phq9,
                    reviews=[r.reviewed_on for r in reviews if r.episode_id == ep.id],
                    excluded=exclusions.reason,
                    excluded_utilization=exclusions.utilization_reason,
                ),
            )
        )
    return facts


def process_overview(
    session: Session, *, by: User, period_start: date, period_end: date
) -> list[ProcessMeasure]:
    """The process measures over the episodes of `by`'s care teams' patients (a clinician):
    overall, per clinic and per clinician (the care team's lead), and by month."""
    if not (by.active and by.is_clinician):
        record(
            session, by=by, action="report", object_type="ProcessMeasures", outcome=Outcome.denied
        )
        raise NotFound(Msg("No such page."))
    results: list[tuple[str, str, process.EpisodeResult]] = []
    for patient in list_my_patients(session, by=by):
        lead = lead_of(session, patient_id=patient.id)
        clinician = lead.user.name if lead is not None else ""
        for _clinic, facts in _episode_facts(session, by, patient.id):
            results.append(
                (patient.clinic.name, clinician, process.evaluate(facts, period_start, period_end))
            )
    out = []
    for measure in process.MEASURES:
        if measure in process.DAYS_MEASURES:
            values = [v for _, _, r in results for v in r.days]
            t = process.days_tally(values, measure)
            out.append(
                ProcessMeasure(measure, "days", None, [], [], [], t.count, t.median, t.within_28)
            )
            continue
        units = [u for _, _, r in results for u in r.units]
        groups: dict[str, dict[str, list[process.Unit]]] = {"clinic": {}, "clinician": {}}
        for clinic, clinician, r in results:
            groups["clinic"].setdefault(clinic, []).extend(r.units)
            groups["clinician"].setdefault(clinician, []).extend(r.units)
        trend = [
            MonthPoint(
                m.strftime("%Y-%m"),
                t.denominator,
                t.numerator,
                t.numerator / t.denominator if t.denominator else None,
            )
            for m, t in process.by_month(units, measure).items()
        ]
        out.append(
            ProcessMeasure(
                measure,
                "proportion",
                _proportion_rate("", process.tally(units, measure)),
                [
                    _proportion_rate(k, process.tally(v, measure))
                    for k, v in sorted(groups["clinic"].items())
                    if process.tally(v, measure).denominator
                ],
                [
                    _proportion_rate(k, process.tally(v, measure))
                    for k, v in sorted(groups["clinician"].items())
                    if process.tally(v, measure).denominator
                ],
                trend,
            )
        )
    record(
        session,
        by=by,
        action="report",
        object_type="ProcessMeasures",
        detail={"episodes": len(results)},
    )
    return out
