"""ehr import: resources an EHR sent, and the patient matches a person must decide

Revision ID: 0013_ehr_import
Revises: 0011_disclosure_log
Create Date: 2026-12-07 14:00:00

Issue 20: an integration client posts FHIR Bundles; each resource is kept as sent under the
sender's id (one row per organization, type and id, versioned), linked to the Concord patient
it is about, with its data category. An imported Patient that looks like an existing patient
without the medical record number to prove it is held in ehr_match for a person to decide.
(Written beside 0012; the merge chains it after 0012.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import concord.db

revision = "0013_ehr_import"
down_revision = "0011_disclosure_log"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = concord.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ehr_resource",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("sender_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("patient_ref", sa.String(length=64), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("resource", JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_updated", WHEN, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_ehr_resource_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_ehr_resource_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["user_account.id"], name=op.f("fk_ehr_resource_source_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ehr_resource")),
        sa.UniqueConstraint(
            "organization_id",
            "resource_type",
            "sender_id",
            name=op.f("uq_ehr_resource_organization_id_resource_type_sender_id"),
        ),
    )
    with op.batch_alter_table("ehr_resource", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ehr_resource_patient", ["patient_id", "resource_type"], unique=False
        )
        batch_op.create_index(
            "ix_ehr_resource_patient_ref", ["organization_id", "patient_ref"], unique=False
        )
    op.create_table(
        "ehr_match",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("decided_at", WHEN, nullable=True),
        sa.Column("decided_by_id", sa.Uuid(), nullable=True),
        sa.Column("linked_patient_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["user_account.id"],
            name=op.f("fk_ehr_match_decided_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["linked_patient_id"],
            ["patient.id"],
            name=op.f("fk_ehr_match_linked_patient_id_patient"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_ehr_match_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_ehr_match_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["ehr_resource.id"], name=op.f("fk_ehr_match_resource_id_ehr_resource")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ehr_match")),
        sa.UniqueConstraint("resource_id", name=op.f("uq_ehr_match_resource_id")),
    )
    with op.batch_alter_table("ehr_match", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ehr_match_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ehr_match_patient_id"), ["patient_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ehr_match", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ehr_match_patient_id"))
        batch_op.drop_index(batch_op.f("ix_ehr_match_organization_id"))
    op.drop_table("ehr_match")
    with op.batch_alter_table("ehr_resource", schema=None) as batch_op:
        batch_op.drop_index("ix_ehr_resource_patient_ref")
        batch_op.drop_index("ix_ehr_resource_patient")
    op.drop_table("ehr_resource")
