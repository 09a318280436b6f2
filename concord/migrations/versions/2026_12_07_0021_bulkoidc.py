"""bulk export and staff sign-on: the $export requests the worker runs, their files, and
whether an organization requires single sign-on

Revision ID: 0021_bulkoidc
Revises: 0020_episode_diagnosis
Create Date: 2026-12-07 17:40:00

Issue 21: FHIR Bulk Data export. A kick-off records a `bulk_export` row (the outbox pattern);
the worker writes NDJSON files and lists them in `bulk_export_file`. No patient data is kept
in these tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import concord.db

WHEN = concord.db.UTCDateTime(timezone=True)

revision = "0021_bulkoidc"
down_revision = "0020_episode_diagnosis"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organization") as batch:
        batch.add_column(
            sa.Column("sso_required", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "bulk_export",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_id", sa.Uuid(), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("group_id", sa.String(length=80), nullable=True),
        sa.Column("types", sa.String(length=400), nullable=False),
        sa.Column("since", WHEN, nullable=True),
        sa.Column("elements", sa.String(length=1000), nullable=True),
        sa.Column("request_url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("started_at", WHEN, nullable=True),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.Column("expires_at", WHEN, nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_bulk_export_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_bulk_export_user_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["token_id"], ["api_token.id"], name=op.f("fk_bulk_export_token_id_api_token")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_export")),
    )
    op.create_index(
        op.f("ix_bulk_export_organization_id"), "bulk_export", ["organization_id"], unique=False
    )
    op.create_index(op.f("ix_bulk_export_token_id"), "bulk_export", ["token_id"], unique=False)
    op.create_index(op.f("ix_bulk_export_status"), "bulk_export", ["status"], unique=False)
    op.create_table(
        "bulk_export_file",
        sa.Column("export_id", sa.Uuid(), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["export_id"],
            ["bulk_export.id"],
            name=op.f("fk_bulk_export_file_export_id_bulk_export"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_export_file")),
    )
    op.create_index(
        op.f("ix_bulk_export_file_export_id"), "bulk_export_file", ["export_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_bulk_export_file_export_id"), table_name="bulk_export_file")
    op.drop_table("bulk_export_file")
    op.drop_index(op.f("ix_bulk_export_status"), table_name="bulk_export")
    op.drop_index(op.f("ix_bulk_export_token_id"), table_name="bulk_export")
    op.drop_index(op.f("ix_bulk_export_organization_id"), table_name="bulk_export")
    op.drop_table("bulk_export")
    with op.batch_alter_table("organization") as batch:
        batch.drop_column("sso_required")
