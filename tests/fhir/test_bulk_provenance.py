"""Bulk export with includeAssociatedData=LatestProvenanceResources (issue 21; Bulk Data
Access IG 2.0): a Provenance file with the latest Provenance of each resource exported, read
as the requester; other values refused, or left out with handling=lenient."""

from __future__ import annotations

from sqlalchemy import select

from concord.bulk.models import BulkExport
from concord.fhir.mapping import validate
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import create_plan
from tests.fhir.test_bulk_export import KICK, _finish, _kick, _lines
from tests.fhir.test_bulk_export import bulk_dir as bulk_dir  # noqa: F401 (fixtures)
from tests.fhir.test_bulk_export import schedule as schedule  # noqa: F401
from tests.fhir.test_bulk_export import settings as settings  # noqa: F401
from tests.medications.test_fhir import _list

LATEST = "includeAssociatedData=LatestProvenanceResources"


def test_the_latest_provenance_of_each_resource(client, session, people, factory, schedule):
    plan = create_plan(session, people, goals=2, activate=True)
    commit(session)
    prescribed, reported = _list(session, people)
    manager = bearer(session, people.care_manager)
    url = f"/fhir/$export?_type=CarePlan,Goal,MedicationRequest,MedicationStatement&{LATEST}"
    manifest = _finish(client, manager, _kick(client, manager, url), factory, schedule)
    assert "Provenance" in {o["type"] for o in manifest["output"]}
    provenance = _lines(client, manager, manifest, "Provenance")
    for resource in provenance:
        validate(resource)
    targets = [p["target"][0]["reference"] for p in provenance]
    assert len(targets) == len(set(targets))
    goals = _lines(client, manager, manifest, "Goal")
    assert {f"Goal/{g['id']}/_history/{g['meta']['versionId']}" for g in goals} <= set(targets)
    assert f"MedicationRequest/{prescribed.id}" in targets
    assert f"MedicationStatement/{reported.id}" in targets
    # A care plan's latest revision only (not every one, as _revinclude gives).
    plan_version = _lines(client, manager, manifest, "CarePlan")[0]["meta"]["versionId"]
    plans = [t for t in targets if t.startswith(f"CarePlan/{plan.id}/")]
    assert plans == [f"CarePlan/{plan.id}/_history/{plan_version}"] and int(plan_version) > 1
    # Without the parameter, no Provenance file.
    plain = _kick(client, manager, "/fhir/$export?_type=Goal")
    assert {o["type"] for o in _finish(client, manager, plain, factory, schedule)["output"]} == {
        "Goal"
    }


def test_the_provenance_is_the_requesters(client, session, people, factory, schedule):
    create_plan(session, people, goals=1, activate=True)
    commit(session)
    outsider = bearer(session, people.outsider)  # another team's care manager
    url = f"/fhir/$export?_type=CarePlan,Goal&{LATEST}"
    manifest = _finish(client, outsider, _kick(client, outsider, url), factory, schedule)
    assert "Provenance" not in {o["type"] for o in manifest["output"]}


def test_other_values_are_refused_naming_them(client, session, people):
    manager = bearer(session, people.care_manager)
    before = session.scalar(select(BulkExport.id).limit(1))
    for value in ("RelevantProvenanceResources", "_custom", "LatestProvenanceResources,x"):
        refused = client.get(
            f"/fhir/$export?includeAssociatedData={value}", headers={**manager, **KICK}
        )
        assert refused.status_code == 400, refused.text
        issue = refused.json()["issue"][0]
        assert issue["code"] == "not-supported" and "includeAssociatedData" in refused.text
        assert "LatestProvenanceResources" in issue["diagnostics"]
    assert session.scalar(select(BulkExport.id).limit(1)) == before
    # Lenient: the unsupported value left out, the supported one kept.
    kept = client.get(
        f"/fhir/$export?{LATEST},RelevantProvenanceResources",
        headers={**manager, **KICK, "Prefer": "respond-async, handling=lenient"},
    )
    assert kept.status_code == 202
    export = session.scalar(select(BulkExport).order_by(BulkExport.created_at.desc()).limit(1))
    assert export.types.split()[-1] == "Provenance"
