"""Keeping the export rows: create, find the token's own, claim for the worker, finish,
expire. The patient data an export holds is read elsewhere (concord.fhir.bulk, through the
FHIR search functions as the requesting user); nothing here reads a record."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.accounts.models import ApiToken, User
from concord.bulk.models import BulkExport, BulkExportFile, ExportStatus
from concord.clock import now
from concord.errors import NotFound
from concord.i18n import Msg


def _uuid(value: str | uuid.UUID) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def owns(export: BulkExport, token: ApiToken, app_id: uuid.UUID | None) -> bool:
    """Whether this token may follow the export: the token that asked, or (a backend
    service's export) any token of the same app."""
    if export.smart_client_id is not None:
        return app_id == export.smart_client_id
    return export.token_id == token.id


def own_export(
    session: Session, *, token: ApiToken, export_id: str, app_id: uuid.UUID | None = None
) -> BulkExport:
    """The export, if this token (or, for a backend service's export, its app) asked for
    it; NotFound otherwise (the same answer as for a missing or expired one)."""
    eid = _uuid(export_id)
    export = session.get(BulkExport, eid) if eid is not None else None
    if export is None or not owns(export, token, app_id):
        raise NotFound(Msg("No such export (it may have expired)."))
    return export


def files_of(session: Session, export: BulkExport) -> list[BulkExportFile]:
    return list(
        session.scalars(
            select(BulkExportFile)
            .where(BulkExportFile.export_id == export.id)
            .order_by(BulkExportFile.resource_type, BulkExportFile.id)
        )
    )


def file_and_export(
    session: Session, file_id: str
) -> tuple[BulkExportFile, BulkExport] | tuple[None, None]:
    fid = _uuid(file_id)
    found = session.get(BulkExportFile, fid) if fid is not None else None
    if found is None:
        return None, None
    export = session.get(BulkExport, found.export_id)
    return (found, export) if export is not None else (None, None)


def export_and_user(session: Session, export_id: uuid.UUID) -> tuple[BulkExport, User]:
    export = session.get(BulkExport, export_id)
    assert export is not None
    user = session.get(User, export.user_id)
    assert user is not None
    return export, user


def claim_queued(session: Session) -> uuid.UUID | None:
    """The oldest queued export, marked running (another worker skips the locked row)."""
    export = session.scalar(
        select(BulkExport)
        .where(BulkExport.status == ExportStatus.queued)
        .order_by(BulkExport.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if export is None:
        return None
    export.status = ExportStatus.running
    export.started_at = now()
    return export.id


def status_of(session: Session, export_id: uuid.UUID) -> str | None:
    return session.scalar(select(BulkExport.status).where(BulkExport.id == export_id))


def get_export(session: Session, export_id: uuid.UUID) -> BulkExport | None:
    return session.get(BulkExport, export_id)


def delete_file_rows(session: Session, export: BulkExport) -> None:
    for file in session.scalars(
        select(BulkExportFile).where(BulkExportFile.export_id == export.id)
    ):
        session.delete(file)
    session.flush()  # before the export itself is deleted


def expired(session: Session, at: datetime | None = None) -> list[BulkExport]:
    at = at or now()
    return list(
        session.scalars(
            select(BulkExport).where(
                BulkExport.expires_at.is_not(None), BulkExport.expires_at <= at
            )
        )
    )


def finished(session: Session) -> list[BulkExport]:
    """The exports done and not yet expired (whose files are on disk)."""
    return list(session.scalars(select(BulkExport).where(BulkExport.status == ExportStatus.done)))
