"""FHIR Bulk Data export (issue 21): kick-off, status, manifest, download, expiry, cancel,
_type/_since, refused parameters, and access (a clinician exports only their care teams'
patients, with consent and 42 CFR Part 2 applied as on a search)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from concord.audit.models import AuditEvent
from concord.fhir.bulk import BulkSchedule, expire_exports, run_exports
from concord.settings import Settings
from tests.careplans.test_api import bearer
from tests.fhir.test_fhir_part2 import _consent
from tests.fhir.test_fhir_part2 import story as story  # noqa: F401 (a fixture)

KICK = {"Accept": "application/fhir+json", "Prefer": "respond-async"}


@pytest.fixture(scope="module")
def bulk_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bulk")


@pytest.fixture
def settings(database_url, bulk_dir) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        base_url="http://testserver",
        bulk_export_dir=bulk_dir,
    )


@pytest.fixture
def schedule(settings):
    return BulkSchedule.from_settings(settings)


@pytest.fixture
def manager(session, people):
    return bearer(session, people.care_manager)


def _kick(client, headers, url="/fhir/$export", **extra):
    response = client.get(url, headers={**KICK, **headers, **extra})
    assert response.status_code == 202, response.text
    location = response.headers["Content-Location"]
    assert location.startswith("http://testserver/fhir/bulk-status/")
    return location.removeprefix("http://testserver")


def _finish(client, headers, status_url, factory, schedule):
    waiting = client.get(status_url, headers=headers)
    assert waiting.status_code == 202 and waiting.headers["X-Progress"]
    assert run_exports(factory, schedule) == 1
    done = client.get(status_url, headers=headers)
    assert done.status_code == 200, done.text
    return done.json()


def _lines(client, headers, manifest, kind):
    found = []
    for out in manifest["output"]:
        if out["type"] != kind:
            continue
        # No patient data in the URL: a random file id.
        assert "Patient" not in out["url"]
        got = client.get(out["url"].removeprefix("http://testserver"), headers=headers)
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("application/fhir+ndjson")
        found += [json.loads(line) for line in got.text.splitlines() if line]
        assert len(found) >= out["count"]
    return found


def test_system_export_end_to_end(client, people, manager, factory, schedule, session):
    status = _kick(client, manager)
    manifest = _finish(client, manager, status, factory, schedule)
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith("/fhir/$export")
    patients = _lines(client, manager, manifest, "Patient")
    # The care manager's team has the patient, not the other team's.
    ids = {p["id"] for p in patients}
    assert str(people.patient.id) in ids and str(people.other_patient.id) not in ids
    teams = _lines(client, manager, manifest, "CareTeam")
    assert teams and all(
        t["subject"]["reference"] != f"Patient/{people.other_patient.id}" for t in teams
    )
    # Reads and the export itself are in the trail.
    actions = set(
        session.scalars(
            select(AuditEvent.action).where(AuditEvent.actor_id == people.care_manager.id)
        )
    )
    assert {"export_request", "export", "search", "export_download"} <= actions


def test_outsider_exports_only_their_team(client, people, session, factory, schedule):
    outsider = bearer(session, people.outsider)
    manifest = _finish(client, outsider, _kick(client, outsider), factory, schedule)
    ids = {p["id"] for p in _lines(client, outsider, manifest, "Patient")}
    assert str(people.patient.id) not in ids and str(people.other_patient.id) in ids


def test_files_need_the_same_token_and_expire(
    client, people, manager, session, factory, schedule, clock
):
    manifest = _finish(client, manager, _kick(client, manager), factory, schedule)
    url = manifest["output"][0]["url"].removeprefix("http://testserver")
    assert client.get(url).status_code == 401
    other = bearer(session, people.care_manager)  # same person, another token
    assert client.get(url, headers=other).status_code == 404
    assert client.get(url, headers=bearer(session, people.outsider)).status_code == 404
    clock.advance(seconds=schedule.expires.total_seconds() + 1)
    assert client.get(url, headers=manager).status_code == 404
    assert expire_exports(factory, schedule) == 1
    assert not any(schedule.directory.glob("*/" + url.rsplit("/", 1)[1].replace("-", "") + "*"))


def test_cancel_before_and_after(client, manager, factory, schedule):
    status = _kick(client, manager)
    assert client.delete(status, headers=manager).status_code == 202
    assert run_exports(factory, schedule) == 0
    assert client.get(status, headers=manager).status_code == 404
    assert client.delete(status, headers=manager).status_code == 404
    status = _kick(client, manager)
    manifest = _finish(client, manager, status, factory, schedule)
    url = manifest["output"][0]["url"].removeprefix("http://testserver")
    assert client.delete(status, headers=manager).status_code == 202
    assert client.get(url, headers=manager).status_code == 404


def test_type_and_since(client, manager, factory, schedule):
    status = _kick(
        client, manager, "/fhir/Patient/$export?_type=Patient,CareTeam&_type=Questionnaire"
    )
    manifest = _finish(client, manager, status, factory, schedule)
    assert {o["type"] for o in manifest["output"]} == {"Patient", "CareTeam", "Questionnaire"}
    status = _kick(
        client, manager, "/fhir/$export?_type=Observation&_outputFormat=application/ndjson"
    )
    assert {o["type"] for o in _finish(client, manager, status, factory, schedule)["output"]} <= {
        "Observation"
    }
    # _since just now: the care plan and goals (with lastUpdated) are all older.
    status = _kick(client, manager, "/fhir/$export?_type=Goal&_since=2026-11-01T00:00:00Z")
    since = _finish(client, manager, status, factory, schedule)
    assert all(o["type"] == "Goal" for o in since["output"])


@pytest.mark.parametrize(
    ("url", "headers", "field"),
    [
        ("/fhir/$export?_typeFilter=Patient%3Factive%3Dtrue", KICK, "_typeFilter"),
        ("/fhir/$export?_type=Nonsense", KICK, "_type"),
        ("/fhir/$export?_outputFormat=text/csv", KICK, "_outputFormat"),
        ("/fhir/$export?_since=yesterday", KICK, "_since"),
        ("/fhir/$export?_since=2999-01-01T00:00:00Z", KICK, "_since"),
        ("/fhir/$export?includeAssociatedData=x", KICK, "includeAssociatedData"),
        ("/fhir/$export", {"Accept": "application/fhir+json"}, "Prefer"),
        ("/fhir/$export", {"Prefer": "respond-async", "Accept": "text/csv"}, "Accept"),
    ],
)
def test_refusals_write_nothing(client, manager, session, url, headers, field):
    from concord.bulk.models import BulkExport

    before = session.scalar(select(BulkExport.id).limit(1))
    response = client.get(url, headers={**manager, **headers})
    # 400 for what is not offered, 422 for a malformed value: both refusals (4xx).
    assert response.status_code in (400, 422), response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert field in response.text
    assert session.scalar(select(BulkExport.id).limit(1)) == before


def test_elements(client, manager, factory, schedule):
    status = _kick(client, manager, "/fhir/$export?_type=Patient,CareTeam&_elements=Patient.gender")
    manifest = _finish(client, manager, status, factory, schedule)
    patients = _lines(client, manager, manifest, "Patient")
    assert patients and all(set(p) == {"resourceType", "id", "meta", "gender"} for p in patients)
    assert all(p["meta"]["tag"][-1]["code"] == "SUBSETTED" for p in patients)
    teams = _lines(client, manager, manifest, "CareTeam")
    assert teams and all("participant" in t for t in teams)  # whole: no element named for it
    refused = client.get("/fhir/$export?_elements=Nope.x", headers={**manager, **KICK})
    assert refused.status_code == 422 and "_elements" in refused.text


def test_lenient_drops_unsupported(client, manager, session):
    from concord.bulk.models import BulkExport

    response = client.get(
        "/fhir/$export?includeAssociatedData=RelevantProvenanceResources&_typeFilter=x",
        headers={**manager, **KICK, "Prefer": "respond-async, handling=lenient"},
    )
    assert response.status_code == 202
    export = session.scalar(select(BulkExport).order_by(BulkExport.created_at.desc()).limit(1))
    assert "Provenance" not in export.types.split()


def test_groups(client, people, manager, session, factory, schedule):
    from concord.registry import service as reg
    from tests.factories import acc_for

    reg.enroll(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=reg.Enrolment(program="depression"),
    )
    from tests.conftest import commit

    commit(session)
    groups = client.get("/fhir/Group", headers=manager).json()
    by_id = {e["resource"]["id"]: e["resource"] for e in groups["entry"]}
    assert by_id["program-depression"]["member"] == [
        {"entity": {"reference": f"Patient/{people.patient.id}"}}
    ]
    # The outsider's program group does not list the care manager's patient.
    outsider = bearer(session, people.outsider)
    theirs = client.get("/fhir/Group/program-depression", headers=outsider).json()
    assert theirs["member"] == []
    status = _kick(client, manager, "/fhir/Group/program-depression/$export?_type=Patient")
    manifest = _finish(client, manager, status, factory, schedule)
    ids = {p["id"] for p in _lines(client, manager, manifest, "Patient")}
    assert ids == {str(people.patient.id)}
    # Another team's care team is no Group of theirs: 404 at kick-off.
    team = next(i for i, g in by_id.items() if not i.startswith("program-"))
    refused = client.get(f"/fhir/Group/{team}/$export", headers={**outsider, **KICK})
    assert refused.status_code == 404


def test_part2_withheld_without_consent(client, story, people, factory, schedule):  # noqa: F811
    status = _kick(client, story["pcp"], "/fhir/$export?_type=Observation")
    manifest = _finish(client, story["pcp"], status, factory, schedule)
    ids = {o["id"] for o in _lines(client, story["pcp"], manifest, "Observation")}
    assert story["observations"]["PHQ-9"] <= ids
    assert not (story["observations"]["AUDIT-C"] & ids)
    _consent(client, story, people)
    status = _kick(client, story["pcp"], "/fhir/$export?_type=Observation")
    manifest = _finish(client, story["pcp"], status, factory, schedule)
    ids = {o["id"] for o in _lines(client, story["pcp"], manifest, "Observation")}
    assert story["observations"]["AUDIT-C"] <= ids


def test_a_client_token_or_admin_cannot_export(client, people, session):
    admin = bearer(session, people.admin)
    response = client.get("/fhir/$export", headers={**admin, **KICK})
    assert response.status_code == 403
