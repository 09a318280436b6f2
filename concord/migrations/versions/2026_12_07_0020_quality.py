"""episode qualifying diagnosis: an imported EHR diagnosis chosen for an episode of care

Revision ID: 0020_episode_diagnosis
Revises: 0019_social_needs
Create Date: 2026-12-07 17:30:00

Issue 20: a diagnosis the clinic's EHR sent (ehr_resource, a Condition) can become the
episode's qualifying diagnosis. The code, system and words are copied onto the episode with
who chose it and when; the imported row is referenced for its provenance.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import concord.db

revision = "0020_episode_diagnosis"
down_revision = "0019_social_needs"
branch_labels = None
depends_on = None

WHEN = concord.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("episode") as batch:
        batch.add_column(sa.Column("diagnosis_code", sa.String(40), nullable=True))
        batch.add_column(sa.Column("diagnosis_system", sa.String(200), nullable=True))
        batch.add_column(sa.Column("diagnosis_display", sa.String(200), nullable=True))
        batch.add_column(sa.Column("diagnosis_resource_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("diagnosis_set_at", WHEN, nullable=True))
        batch.add_column(sa.Column("diagnosis_set_by_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            "fk_episode_diagnosis_resource_id_ehr_resource",
            "ehr_resource",
            ["diagnosis_resource_id"],
            ["id"],
        )
        batch.create_foreign_key(
            "fk_episode_diagnosis_set_by_id_user_account",
            "user_account",
            ["diagnosis_set_by_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("episode") as batch:
        batch.drop_constraint("fk_episode_diagnosis_set_by_id_user_account", type_="foreignkey")
        batch.drop_constraint("fk_episode_diagnosis_resource_id_ehr_resource", type_="foreignkey")
        for name in (
            "diagnosis_set_by_id",
            "diagnosis_set_at",
            "diagnosis_resource_id",
            "diagnosis_display",
            "diagnosis_system",
            "diagnosis_code",
        ):
            batch.drop_column(name)
