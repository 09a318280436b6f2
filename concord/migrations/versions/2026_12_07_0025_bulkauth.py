"""bulkauth: a backend service exports as the clinician it names; exports keep their app

Revision ID: 0025_bulkauth
Revises: 0024_goalneed
Create Date: 2026-12-07 22:00:00

Issue 21: a SMART backend service (system/ scopes) reads as the clinician the administrator
named when registering it (smart_client.acts_for_id, ADR 0028). Its tokens last five minutes,
so an export it started belongs to the app (bulk_export.smart_client_id), not to one token;
bulk_export.patients keeps the kick-off's `patient` parameter (patient ids, comma-separated).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025_bulkauth"
down_revision = "0024_goalneed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("smart_client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acts_for_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_smart_client_acts_for_id_user_account"),
            "user_account",
            ["acts_for_id"],
            ["id"],
        )
    with op.batch_alter_table("bulk_export", schema=None) as batch_op:
        batch_op.add_column(sa.Column("smart_client_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("patients", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_bulk_export_smart_client_id_smart_client"),
            "smart_client",
            ["smart_client_id"],
            ["id"],
        )
        batch_op.create_index(
            batch_op.f("ix_bulk_export_smart_client_id"), ["smart_client_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("bulk_export", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bulk_export_smart_client_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_bulk_export_smart_client_id_smart_client"), type_="foreignkey"
        )
        batch_op.drop_column("patients")
        batch_op.drop_column("smart_client_id")
    with op.batch_alter_table("smart_client", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_smart_client_acts_for_id_user_account"), type_="foreignkey"
        )
        batch_op.drop_column("acts_for_id")
