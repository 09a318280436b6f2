"""A running Bulk export stops at once when the access it reads with is withdrawn (issue 21):
the app disabled, the token revoked, or the clinician a backend service acts for changed. The
worker checks before each batch and between files; the files are deleted and the status
answers with an error."""

from __future__ import annotations

from sqlalchemy import select

from concord.accounts.tokens import revoke_api_token
from concord.audit.models import AuditEvent
from concord.bulk.models import BulkExport, BulkExportFile, ExportStatus
from concord.db import unit_of_work
from concord.fhir import bulk
from concord.fhir.bulk import expire_exports, run_exports
from concord.smart import service
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.fhir.test_bulk_backend import Backend
from tests.fhir.test_bulk_backend import _fresh_origins as _fresh_origins  # noqa: F401
from tests.fhir.test_bulk_export import _finish, _kick
from tests.fhir.test_bulk_export import bulk_dir as bulk_dir  # noqa: F401 (fixtures)
from tests.fhir.test_bulk_export import schedule as schedule  # noqa: F401
from tests.fhir.test_bulk_export import settings as settings  # noqa: F401


def _during_first_batch(monkeypatch, action):
    """Run `action` (in a transaction of its own, as another request would) while the job
    reads its first batch; count the batches read."""
    calls = []
    real = bulk._page

    def page(session, by, kind, pairs, schedule):
        calls.append(kind)
        found = real(session, by, kind, pairs, schedule)
        if len(calls) == 1:
            action()
        return found

    monkeypatch.setattr(bulk, "_page", page)
    return calls


def _files_on_disk(schedule, status_url):
    export_id = status_url.rsplit("/", 1)[1].replace("-", "")
    return list((schedule.directory / export_id).glob("*"))


def test_disabling_the_app_stops_its_running_export(
    client, session, people, factory, schedule, monkeypatch
):
    feed = Backend(session, people, acts_for=people.care_manager.email)
    headers = feed.headers(client)
    status = _kick(client, headers)

    def disable():
        with unit_of_work(factory) as other:
            service.disable_client(other, by=other.merge(people.admin), ident=feed.app.client_id)

    calls = _during_first_batch(monkeypatch, disable)
    assert run_exports(factory, schedule) == 0
    # Stopped before the next batch: only the one being read when the app was disabled.
    assert calls == ["Patient"]
    export = session.scalar(select(BulkExport).where(BulkExport.smart_client_id == feed.app.id))
    session.refresh(export)
    assert export.status == ExportStatus.failed and export.error == bulk.WITHDRAWN
    assert not _files_on_disk(schedule, status)
    assert not session.scalars(
        select(BulkExportFile).where(BulkExportFile.export_id == export.id)
    ).all()
    # Its tokens are revoked with it: the status answers 401, and the app gets no new one.
    assert client.get(status, headers=headers).status_code == 401
    stopped = session.scalars(select(AuditEvent).where(AuditEvent.action == "export_stop")).all()
    assert [e.actor_id for e in stopped] == [people.care_manager.id]
    assert stopped[0].detail["smart_client"] == str(feed.app.id)


def test_revoking_the_token_stops_the_export_between_files(
    client, session, people, factory, schedule, monkeypatch
):
    manager = bearer(session, people.care_manager)
    status = _kick(client, manager, "/fhir/$export?_type=Patient,Observation")
    export = session.scalar(select(BulkExport).order_by(BulkExport.created_at.desc()).limit(1))

    def revoke():
        with unit_of_work(factory) as other:
            revoke_api_token(other, token_id=export.token_id, by=None)

    calls = _during_first_batch(monkeypatch, revoke)
    assert run_exports(factory, schedule) == 0
    # The Patient file was being written; the Observation file was never begun.
    assert calls == ["Patient"]
    assert not _files_on_disk(schedule, status)
    session.refresh(export)
    assert export.status == ExportStatus.failed and export.error == bulk.WITHDRAWN
    assert client.get(status, headers=manager).status_code == 401


def test_an_export_not_stopped_runs_to_the_end(
    client, session, people, factory, schedule, monkeypatch
):
    # The same hook with nothing withdrawn: every type is read (the checks above stop the
    # job, not the hook).
    manager = bearer(session, people.care_manager)
    status = _kick(client, manager, "/fhir/$export?_type=Patient,Observation")
    calls = _during_first_batch(monkeypatch, lambda: None)
    manifest = _finish(client, manager, status, factory, schedule)
    assert "Observation" in calls and manifest["output"]


def test_a_finished_exports_files_go_when_the_app_is_disabled(
    client, session, people, factory, schedule
):
    feed = Backend(session, people, acts_for=people.care_manager.email)
    headers = feed.headers(client)
    status = _kick(client, headers)
    _finish(client, headers, status, factory, schedule)
    assert _files_on_disk(schedule, status)
    assert expire_exports(factory, schedule) == 0  # nothing withdrawn: the files stay
    assert _files_on_disk(schedule, status)
    service.disable_client(session, by=people.admin, ident=feed.app.client_id)
    commit(session)
    expire_exports(factory, schedule)
    assert not _files_on_disk(schedule, status)
    export = session.scalar(select(BulkExport).where(BulkExport.smart_client_id == feed.app.id))
    session.refresh(export)
    assert export.status == ExportStatus.failed and export.error == bulk.WITHDRAWN
