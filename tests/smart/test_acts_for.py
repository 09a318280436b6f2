"""An administrator changes whom a backend service acts for (issue 21, ADR 0028): a named
clinician or a care team's lead, by page, JSON API and CLI, audited; a running export made as
the former clinician stops at its next batch and its status answers with an error."""

from __future__ import annotations

from sqlalchemy import select

from concord.audit.models import AuditEvent
from concord.bulk.models import BulkExport, ExportStatus
from concord.db import unit_of_work
from concord.fhir import bulk
from concord.fhir.bulk import run_exports
from concord.patients.models import CareTeam
from concord.smart import service
from concord.smart.models import SmartClient
from tests.careplans.test_api import bearer
from tests.fhir.test_bulk_backend import Backend
from tests.fhir.test_bulk_backend import _fresh_origins as _fresh_origins  # noqa: F401
from tests.fhir.test_bulk_export import _kick
from tests.fhir.test_bulk_export import bulk_dir as bulk_dir  # noqa: F401 (fixtures)
from tests.fhir.test_bulk_export import schedule as schedule  # noqa: F401
from tests.fhir.test_bulk_export import settings as settings  # noqa: F401
from tests.fhir.test_bulk_withdrawn import _during_first_batch, _files_on_disk
from tests.smart.test_smart import _register


def _url(app):
    return f"/api/v1/smart/clients/{app.client_id}/acts-for"


def _team_id(session, people):
    return str(session.scalar(select(CareTeam.id).where(CareTeam.patient_id == people.patient.id)))


def test_the_api_changes_whom_it_acts_for_audited(client, session, people):
    feed = Backend(session, people, acts_for=people.care_manager.email)
    admin = bearer(session, people.admin)
    moved = client.put(_url(feed.app), headers=admin, json={"acts_for": people.outsider.email})
    assert moved.status_code == 200, moved.text
    assert moved.json()["acts_for"] == str(people.outsider.id)
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "smart_client_acts_for"))
    assert event.actor_id == people.admin.id and event.object_id == str(feed.app.id)
    assert event.detail["from"] == str(people.care_manager.id)
    assert event.detail["to"] == str(people.outsider.id)
    # A care team's lead: the patient's team is led by the care manager.
    team = _team_id(session, people)
    led = client.put(_url(feed.app), headers=admin, json={"care_team": team})
    assert led.status_code == 200 and led.json()["acts_for"] == str(people.care_manager.id)
    # Neither: no one (its exports are then refused at kick-off).
    cleared = client.put(_url(feed.app), headers=admin, json={})
    assert cleared.status_code == 200 and cleared.json()["acts_for"] is None
    kicked = client.get("/fhir/$export", headers={**feed.headers(client), **bulk_kick()})
    assert kicked.status_code == 403 and "acts for no clinician" in kicked.text
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "smart_client_acts_for")
    ).all()
    assert [e.detail.get("care_team") for e in events] == [None, team, None]


def bulk_kick():
    return {"Accept": "application/fhir+json", "Prefer": "respond-async"}


def test_bad_input_names_the_field_and_writes_nothing(client, session, people):
    browser_app, _ = _register(session, people)
    feed = Backend(session, people, acts_for=people.care_manager.email)
    admin = bearer(session, people.admin)
    cases = [
        (feed.app, {"acts_for": people.admin.email}, "acts_for"),  # no clinician
        (feed.app, {"acts_for": "nobody@x.example"}, "acts_for"),
        (feed.app, {"care_team": "not-an-id"}, "care_team"),
        (feed.app, {"care_team": str(people.patient.id)}, "care_team"),  # a patient's id
        (
            feed.app,
            {"acts_for": people.outsider.email, "care_team": _team_id(session, people)},
            "care_team",
        ),
        (browser_app, {"acts_for": people.care_manager.email}, "acts_for"),  # not a backend service
    ]
    for app, body, field in cases:
        refused = client.put(_url(app), headers=admin, json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert field in refused.text
    session.expire_all()
    assert session.get(SmartClient, feed.app.id).acts_for_id == people.care_manager.id
    assert not session.scalars(
        select(AuditEvent).where(AuditEvent.action == "smart_client_acts_for")
    ).all()
    # Not an administrator: refused, audited.
    manager = bearer(session, people.care_manager)
    body = {"acts_for": people.care_manager.email}
    assert client.put(_url(feed.app), headers=manager, json=body).status_code == 403


def test_the_page_changes_it(client, session, people, sign_in):
    feed = Backend(session, people, acts_for=people.care_manager.email)
    csrf = sign_in(people.admin.email)
    page = client.get("/admin/smart-apps")
    assert f"/admin/smart-apps/{feed.app.id}/acts-for" in page.text
    url = f"/admin/smart-apps/{feed.app.id}/acts-for"
    refused = client.post(url, data={"csrf_token": csrf, "acts_for": "nobody@x.example"})
    assert refused.status_code == 422 and "active clinician" in refused.text
    done = client.post(url, data={"csrf_token": csrf, "acts_for": people.outsider.email})
    assert done.status_code == 303
    session.expire_all()
    assert session.get(SmartClient, feed.app.id).acts_for_id == people.outsider.id


def test_a_running_export_stops_when_the_app_acts_for_someone_else(
    client, session, people, factory, schedule, monkeypatch
):
    feed = Backend(session, people, acts_for=people.care_manager.email)
    status = _kick(client, feed.headers(client))

    def move():
        with unit_of_work(factory) as other:
            service.change_acts_for(
                other,
                by=other.merge(people.admin),
                ident=feed.app.client_id,
                acts_for=people.outsider.email,
            )

    calls = _during_first_batch(monkeypatch, move)
    assert run_exports(factory, schedule) == 0
    assert calls == ["Patient"]
    assert not _files_on_disk(schedule, status)
    export = session.scalar(select(BulkExport).where(BulkExport.smart_client_id == feed.app.id))
    session.refresh(export)
    assert export.status == ExportStatus.failed and export.error == bulk.WITHDRAWN
    # The app is still active: its new token reaches the status, which answers with an error.
    answer = client.get(status, headers=feed.headers(client))
    assert answer.status_code == 403
    assert answer.json()["issue"][0]["code"] == "forbidden"
    assert "withdrawn" in answer.json()["issue"][0]["diagnostics"]
