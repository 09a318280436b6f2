"""goalneed: a plan goal may name the social need it addresses

Revision ID: 0024_goalneed
Revises: 0023_route
Create Date: 2026-12-07 21:30:00

Issue 23: a goal made from a social-needs health concern (or linked to one on the goal form)
keeps the link, so the plan shows which need a goal is for and FHIR Goal.addresses names the
concern's Condition (concord-sdoh-{id}).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_goalneed"
down_revision = "0023_route"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("goal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("social_concern_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            "fk_goal_social_concern_id_social_concern",
            "social_concern",
            ["social_concern_id"],
            ["id"],
        )
        batch_op.create_index("ix_goal_social_concern_id", ["social_concern_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("goal", schema=None) as batch_op:
        batch_op.drop_index("ix_goal_social_concern_id")
        batch_op.drop_constraint("fk_goal_social_concern_id_social_concern", type_="foreignkey")
        batch_op.drop_column("social_concern_id")
