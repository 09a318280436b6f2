"""appointments and notifications: visits, their clinicians, the bell, channels, deliveries

Revision ID: 0022_appts
Revises: 0021_bulkoidc
Create Date: 2026-12-07 17:10:00

Issue 22: visits with a patient (FHIR Appointment) and one notification service (the in-app
bell, email, SMS) with each person's channels and quiet hours and a delivery log holding no
content. The organization gains its video service's URL template, how early "Join" shows,
and when visit reminders go.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import concord.db

revision = "0022_appts"
down_revision = "0021_bulkoidc"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.add_column(sa.Column("video_url_template", sa.String(length=300), nullable=True))
        batch_op.add_column(
            sa.Column("video_join_minutes", sa.Integer(), nullable=False, server_default="10")
        )
        batch_op.add_column(
            sa.Column(
                "visit_reminders", sa.String(length=60), nullable=False, server_default="1440,60"
            )
        )

    op.create_table(
        "appointment",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("awaiting", sa.String(length=20), nullable=True),
        sa.Column("start", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("place", sa.String(length=300), nullable=True),
        sa.Column("room", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requested_by_id", sa.Uuid(), nullable=True),
        sa.Column("cancelled_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by_id", sa.Uuid(), nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.Column("status_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status_by_id", sa.Uuid(), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_appointment_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinic.id"], name=op.f("fk_appointment_clinic_id_clinic")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_appointment_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["user_account.id"],
            name=op.f("fk_appointment_requested_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["cancelled_by_id"],
            ["user_account.id"],
            name=op.f("fk_appointment_cancelled_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["status_by_id"],
            ["user_account.id"],
            name=op.f("fk_appointment_status_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["registry_contact.id"],
            name=op.f("fk_appointment_contact_id_registry_contact"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_appointment_created_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment")),
    )
    op.create_index("ix_appointment_patient_start", "appointment", ["patient_id", "start"])

    op.create_table(
        "appointment_clinician",
        sa.Column("appointment_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointment.id"],
            ondelete="CASCADE",
            name=op.f("fk_appointment_clinician_appointment_id_appointment"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_appointment_clinician_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_clinician")),
    )
    op.create_index(
        "ix_appointment_clinician_user", "appointment_clinician", ["user_id", "appointment_id"]
    )

    op.create_table(
        "notice",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("link", sa.String(length=300), nullable=False),
        sa.Column("source", sa.String(length=160), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_notice_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_notice_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice")),
    )
    op.create_index("ix_notice_user_unread", "notice", ["user_id", "read_at"])

    op.create_table(
        "notify_preference",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("channels", sa.String(length=60), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("quiet_from", sa.Integer(), nullable=True),
        sa.Column("quiet_until", sa.Integer(), nullable=True),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_notify_preference_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notify_preference")),
    )

    op.create_table(
        "notice_delivery",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("notice_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("link", sa.String(length=300), nullable=False),
        sa.Column("key", sa.String(length=220), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("fallback", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("send_after", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_notice_delivery_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_notice_delivery_user_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["notice.id"], name=op.f("fk_notice_delivery_notice_id_notice")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_delivery")),
    )
    op.create_index("ix_notice_delivery_due", "notice_delivery", ["status", "send_after"])
    op.create_index("uq_notice_delivery_key", "notice_delivery", ["key"], unique=True)


def downgrade() -> None:
    op.drop_table("notice_delivery")
    op.drop_table("notify_preference")
    op.drop_table("notice")
    op.drop_table("appointment_clinician")
    op.drop_table("appointment")
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_column("visit_reminders")
        batch_op.drop_column("video_join_minutes")
        batch_op.drop_column("video_url_template")
