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
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from concord.accounts.models import User
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.ehr import service as ehr
from concord.errors import NotFound
from concord.i18n import Msg
from concord.patients.service import lead_of, list_my_patients
from concord.quality import catalog, stats


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
