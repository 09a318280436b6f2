"""The rows of Bulk Data exports ($export): what was asked, by which token, and its files."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin


class ExportStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


class BulkExport(IdMixin, Base):
    """One $export request: what was asked, by which token, and how far the job is. It holds
    no clinical data (at most the ids of the patients a `patient` parameter named): the files
    it lists are on disk, named by random ids."""

    __tablename__ = "bulk_export"
    data_category = DataCategory.general  # whose records were asked for, no clinical data

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    token_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_token.id"), index=True)
    # A backend service's export belongs to the app (its tokens last five minutes): any of its
    # tokens may follow it. None: only the token that asked.
    smart_client_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("smart_client.id"), index=True
    )
    level: Mapped[str] = mapped_column(String(10))  # system, patient, group
    group_id: Mapped[str | None] = mapped_column(String(80))
    types: Mapped[str] = mapped_column(String(400))
    since: Mapped[datetime | None]
    elements: Mapped[str | None] = mapped_column(String(1000))  # _elements, comma-separated
    # The `patient` parameter: the patients' ids, comma-separated (None: not given).
    patients: Mapped[str | None] = mapped_column(Text)
    request_url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default=ExportStatus.queued, index=True)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=now)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class BulkExportFile(IdMixin, Base):
    """One NDJSON file of an export (one resource type)."""

    __tablename__ = "bulk_export_file"

    export_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("bulk_export.id", ondelete="CASCADE"), index=True
    )
    resource_type: Mapped[str] = mapped_column(String(40))
    count: Mapped[int] = mapped_column(Integer)
