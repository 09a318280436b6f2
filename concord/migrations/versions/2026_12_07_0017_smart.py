"""smart: registered SMART apps, launch contexts, codes, grants, tokens and the signing key

Revision ID: 0017_smart
Revises: 0016_patient_version
Create Date: 2026-12-07 17:30:00

Issue 21: SMART App Launch 2.x (docs/smart.md). New tables only; nothing existing changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from concord.db import UTCDateTime

revision = "0017_smart"
down_revision = "0016_patient_version"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "smart_client",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(80), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("redirect_uris", JSON, nullable=False),
        sa.Column("launch_url", sa.String(500), nullable=True),
        sa.Column("allowed_scopes", sa.Text(), nullable=False),
        sa.Column("confidential", sa.Boolean(), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=True),
        sa.Column("jwks", JSON, nullable=True),
        sa.Column("jwks_url", sa.String(500), nullable=True),
        sa.Column("origins", JSON, nullable=False),
        sa.Column("service_user_id", sa.Uuid(), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_smart_client_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["service_user_id"],
            ["user_account.id"],
            name=op.f("fk_smart_client_service_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_smart_client_created_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smart_client")),
        sa.UniqueConstraint("client_id", name=op.f("uq_smart_client_client_id")),
    )
    op.create_index(op.f("ix_smart_client_organization_id"), "smart_client", ["organization_id"])
    op.create_table(
        "smart_launch",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("launch_hash", sa.String(128), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_smart_launch_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_smart_launch_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_smart_launch_created_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smart_launch")),
        sa.UniqueConstraint("launch_hash", name=op.f("uq_smart_launch_launch_hash")),
    )
    op.create_index(op.f("ix_smart_launch_organization_id"), "smart_launch", ["organization_id"])
    op.create_table(
        "smart_grant",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("nonce", sa.String(200), nullable=True),
        sa.Column("refresh_hash", sa.String(128), nullable=True),
        sa.Column("previous_refresh_hash", sa.String(128), nullable=True),
        sa.Column("refresh_expires_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["smart_client.id"], name=op.f("fk_smart_grant_client_id_smart_client")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_smart_grant_user_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_smart_grant_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smart_grant")),
        sa.UniqueConstraint("refresh_hash", name=op.f("uq_smart_grant_refresh_hash")),
    )
    op.create_index(op.f("ix_smart_grant_client_id"), "smart_grant", ["client_id"])
    op.create_index(op.f("ix_smart_grant_user_id"), "smart_grant", ["user_id"])
    op.create_index(op.f("ix_smart_grant_patient_id"), "smart_grant", ["patient_id"])
    op.create_index(
        op.f("ix_smart_grant_previous_refresh_hash"), "smart_grant", ["previous_refresh_hash"]
    )
    op.create_table(
        "smart_code",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(128), nullable=False),
        sa.Column("grant_id", sa.Uuid(), nullable=False),
        sa.Column("redirect_uri", sa.String(500), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["smart_grant.id"], name=op.f("fk_smart_code_grant_id_smart_grant")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smart_code")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_smart_code_code_hash")),
    )
    op.create_table(
        "smart_token",
        sa.Column("api_token_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("grant_id", sa.Uuid(), nullable=True),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_token_id"], ["api_token.id"], name=op.f("fk_smart_token_api_token_id_api_token")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["smart_client.id"], name=op.f("fk_smart_token_client_id_smart_client")
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["smart_grant.id"], name=op.f("fk_smart_token_grant_id_smart_grant")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_smart_token_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("api_token_id", name=op.f("pk_smart_token")),
    )
    op.create_index(op.f("ix_smart_token_client_id"), "smart_token", ["client_id"])
    op.create_index(op.f("ix_smart_token_grant_id"), "smart_token", ["grant_id"])
    op.create_table(
        "smart_key",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("private_jwk", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smart_key")),
        sa.UniqueConstraint("kid", name=op.f("uq_smart_key_kid")),
    )


def downgrade() -> None:
    for table in ("smart_key", "smart_token", "smart_code", "smart_grant", "smart_launch"):
        op.drop_table(table)
    op.drop_table("smart_client")
