"""disclosure log: who received a patient's 42 CFR Part 2 records, and emergency disclosures

Revision ID: 0011_disclosure_log
Revises: 0010_part2
Create Date: 2026-12-07 05:30:00

Issue 18: one row per request, recipient, patient and category for each disclosure of Part 2
records outside the Part 2 program and each break-the-glass disclosure: who received it, what
kind of record and how many (no content), when, for what purpose, under which consent, and
through which door. (Written beside 0010; the merge chains it after 0010.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import concord.db

revision = "0011_disclosure_log"
down_revision = "0010_part2"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = concord.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "disclosure_log",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("recipient_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("kinds", JSON, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=24), nullable=False),
        sa.Column("consent_id", sa.Uuid(), nullable=True),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("door", sa.String(length=8), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("disclosed_at", WHEN, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_disclosure_log_consent_id_consent")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_disclosure_log_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_disclosure_log_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["user_account.id"],
            name=op.f("fk_disclosure_log_recipient_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosure_log")),
    )
    with op.batch_alter_table("disclosure_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_disclosure_log_patient", ["patient_id", "disclosed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("disclosure_log", schema=None) as batch_op:
        batch_op.drop_index("ix_disclosure_log_patient")
    op.drop_table("disclosure_log")
