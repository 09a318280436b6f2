"""ehr import batches: what each imported Bundle created and changed, so it can be undone

Revision ID: 0027_ehr20
Revises: 0026_sugoals
Create Date: 2026-12-08 01:00:00

Issue 20: an administrator or the integration client can undo one import (what it created
and changed, not what people did since). ehr_import is one imported Bundle; ehr_import_item
one row it created or changed, with the row as it was before a change. Imports made before
this migration have no record and cannot be undone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import concord.db

revision = "0027_ehr20"
down_revision = "0026_sugoals"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = concord.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ehr_import",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("undone_at", WHEN, nullable=True),
        sa.Column("undone_by_id", sa.Uuid(), nullable=True),
        sa.Column("undo_reason", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_ehr_import_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["user_account.id"], name=op.f("fk_ehr_import_source_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["undone_by_id"],
            ["user_account.id"],
            name=op.f("fk_ehr_import_undone_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ehr_import")),
    )
    with op.batch_alter_table("ehr_import", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ehr_import_org_created", ["organization_id", "created_at"], unique=False
        )
    op.create_table(
        "ehr_import_item",
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("sender_id", sa.String(length=64), nullable=False),
        sa.Column("created", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous", JSON, nullable=True),
        sa.Column("previous_category", sa.String(length=32), nullable=True),
        sa.Column("previous_patient_id", sa.Uuid(), nullable=True),
        sa.Column("previous_patient_ref", sa.String(length=64), nullable=True),
        sa.Column("registered_patient_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"], ["ehr_import.id"], name=op.f("fk_ehr_import_item_import_id_ehr_import")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ehr_import_item")),
    )
    with op.batch_alter_table("ehr_import_item", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ehr_import_item_import_id"), ["import_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ehr_import_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ehr_import_item_import_id"))
    op.drop_table("ehr_import_item")
    with op.batch_alter_table("ehr_import", schema=None) as batch_op:
        batch_op.drop_index("ix_ehr_import_org_created")
    op.drop_table("ehr_import")
