"""A clinic's own crisis phrase list (issue 22: "the phrases a clinic configures (the list is
data, with cited defaults)"): an administrator saves it with the messaging settings, in the
format of concord/messaging/crisis-phrases.yaml, and a patient's words are checked against it
instead of Concord's default; a list without a cited source is refused naming the field, with
nothing saved; leaving it out keeps it, null goes back to the default. Both engines."""

from __future__ import annotations

from sqlalchemy import func, select

from concord.safety.models import SafetyAlert
from tests.careplans.test_api import bearer
from tests.conftest import commit

SETTINGS = "/api/v1/organization/messaging-settings"
# A synthetic list: the phrase is the test's own, not a clinical claim.
OWN = {
    "kind": "crisis-phrases",
    "code": "north-clinic",
    "version": "1",
    "source": {"citation": "North clinic's own review of Concord's default list (synthetic)"},
    "rules": [
        {
            "id": "north-bridge",
            "sign": "Talking about a way to kill oneself",
            "phrases": {"en": ["walk off the pier"], "es": ["tirarme del muelle"]},
        }
    ],
}


def _write(client, people, headers, body):
    return client.post(
        f"/api/v1/patients/{people.patient.id}/messages",
        json={"subject": "tonight", "body": body},
        headers=headers,
    )


def _alerts(session):
    return session.scalar(select(func.count()).select_from(SafetyAlert))


def test_the_clinics_own_list_is_the_one_checked(client, session, people):
    admin, me = bearer(session, people.admin), bearer(session, people.patient_user)
    assert _write(client, people, me, "I will walk off the pier").json()["crisis"] is False
    saved = client.put(SETTINGS, json={"crisis_phrases": OWN}, headers=admin)
    assert saved.status_code == 200, saved.text
    assert saved.json()["settings"]["crisis_phrases"]["code"] == "north-clinic"
    commit(session)
    before = _alerts(session)
    got = _write(client, people, me, "Tonight I will walk off the pier")
    assert got.status_code == 201 and got.json()["crisis"] is True
    assert got.json()["crisis_resources"]
    commit(session)
    assert _alerts(session) == before + 1
    # The clinic's list replaces the default (a clinic starts from the default file).
    assert _write(client, people, me, "I want to die").json()["crisis"] is False
    # Other settings saved without the list keep it.
    kept = client.put(SETTINGS, json={"reply_within_hours": 24}, headers=admin)
    assert kept.json()["settings"]["crisis_phrases"]["code"] == "north-clinic"
    assert _write(client, people, me, "walk off the pier").json()["crisis"] is True
    # null: back to Concord's default list.
    back = client.put(SETTINGS, json={"crisis_phrases": None}, headers=admin)
    assert "crisis_phrases" not in back.json()["settings"]
    assert _write(client, people, me, "I want to die").json()["crisis"] is True
    assert _write(client, people, me, "walk off the pier").json()["crisis"] is False


def test_a_list_without_a_source_is_refused_naming_the_field(client, session, people):
    admin = bearer(session, people.admin)
    uncited = {**OWN, "source": {}}
    got = client.put(SETTINGS, json={"crisis_phrases": uncited}, headers=admin)
    assert got.status_code == 422, got.text
    assert "crisis_phrases" in got.text and "citation" in got.text
    empty = client.put(SETTINGS, json={"crisis_phrases": {**OWN, "rules": []}}, headers=admin)
    assert empty.status_code == 422
    commit(session)
    session.refresh(people.org)
    assert "crisis_phrases" not in (people.org.messaging_settings or {})
    # Only an administrator sets it.
    team = bearer(session, people.care_manager)
    assert client.put(SETTINGS, json={"crisis_phrases": OWN}, headers=team).status_code == 403
