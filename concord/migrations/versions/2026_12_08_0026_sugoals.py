"""sugoals: substance-use goals (substance, abstinence or reduction) and the days-of-use calendar

Revision ID: 0026_sugoals
Revises: 0025_bulkauth
Create Date: 2026-12-08 01:00:00

Issue 19, "Substance-use goals and measures": a plan goal may name the substance it is about
and whether it aims at abstinence or reduction (its target, days of use in the last 30 or
drinks per drinking day, sits in the goal's measure link); and a patient's days of use are
kept one row per substance and day, in the Timeline Followback style.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import concord.db

revision = "0026_sugoals"
down_revision = "0025_bulkauth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("goal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("substance", sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column("use_aim", sa.String(length=20), nullable=True))
    op.create_table(
        "substance_use_day",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("substance", sa.String(length=30), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.Column("drinks", sa.Integer(), nullable=True),
        sa.Column("by_patient", sa.Boolean(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_substance_use_day_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_substance_use_day_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_substance_use_day_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_substance_use_day_updated_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_substance_use_day")),
        sa.UniqueConstraint(
            "patient_id",
            "substance",
            "on",
            name=op.f("uq_substance_use_day_patient_id_substance_on"),
        ),
    )
    op.create_index(
        "ix_substance_use_day_patient_on", "substance_use_day", ["patient_id", "on"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_substance_use_day_patient_on", table_name="substance_use_day")
    op.drop_table("substance_use_day")
    with op.batch_alter_table("goal", schema=None) as batch_op:
        batch_op.drop_column("use_aim")
        batch_op.drop_column("substance")
