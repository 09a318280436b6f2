"""measures: responses, observations, schedules, reminders; safety alerts; outbox; goal measure link

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 11:57:14.102750
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import concord.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "outbox_message",
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("send_after", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
    )
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_pending", ["sent_at", "send_after"], unique=False)

    op.create_table(
        "measure_schedule",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("instrument", sa.String(length=40), nullable=False),
        sa.Column("every_days", sa.Integer(), nullable=False),
        sa.Column("start_on", sa.Date(), nullable=False),
        sa.Column("end_on", sa.Date(), nullable=True),
        sa.Column("stopped_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_measure_schedule_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_measure_schedule_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measure_schedule")),
    )
    with op.batch_alter_table("measure_schedule", schema=None) as batch_op:
        batch_op.create_index(
            "ix_measure_schedule_patient", ["patient_id", "stopped_at"], unique=False
        )

    op.create_table(
        "measure_reminder",
        sa.Column("schedule_id", sa.Uuid(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("queued_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["measure_schedule.id"],
            name=op.f("fk_measure_reminder_schedule_id_measure_schedule"),
        ),
        sa.PrimaryKeyConstraint("schedule_id", "due_on", name=op.f("pk_measure_reminder")),
    )
    op.create_table(
        "measure_response",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("instrument", sa.String(length=40), nullable=False),
        sa.Column("instrument_version", sa.String(length=20), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("answered_by", sa.String(length=20), nullable=False),
        sa.Column("proxy_name", sa.String(length=200), nullable=True),
        sa.Column("proxy_relationship", sa.String(length=60), nullable=True),
        sa.Column("entered_by_id", sa.Uuid(), nullable=False),
        sa.Column("schedule_id", sa.Uuid(), nullable=True),
        sa.Column("started_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("client_system", sa.String(length=200), nullable=True),
        sa.Column("client_identifier", sa.String(length=200), nullable=True),
        sa.Column(
            "answers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "scores",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "flags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entered_by_id"],
            ["user_account.id"],
            name=op.f("fk_measure_response_entered_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_measure_response_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["measure_schedule.id"],
            name=op.f("fk_measure_response_schedule_id_measure_schedule"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measure_response")),
        sa.UniqueConstraint(
            "patient_id",
            "client_system",
            "client_identifier",
            name=op.f("uq_measure_response_patient_id_client_system_client_identifier"),
        ),
    )
    with op.batch_alter_table("measure_response", schema=None) as batch_op:
        batch_op.create_index(
            "ix_measure_response_patient_instrument",
            ["patient_id", "instrument", "completed_at"],
            unique=False,
        )

    op.create_table(
        "measure_observation",
        sa.Column("response_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("instrument", sa.String(length=40), nullable=False),
        sa.Column("score_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("code_system", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("band", sa.String(length=40), nullable=True),
        sa.Column("effective_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_measure_observation_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["measure_response.id"],
            name=op.f("fk_measure_observation_response_id_measure_response"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measure_observation")),
    )
    with op.batch_alter_table("measure_observation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_measure_observation_patient_code_time",
            ["patient_id", "code", "effective_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_measure_observation_response_id"), ["response_id"], unique=False
        )

    op.create_table(
        "safety_alert",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("source_kind", sa.String(length=20), nullable=False),
        sa.Column("response_id", sa.Uuid(), nullable=True),
        sa.Column("instrument", sa.String(length=40), nullable=True),
        sa.Column("flag_id", sa.String(length=60), nullable=True),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("acknowledged_by_id", sa.Uuid(), nullable=True),
        sa.Column("acknowledged_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by_id", sa.Uuid(), nullable=True),
        sa.Column("closed_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=60), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["acknowledged_by_id"],
            ["user_account.id"],
            name=op.f("fk_safety_alert_acknowledged_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["closed_by_id"],
            ["user_account.id"],
            name=op.f("fk_safety_alert_closed_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_safety_alert_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_safety_alert_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["measure_response.id"],
            name=op.f("fk_safety_alert_response_id_measure_response"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_alert")),
    )
    with op.batch_alter_table("safety_alert", schema=None) as batch_op:
        batch_op.create_index(
            "ix_safety_alert_patient_status", ["patient_id", "status"], unique=False
        )

    with op.batch_alter_table("goal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("measure_instrument", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("measure_op", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("measure_value", sa.Double(), nullable=True))

    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "crisis_resources",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "measurement_defaults",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:

    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_column("measurement_defaults")
        batch_op.drop_column("crisis_resources")

    with op.batch_alter_table("goal", schema=None) as batch_op:
        batch_op.drop_column("measure_value")
        batch_op.drop_column("measure_op")
        batch_op.drop_column("measure_instrument")

    with op.batch_alter_table("safety_alert", schema=None) as batch_op:
        batch_op.drop_index("ix_safety_alert_patient_status")

    op.drop_table("safety_alert")
    with op.batch_alter_table("measure_observation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_measure_observation_response_id"))
        batch_op.drop_index("ix_measure_observation_patient_code_time")

    op.drop_table("measure_observation")
    with op.batch_alter_table("measure_response", schema=None) as batch_op:
        batch_op.drop_index("ix_measure_response_patient_instrument")

    op.drop_table("measure_response")
    op.drop_table("measure_reminder")
    with op.batch_alter_table("measure_schedule", schema=None) as batch_op:
        batch_op.drop_index("ix_measure_schedule_patient")

    op.drop_table("measure_schedule")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_pending")

    op.drop_table("outbox_message")
