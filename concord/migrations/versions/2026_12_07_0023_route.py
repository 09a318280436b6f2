"""route: message threads say what they are about (a patient's plan or decision)

Revision ID: 0023_route
Revises: 0022_appts
Create Date: 2026-12-07 18:30:00

Issue 22: a patient's suggested goal, plan comment or question on a decision is posted as a
message in a thread with the care team; the thread's topic ("careplan", "decision:<id>") lets
a later one of the same kind join the thread while it is open.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023_route"
down_revision = "0022_appts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message_thread", schema=None) as batch_op:
        batch_op.add_column(sa.Column("topic", sa.String(length=80), nullable=True))
        batch_op.create_index("ix_message_thread_topic", ["patient_id", "topic"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("message_thread", schema=None) as batch_op:
        batch_op.drop_index("ix_message_thread_topic")
        batch_op.drop_column("topic")
