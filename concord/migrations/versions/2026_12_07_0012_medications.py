"""medications: a patient's medication list, reports, safety findings and overrides

Revision ID: 0012_medications
Revises: 0011_disclosure_log
Create Date: 2026-12-07 13:54:00

Issue 19: medications coded by RxNorm with dose, route, frequency, dates, indication, status,
prescriber and source; the patient's reports about them ("I take this", "I stopped this");
the safety findings the checker raised on the whole list (kept, marked resolved, never
deleted); the overrides with their reasons; and the joint prescribing protocol (who
prescribes, who monitors what and how often, who is told of a change).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import concord.db

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0012_medications"
down_revision = "0011_disclosure_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "medication_finding",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("rule_id", sa.String(length=60), nullable=False),
        sa.Column("rules_version", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("rxcuis", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("title_es", sa.String(length=300), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("source_citation", sa.Text(), nullable=False),
        sa.Column("source_url", sa.String(length=500), nullable=False),
        sa.Column("never_block", sa.Boolean(), nullable=False),
        sa.Column("first_found_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_checked_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("overridden_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_medication_finding_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_medication_finding_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medication_finding")),
        sa.UniqueConstraint("patient_id", "key", name=op.f("uq_medication_finding_patient_id_key")),
    )
    op.create_table(
        "medication_finding_override",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("finding_id", sa.Uuid(), nullable=False),
        sa.Column("finding_key", sa.String(length=200), nullable=False),
        sa.Column("rxcuis", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_medication_finding_override_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["finding_id"],
            ["medication_finding.id"],
            name=op.f("fk_medication_finding_override_finding_id_medication_finding"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_medication_finding_override_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
            name=op.f("fk_medication_finding_override_patient_id_patient"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medication_finding_override")),
    )
    op.create_table(
        "medication",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("rxcui", sa.String(length=20), nullable=True),
        sa.Column("drug_rxcui", sa.String(length=20), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("dose", sa.String(length=100), nullable=True),
        sa.Column("route", sa.String(length=40), nullable=True),
        sa.Column("frequency", sa.String(length=100), nullable=True),
        sa.Column("started_on", sa.Date(), nullable=True),
        sa.Column("stopped_on", sa.Date(), nullable=True),
        sa.Column("indication_concern_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column("prescriber_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("over_the_counter", sa.Boolean(), nullable=False),
        sa.Column("reviewed_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by_id", sa.Uuid(), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_medication_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["indication_concern_id"],
            ["concern.id"],
            name=op.f("fk_medication_indication_concern_id_concern"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_medication_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_medication_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["prescriber_id"],
            ["user_account.id"],
            name=op.f("fk_medication_prescriber_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by_id"],
            ["user_account.id"],
            name=op.f("fk_medication_reviewed_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_medication_updated_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medication")),
    )
    with op.batch_alter_table("medication", schema=None) as batch_op:
        batch_op.create_index(
            "ix_medication_patient_status", ["patient_id", "status"], unique=False
        )

    op.create_table(
        "medication_report",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("medication_id", sa.Uuid(), nullable=False),
        sa.Column("rxcui", sa.String(length=20), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("resolved_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_id", sa.Uuid(), nullable=True),
        sa.Column("resolution", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_medication_report_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["medication_id"],
            ["medication.id"],
            name=op.f("fk_medication_report_medication_id_medication"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_medication_report_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_medication_report_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"],
            ["user_account.id"],
            name=op.f("fk_medication_report_resolved_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medication_report")),
    )
    with op.batch_alter_table("medication_report", schema=None) as batch_op:
        batch_op.create_index(
            "ix_medication_report_patient", ["patient_id", "resolved_at"], unique=False
        )
    op.create_table(
        "prescribing_protocol",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("medication_id", sa.Uuid(), nullable=True),
        sa.Column("rxcui", sa.String(length=20), nullable=True),
        sa.Column("about", sa.String(length=200), nullable=False),
        sa.Column("prescriber_id", sa.Uuid(), nullable=True),
        sa.Column("monitoring", sa.String(length=200), nullable=True),
        sa.Column("monitor_owner_id", sa.Uuid(), nullable=True),
        sa.Column("every_days", sa.Integer(), nullable=True),
        sa.Column("last_done_on", sa.Date(), nullable=True),
        sa.Column("next_due_on", sa.Date(), nullable=True),
        sa.Column("tell", JSON, nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("ended_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_prescribing_protocol_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["medication_id"],
            ["medication.id"],
            name=op.f("fk_prescribing_protocol_medication_id_medication"),
        ),
        sa.ForeignKeyConstraint(
            ["monitor_owner_id"],
            ["user_account.id"],
            name=op.f("fk_prescribing_protocol_monitor_owner_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_prescribing_protocol_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_prescribing_protocol_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["prescriber_id"],
            ["user_account.id"],
            name=op.f("fk_prescribing_protocol_prescriber_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prescribing_protocol")),
    )
    with op.batch_alter_table("prescribing_protocol", schema=None) as batch_op:
        batch_op.create_index(
            "ix_prescribing_protocol_due", ["ended_at", "next_due_on"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_prescribing_protocol_patient_id"), ["patient_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("prescribing_protocol", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prescribing_protocol_patient_id"))
        batch_op.drop_index("ix_prescribing_protocol_due")

    op.drop_table("prescribing_protocol")
    with op.batch_alter_table("medication_report", schema=None) as batch_op:
        batch_op.drop_index("ix_medication_report_patient")

    op.drop_table("medication_report")
    with op.batch_alter_table("medication", schema=None) as batch_op:
        batch_op.drop_index("ix_medication_patient_status")

    op.drop_table("medication")
    op.drop_table("medication_finding_override")
    op.drop_table("medication_finding")
