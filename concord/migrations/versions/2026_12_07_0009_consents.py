"""consents: a patient's consents as records of their own (FHIR Consent; 42 CFR Part 2)

Revision ID: 0009_consents
Revises: 0008_request_hashes
Create Date: 2026-12-07 04:40:00

Issue 18: who may see which part of a record, for what purpose, from when to when, and how
the patient agreed. The family sharing recorded so far as columns on related_person becomes
consent rows here (a permit for the care plan, purpose family_sharing, revoked where it was
withdrawn or the link ended); the columns stay, kept in step by their one writer
(concord.patients.service through concord.consents.family), so nothing is lost either way.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import concord.db

revision = "0009_consents"
down_revision = "0008_request_hashes"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = concord.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consent",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("discloser", sa.String(length=200), nullable=True),
        sa.Column("grantee_kind", sa.String(length=24), nullable=False),
        sa.Column("grantee_user_id", sa.Uuid(), nullable=True),
        sa.Column("grantee_related_person_id", sa.Uuid(), nullable=True),
        sa.Column("grantee_clinic_id", sa.Uuid(), nullable=True),
        sa.Column("grantee_name", sa.String(length=200), nullable=True),
        sa.Column("scope", sa.String(length=12), nullable=False),
        sa.Column("categories", JSON, nullable=False),
        sa.Column("purposes", JSON, nullable=False),
        sa.Column("purpose_other", sa.String(length=200), nullable=True),
        sa.Column("provision", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("method", sa.String(length=24), nullable=False),
        sa.Column("signed_name", sa.String(length=200), nullable=True),
        sa.Column("signed_on", sa.Date(), nullable=True),
        sa.Column("document_reference", sa.String(length=200), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("recorded_by_id", sa.Uuid(), nullable=True),
        sa.Column("recorded_at", WHEN, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.Column("revoked_by_id", sa.Uuid(), nullable=True),
        sa.Column("revoked_reason", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grantee_clinic_id"], ["clinic.id"], name=op.f("fk_consent_grantee_clinic_id_clinic")
        ),
        sa.ForeignKeyConstraint(
            ["grantee_related_person_id"],
            ["related_person.id"],
            name=op.f("fk_consent_grantee_related_person_id_related_person"),
        ),
        sa.ForeignKeyConstraint(
            ["grantee_user_id"],
            ["user_account.id"],
            name=op.f("fk_consent_grantee_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_consent_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_consent_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"],
            ["user_account.id"],
            name=op.f("fk_consent_recorded_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by_id"],
            ["user_account.id"],
            name=op.f("fk_consent_revoked_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.create_index("ix_consent_patient", ["patient_id", "status"], unique=False)
        batch_op.create_index(
            "ix_consent_grantee_related", ["grantee_related_person_id"], unique=False
        )
    copy_family_consents(op.get_bind())


RELATED = sa.table(
    "related_person",
    sa.column("id", sa.Uuid()),
    sa.column("patient_id", sa.Uuid()),
    sa.column("user_id", sa.Uuid()),
    sa.column("consent_recorded_at", WHEN),
    sa.column("consent_recorded_by_id", sa.Uuid()),
    sa.column("consent_note", sa.String()),
    sa.column("consent_withdrawn_at", WHEN),
    sa.column("ended_at", WHEN),
)
PATIENT = sa.table("patient", sa.column("id", sa.Uuid()), sa.column("organization_id", sa.Uuid()))
CONSENT = sa.table(
    "consent",
    *(
        sa.column(name, kind)
        for name, kind in (
            ("id", sa.Uuid()),
            ("organization_id", sa.Uuid()),
            ("patient_id", sa.Uuid()),
            ("grantee_kind", sa.String()),
            ("grantee_user_id", sa.Uuid()),
            ("grantee_related_person_id", sa.Uuid()),
            ("scope", sa.String()),
            ("categories", JSON),
            ("purposes", JSON),
            ("provision", sa.String()),
            ("period_start", sa.Date()),
            ("method", sa.String()),
            ("note", sa.String()),
            ("recorded_by_id", sa.Uuid()),
            ("recorded_at", WHEN),
            ("status", sa.String()),
            ("revoked_at", WHEN),
            ("revoked_reason", sa.String()),
        )
    ),
)


def family_consent_rows(connection: Any) -> list[dict[str, Any]]:
    """One consent row for each family member or carer whose consent was ever recorded.

    Written out here (not imported from the models) so the migration keeps working as the
    models change. Who withdrew was never recorded, so revoked_by_id stays empty."""
    rows = connection.execute(
        sa.select(RELATED, PATIENT.c.organization_id)
        .join(PATIENT, PATIENT.c.id == RELATED.c.patient_id)
        .where(RELATED.c.consent_recorded_at.is_not(None))
        .order_by(RELATED.c.consent_recorded_at)
    ).mappings()
    out = []
    for r in rows:
        revoked_at = r["consent_withdrawn_at"] or r["ended_at"]
        reason = None
        if r["consent_withdrawn_at"] is not None:
            reason = "Withdrawn"
        elif r["ended_at"] is not None:
            reason = "No longer listed as family or carer"
        out.append(
            {
                "id": uuid.uuid4(),
                "organization_id": r["organization_id"],
                "patient_id": r["patient_id"],
                "grantee_kind": "related_person",
                "grantee_user_id": r["user_id"],
                "grantee_related_person_id": r["id"],
                "scope": "categories",
                "categories": ["care_plan"],
                "purposes": ["family_sharing"],
                "provision": "permit",
                "period_start": r["consent_recorded_at"].date(),
                "method": "recorded_by_team",
                "note": r["consent_note"],
                "recorded_by_id": r["consent_recorded_by_id"],
                "recorded_at": r["consent_recorded_at"],
                "status": "revoked" if revoked_at is not None else "active",
                "revoked_at": revoked_at,
                "revoked_reason": reason,
            }
        )
    return out


def copy_family_consents(connection: Any) -> int:
    rows = family_consent_rows(connection)
    if rows:
        connection.execute(sa.insert(CONSENT), rows)
    return len(rows)


def downgrade() -> None:
    # The related_person columns were kept in step: dropping the table loses only what the
    # columns cannot hold (consents to others than family, and their details).
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_grantee_related")
        batch_op.drop_index("ix_consent_patient")
    op.drop_table("consent")
