"""MOUD records, overdose-risk hits, check-in reports about medications, the PDMP interval

Revision ID: 0018_meds
Revises: 0017_smart
Create Date: 2026-12-07 17:30:00

Issue 19: the dated facts of opioid use disorder treatment (induction, PDMP checks, urine drug
tests, naloxone, missed doses and visits, and the facts the overdose-risk rules read); which
overdose-risk rule raised which safety alert; what a patient says at a check-in about a
medication (doses missed and why, side effects, a question); and the clinic's PDMP interval.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import concord.db

revision = "0018_meds"
down_revision = "0017_smart"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "moud_record",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("medication_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("performed_by_id", sa.Uuid(), nullable=True),
        sa.Column("detail", sa.String(length=40), nullable=True),
        sa.Column("dose", sa.String(length=100), nullable=True),
        sa.Column("result", sa.String(length=500), nullable=True),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_moud_record_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_moud_record_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["medication_id"],
            ["medication.id"],
            name=op.f("fk_moud_record_medication_id_medication"),
        ),
        sa.ForeignKeyConstraint(
            ["performed_by_id"],
            ["user_account.id"],
            name=op.f("fk_moud_record_performed_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_moud_record_created_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moud_record")),
    )
    op.create_index(
        "ix_moud_record_patient_kind", "moud_record", ["patient_id", "kind", "on"], unique=False
    )
    op.create_table(
        "overdose_risk_hit",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("rule_id", sa.String(length=60), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=True),
        sa.Column("raised_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_overdose_risk_hit_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_overdose_risk_hit_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["safety_alert.id"],
            name=op.f("fk_overdose_risk_hit_alert_id_safety_alert"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_overdose_risk_hit")),
        sa.UniqueConstraint("patient_id", "key", name=op.f("uq_overdose_risk_hit_patient_id_key")),
    )
    with op.batch_alter_table("medication_report", schema=None) as batch_op:
        batch_op.add_column(sa.Column("missed_doses", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("effects", sa.String(length=500), nullable=True))
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pdmp_check_interval_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_column("pdmp_check_interval_days")
    with op.batch_alter_table("medication_report", schema=None) as batch_op:
        batch_op.drop_column("effects")
        batch_op.drop_column("missed_doses")
    op.drop_table("overdose_risk_hit")
    op.drop_index("ix_moud_record_patient_kind", table_name="moud_record")
    op.drop_table("moud_record")
