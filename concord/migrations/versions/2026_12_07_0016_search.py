"""patient version: a version and a last-updated time on each patient

Revision ID: 0016_patient_version
Revises: 0015_messaging
Create Date: 2026-12-07 17:30:00

Issue 21: an EHR updates a patient through FHIR (PUT /fhir/Patient/[id]) and must not
overwrite a change it has not seen: If-Match quotes the version (meta.versionId, the ETag)
and a stale one is refused (412). Existing patients start at version 1, last updated when
they were registered.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_patient_version"
down_revision = "0015_messaging"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    patient = sa.table(
        "patient",
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    op.get_bind().execute(sa.update(patient).values(updated_at=patient.c.created_at))
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.alter_column(
            "updated_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("version")
