"""messaging: secure message threads, messages, attachments, read state; clinic messaging policy

Revision ID: 0015_messaging
Revises: 0014_plan_item_author
Create Date: 2026-12-07 17:40:00

Issue 22: threads between a patient and their care team and between team members about a
patient (FHIR Communication), the messages in them with their attachments, a read mark per
person and thread (unread counts come from the messages), and the organization's messaging
policy (answer time, office hours, phone).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import concord.db

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0015_messaging"
down_revision = "0014_plan_item_author"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.add_column(sa.Column("messaging_settings", JSON, nullable=True))
    op.create_table(
        "message_thread",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(), nullable=False),
        sa.Column("last_message_at", concord.db.UTCDateTime(), nullable=False),
        sa.Column("awaiting", sa.String(length=10), nullable=True),
        sa.Column("reply_due_at", concord.db.UTCDateTime(), nullable=True),
        sa.Column("closed_at", concord.db.UTCDateTime(), nullable=True),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_message_thread_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_message_thread_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_message_thread_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_thread")),
    )
    op.create_index(
        "ix_message_thread_patient", "message_thread", ["patient_id", "last_message_at"]
    )
    op.create_table(
        "message",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("from_patient", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(), nullable=False),
        sa.Column("crisis_rule", sa.String(length=60), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["user_account.id"], name=op.f("fk_message_author_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_message_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_message_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["message_thread.id"], name=op.f("fk_message_thread_id_message_thread")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message")),
        sa.UniqueConstraint("thread_id", "number", name=op.f("uq_message_thread_id_number")),
    )
    op.create_table(
        "message_attachment",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["message.id"], name=op.f("fk_message_attachment_message_id_message")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_attachment")),
    )
    op.create_table(
        "message_read",
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("read_at", concord.db.UTCDateTime(), nullable=False),
        sa.Column("upto", sa.Integer(), nullable=False),
        sa.Column("team", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["message_thread.id"],
            name=op.f("fk_message_read_thread_id_message_thread"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_message_read_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_read")),
        sa.UniqueConstraint("thread_id", "user_id", name=op.f("uq_message_read_thread_id_user_id")),
    )


def downgrade() -> None:
    op.drop_table("message_read")
    op.drop_table("message_attachment")
    op.drop_table("message")
    op.drop_index("ix_message_thread_patient", table_name="message_thread")
    op.drop_table("message_thread")
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_column("messaging_settings")
