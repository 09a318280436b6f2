"""Migration 0009 turns the family sharing recorded as related_person columns into consent
rows: one for each consent ever recorded, revoked where it was withdrawn or the link ended,
nothing lost (who recorded it, when, the note)."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, select

from concord.accounts.models import Role
from concord.accounts.users import create_user
from concord.consents.models import Consent
from concord.patients.models import RelatedPerson
from tests.conftest import NOW

MIGRATION = Path(__file__).parents[2] / "concord/migrations/versions/2026_12_07_0009_consents.py"


def _migration():
    spec = importlib.util.spec_from_file_location("migration_0009", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _old_link(session, people, email, **columns):
    """A related person as the old code wrote them: columns only, no consent row."""
    user, _ = create_user(
        session,
        by=None,
        organization=people.org,
        email=email,
        name=email.split("@")[0],
        role=Role.related_person,
    )
    link = RelatedPerson(
        patient_id=people.patient.id,
        user_id=user.id,
        relationship_to_patient="friend",
        **columns,
    )
    session.add(link)
    session.flush()
    return link


def test_the_data_step_copies_every_recorded_family_consent(session, people):
    session.execute(delete(Consent))  # as before the migration: no consent rows at all
    recorded = NOW - timedelta(days=30)
    shared = _old_link(
        session,
        people,
        "a@family.example.org",
        consent_recorded_at=recorded,
        consent_recorded_by_id=people.care_manager.id,
        consent_note="Agreed in clinic: care plan only",
    )
    withdrawn = _old_link(
        session,
        people,
        "b@family.example.org",
        consent_recorded_at=recorded,
        consent_recorded_by_id=people.therapist.id,
        consent_withdrawn_at=NOW - timedelta(days=2),
    )
    ended = _old_link(
        session,
        people,
        "c@family.example.org",
        consent_recorded_at=recorded,
        consent_recorded_by_id=people.therapist.id,
        ended_at=NOW - timedelta(days=1),
    )
    never = _old_link(session, people, "d@family.example.org")

    # The personas' two links: the sister (consented) and the partner (not) count too.
    copied = _migration().copy_family_consents(session.connection())
    assert copied == 4

    rows = {c.grantee_related_person_id: c for c in session.scalars(select(Consent))}
    assert never.id not in rows
    a = rows[shared.id]
    assert (a.status, a.provision, a.scope, a.categories, a.purposes, a.method) == (
        "active",
        "permit",
        "categories",
        ["care_plan"],
        ["family_sharing"],
        "recorded_by_team",
    )
    assert a.recorded_at == recorded and a.period_start == recorded.date()
    assert a.recorded_by_id == people.care_manager.id
    assert a.note == "Agreed in clinic: care plan only"
    assert a.grantee_user_id == shared.user_id and a.organization_id == people.org.id
    b = rows[withdrawn.id]
    assert (b.status, b.revoked_at, b.revoked_reason) == (
        "revoked",
        NOW - timedelta(days=2),
        "Withdrawn",
    )
    c = rows[ended.id]
    assert c.status == "revoked" and c.revoked_at == NOW - timedelta(days=1)
    # What the access layer reads and what the consents say agree for every link.
    for link in (shared, withdrawn, ended):
        assert link.has_consent == (rows[link.id].status == "active")
