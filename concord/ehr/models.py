"""The imported resources and the patient matches a person must decide."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin


class EhrResource(IdMixin, Base):
    """One FHIR resource as an EHR sent it, under the sender's id (one per organization and
    type: a PUT of the same Type/id is a new version of it)."""

    __tablename__ = "ehr_resource"
    __table_args__ = (
        UniqueConstraint("organization_id", "resource_type", "sender_id"),
        Index("ix_ehr_resource_patient", "patient_id", "resource_type"),
        Index("ix_ehr_resource_patient_ref", "organization_id", "patient_ref"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    # The integration client that sent it (a user of role `client`).
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    resource_type: Mapped[str] = mapped_column(String(40))
    sender_id: Mapped[str] = mapped_column(String(64))
    # The Concord patient it is about; None while a doubtful match waits for a person, and for
    # resources about no patient (Organization, Practitioner).
    patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patient.id"))
    # The sender's id of the Patient it is about (the Patient itself for a Patient).
    patient_ref: Mapped[str | None] = mapped_column(String(64))
    # What kind of data it is (concord/ehr/categories.yaml decides, at import).
    category: Mapped[str] = mapped_column(String(32))
    resource: Mapped[dict[str, Any]]
    version: Mapped[int] = mapped_column(Integer, default=1)
    last_updated: Mapped[datetime] = mapped_column(default=now)
    created_at: Mapped[datetime] = mapped_column(default=now)

    @property
    def data_category(self) -> DataCategory | None:
        try:
            return DataCategory(self.category)
        except ValueError:
            return None


class MatchStatus(StrEnum):
    pending = "pending"
    same = "same"
    different = "different"


class EhrMatch(IdMixin, Base):
    """An imported Patient that looks like an existing patient (same name and birth date) but
    whose medical record number does not say so: held until a person decides."""

    __tablename__ = "ehr_match"
    data_category = DataCategory.general

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ehr_resource.id"), unique=True)
    # The existing patient it may be (named patient_id so the access rules see whose it is).
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), index=True)
    # Why it is doubtful: "mrn_missing" or "mrn_differs".
    reason: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default=MatchStatus.pending)
    created_at: Mapped[datetime] = mapped_column(default=now)
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    # The patient the imported record was linked to by the decision.
    linked_patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patient.id"))


class EhrImport(IdMixin, Base):
    """One Bundle an integration client sent and Concord imported (a transaction, or the
    entries of a batch that were stored): what it created and changed is kept in its items,
    so an administrator or the client can undo it (concord.actions.ehr_import.undo_import)."""

    __tablename__ = "ehr_import"
    __table_args__ = (Index("ix_ehr_import_org_created", "organization_id", "created_at"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    kind: Mapped[str] = mapped_column(String(12))  # transaction or batch
    entries: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=now)
    undone_at: Mapped[datetime | None]
    undone_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    undo_reason: Mapped[str | None] = mapped_column(String(500))


class EhrImportItem(IdMixin, Base):
    """One imported row an import created or changed, with what it was before a change."""

    __tablename__ = "ehr_import_item"

    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ehr_import.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    resource_type: Mapped[str] = mapped_column(String(40))
    sender_id: Mapped[str] = mapped_column(String(64))
    # True: the import created the row; False: it changed it (previous_* hold the row before).
    created: Mapped[bool] = mapped_column(Boolean)
    # The row's version after the import: a later import's change is a later version.
    version: Mapped[int] = mapped_column(Integer)
    previous: Mapped[dict[str, Any] | None]
    previous_category: Mapped[str | None] = mapped_column(String(32))
    previous_patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    previous_patient_ref: Mapped[str | None] = mapped_column(String(64))
    # A Concord patient the import registered for an imported Patient no one matched.
    registered_patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
