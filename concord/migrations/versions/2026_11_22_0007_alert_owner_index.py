"""safety: index the alerts a person owns, for the banner on every clinician page

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 17:58:00

At 1,000,000 patients the banner's query read every open alert of the database (6,289) to
find the few this person owns: 5.6 ms on each page, 3.4 ms at 100,000 patients.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_safety_alert_owner_status_due",
        "safety_alert",
        ["owner_id", "status", "due_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_safety_alert_owner_status_due", table_name="safety_alert")
