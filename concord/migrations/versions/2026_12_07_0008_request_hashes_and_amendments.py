"""ingest: a hash of each request kept with its idempotency key and client identifier, and
a check-in's amendments linked to the version they replace

Revision ID: 0008_request_hashes
Revises: 0007
Create Date: 2026-12-07 01:45:00

Issue 16, item 4: a key or identifier sent again with different content was answered as a
replay of the first and the new content dropped (a PHQ-9 with item 9 now positive raised no
alert). The hash tells a replay (the same bytes) from a different request (409) or, for a
FHIR QuestionnaireResponse sent as "amended", an amendment: a new row that `amends_id` the
earlier, which is kept as "superseded".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_request_hashes"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("measure_response", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("amends_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_measure_response_amends_id_measure_response"),
            "measure_response",
            ["amends_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("measure_response", schema=None) as batch_op:
        batch_op.drop_constraint(
            op.f("fk_measure_response_amends_id_measure_response"), type_="foreignkey"
        )
        batch_op.drop_column("amends_id")
        batch_op.drop_column("content_hash")
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_column("body_hash")
