"""A patient's medication list (issue 19): the medications, what the patient reports they
actually take, the safety findings the checker raised on the whole list, and the reasons a
clinician gave for going ahead despite one (overrides).

Every row carries the RxNorm ingredient(s) it is about, so its data category is its own: a
medication for opioid use disorder (buprenorphine, methadone, naltrexone: the vocabulary's
`moud` class) is substance-use treatment, anything else general mental-health care. Whether a
row is a 42 CFR Part 2 record is for concord/part2/rules.yaml to decide.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.accounts.models import User
from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin, JSONType
from concord.medications.vocabulary import default_vocabulary

MOUD_CLASS = "moud"


def category_of_rxcuis(rxcuis: str | None) -> DataCategory:
    """Substance-use treatment when any ingredient is a medication for opioid use disorder
    (whatever its code check: a record is labelled more, never less), else mental health."""
    vocabulary = default_vocabulary()
    for rxcui in (rxcuis or "").split():
        entry = vocabulary.entry(rxcui)
        if entry is not None and MOUD_CLASS in entry.classes:
            return DataCategory.substance_use
    return DataCategory.mental_health


class _ByIngredient:
    @property
    def data_category(self) -> DataCategory:
        return category_of_rxcuis(self.rxcuis)  # type: ignore[attr-defined]


class MedicationStatus(StrEnum):
    active = "active"
    on_hold = "on_hold"
    stopped = "stopped"


class MedicationSource(StrEnum):
    prescribed = "prescribed"  # prescribed here, by a clinician on the team
    patient_reported = "patient_reported"  # "I take this" (over the counter included)
    ehr = "ehr"  # prescribed elsewhere, imported from an EHR (FHIR MedicationRequest create)
    # What the patient takes as an EHR recorded it (FHIR MedicationStatement create).
    ehr_statement = "ehr_statement"


class ReportKind(StrEnum):
    taking = "taking"  # "I take this" about a medication on the list
    stopped = "stopped"  # "I stopped this"
    # At a check-in (issue 19): what was missed and why, which effects bother them, a question
    # for the prescriber. None of these is a difference from the list.
    adherence = "adherence"
    side_effects = "side_effects"
    question = "question"


CHECKIN_KINDS = (ReportKind.adherence, ReportKind.side_effects, ReportKind.question)


class Medication(_ByIngredient, IdMixin, Base):
    """One medication on a patient's list (FHIR MedicationRequest when prescribed here or in
    an EHR, MedicationStatement when the patient reported it)."""

    __tablename__ = "medication"
    __table_args__ = (Index("ix_medication_patient_status", "patient_id", "status"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    # RxNorm: the ingredient (term type IN) and, where known, the clinical drug (SCD).
    rxcui: Mapped[str | None] = mapped_column(String(20))
    drug_rxcui: Mapped[str | None] = mapped_column(String(20))
    # The name as written (the vocabulary's name, or the patient's words when not coded).
    name: Mapped[str] = mapped_column(String(200))
    dose: Mapped[str | None] = mapped_column(String(100))
    route: Mapped[str | None] = mapped_column(String(40))
    frequency: Mapped[str | None] = mapped_column(String(100))
    started_on: Mapped[date | None]
    stopped_on: Mapped[date | None]
    indication_concern_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("concern.id"))
    status: Mapped[str] = mapped_column(String(20), default=MedicationStatus.active)
    status_reason: Mapped[str | None] = mapped_column(String(500))
    prescriber_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    source: Mapped[str] = mapped_column(String(20), default=MedicationSource.prescribed)
    over_the_counter: Mapped[bool] = mapped_column(default=False)
    # A patient-reported medication stays flagged to the team until someone on it reviews it.
    reviewed_at: Mapped[datetime | None]
    reviewed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    # The identifier an EHR gave it (FHIR create), for replays.
    external_id: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=now)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    updated_at: Mapped[datetime] = mapped_column(default=now)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))

    prescriber: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[prescriber_id])

    @property
    def rxcuis(self) -> str:
        return self.rxcui or ""

    @property
    def reported(self) -> bool:
        """What someone says the patient takes (FHIR MedicationStatement), not an order
        (FHIR MedicationRequest)."""
        return self.source in (MedicationSource.patient_reported, MedicationSource.ehr_statement)


class MedicationReport(_ByIngredient, IdMixin, Base):
    """What the patient says about a medication on their list ("I take this", "I stopped
    this"). A difference from the list is flagged to the team until someone resolves it; the
    list itself is never changed by a report (flag, never guess)."""

    __tablename__ = "medication_report"
    __table_args__ = (Index("ix_medication_report_patient", "patient_id", "resolved_at"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    medication_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("medication.id"))
    rxcui: Mapped[str | None] = mapped_column(String(20))  # the medication's, for its category
    kind: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(String(500))
    # adherence: doses missed in the last 7 days (the note says why); side_effects: the
    # effects that bother them, in their words.
    missed_doses: Mapped[int | None] = mapped_column(Integer)
    effects: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=now)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    resolution: Mapped[str | None] = mapped_column(String(500))

    @property
    def rxcuis(self) -> str:
        return self.rxcui or ""


class MedicationFinding(_ByIngredient, IdMixin, Base):
    """A safety finding on the patient's list, kept as the checker worded it when it was
    raised (rule, severity, reason, what to do, source). A finding that no longer fires is
    marked resolved, never deleted; one that fires again is the same row, reopened."""

    __tablename__ = "medication_finding"
    __table_args__ = (UniqueConstraint("patient_id", "key"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    key: Mapped[str] = mapped_column(String(200))  # rule id and the ingredients involved
    rule_id: Mapped[str] = mapped_column(String(60))
    rules_version: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(20))
    rxcuis: Mapped[str] = mapped_column(String(200))  # space-separated, the `a` side first
    title: Mapped[str] = mapped_column(String(300))
    title_es: Mapped[str | None] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    source_citation: Mapped[str] = mapped_column(Text)
    source_url: Mapped[str] = mapped_column(String(500))
    never_block: Mapped[bool] = mapped_column(default=False)
    first_found_at: Mapped[datetime] = mapped_column(default=now)
    last_checked_at: Mapped[datetime] = mapped_column(default=now)  # the last check that changed it
    resolved_at: Mapped[datetime | None]  # no longer fires (a medication stopped)
    overridden_at: Mapped[datetime | None]  # the latest override, while open

    @property
    def open(self) -> bool:
        return self.resolved_at is None


class FindingOverride(_ByIngredient, IdMixin, Base):
    """A clinician going ahead despite a finding, with the reason (audited; the finding
    stays on the list, marked overridden)."""

    __tablename__ = "medication_finding_override"

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    finding_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("medication_finding.id"))
    finding_key: Mapped[str] = mapped_column(String(200))
    rxcuis: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=now)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))

    created_by: Mapped[User] = relationship(lazy="joined", foreign_keys=[created_by_id])


class ProtocolEntry(_ByIngredient, IdMixin, Base):
    """One line of a patient's joint prescribing protocol (part of the care plan): for a
    medication or class, who prescribes, what is monitored by whom and how often, and who must
    be told of a change. What to monitor and how often is the team's entry, not a default
    Concord ships."""

    __tablename__ = "prescribing_protocol"
    __table_args__ = (Index("ix_prescribing_protocol_due", "ended_at", "next_due_on"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), index=True)
    medication_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("medication.id"))
    rxcui: Mapped[str | None] = mapped_column(String(20))  # the medication's, for its category
    about: Mapped[str] = mapped_column(String(200))  # the medication or class, as written
    prescriber_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    monitoring: Mapped[str | None] = mapped_column(String(200))  # e.g. "ECG (QTc)"
    monitor_owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    every_days: Mapped[int | None] = mapped_column(Integer)
    last_done_on: Mapped[date | None]
    next_due_on: Mapped[date | None]
    # Who must be told of a change to the medication (user ids, as text).
    tell: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(default=now)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    ended_at: Mapped[datetime | None]

    prescriber: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[prescriber_id])
    monitor_owner: Mapped[User | None] = relationship(
        lazy="joined", foreign_keys=[monitor_owner_id]
    )

    @property
    def rxcuis(self) -> str:
        return self.rxcui or ""


class MoudKind(StrEnum):
    """What a MOUD record says happened (issue 19, "MOUD and overdose risk")."""

    induction = "induction"  # started or inducted on a medication for opioid use disorder
    pdmp_check = "pdmp_check"  # the state prescription drug monitoring program was checked
    urine_drug_test = "urine_drug_test"
    naloxone_prescribed = "naloxone_prescribed"
    naloxone_dispensed = "naloxone_dispensed"
    missed_dose = "missed_dose"  # missed doses reported (by the patient or the dispensing site)
    missed_visit = "missed_visit"
    # The facts the overdose-risk rules read (concord/medications/overdose-rules.yaml).
    return_to_use = "return_to_use"  # opioid use again after a period of abstinence
    release = "release"  # release from prison or jail, or discharge from a residential stay
    overdose = "overdose"  # an overdose (non-fatal), as recorded


RELEASE_FROM = ("prison", "residential")


class MoudRecord(IdMixin, Base):
    """One dated fact of a patient's opioid use disorder treatment: an induction, a PDMP check
    (who checked, the result as recorded), a urine drug test (the result as recorded), naloxone
    prescribed or dispensed, missed doses or visits reported, and the facts the overdose-risk
    rules read. Results are kept as written: Concord interprets none of them.

    Always substance-use treatment (a record of a patient's opioid use disorder care); whether
    it is a 42 CFR Part 2 record is for concord/part2/rules.yaml to decide."""

    __tablename__ = "moud_record"
    __table_args__ = (Index("ix_moud_record_patient_kind", "patient_id", "kind", "on"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    medication_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("medication.id"))
    kind: Mapped[str] = mapped_column(String(30))
    on: Mapped[date]
    # Who did it (the PDMP check's clinician), when someone on the team did.
    performed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    detail: Mapped[str | None] = mapped_column(String(40))  # release: prison or residential
    dose: Mapped[str | None] = mapped_column(String(100))  # induction: the dose as written
    result: Mapped[str | None] = mapped_column(String(500))  # as recorded (PDMP, UDT)
    count: Mapped[int | None] = mapped_column(Integer)  # missed doses or visits
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=now)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))

    performed_by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[performed_by_id])

    @property
    def data_category(self) -> DataCategory:
        return DataCategory.substance_use


class OverdoseRiskHit(IdMixin, Base):
    """An overdose-risk rule that fired for a patient, and the safety alert it raised: one per
    rule and cause (`key`), so a nightly recheck never raises the same alert twice. A
    combination on the list that goes away is marked resolved; if it comes back, the row is
    reopened and a new alert raised."""

    __tablename__ = "overdose_risk_hit"
    __table_args__ = (UniqueConstraint("patient_id", "key"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    key: Mapped[str] = mapped_column(String(200))
    rule_id: Mapped[str] = mapped_column(String(60))
    alert_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("safety_alert.id"))
    raised_at: Mapped[datetime] = mapped_column(default=now)
    resolved_at: Mapped[datetime | None]

    @property
    def data_category(self) -> DataCategory:
        return DataCategory.substance_use
