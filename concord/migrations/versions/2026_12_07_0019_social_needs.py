"""social needs: health concerns, community services, postcode centres, referrals

Revision ID: 0019_social_needs
Revises: 0018_meds
Create Date: 2026-12-07 17:15:11

Issue 23: concerns found by a social-needs screen, the directory of community services with a
postcode centroid table for distances, and closed-loop referrals (ServiceRequest + Task) with
their status history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import concord.db

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0019_social_needs"
down_revision = "0018_meds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "postcode_centroid",
        sa.Column("postcode", sa.String(length=12), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("postcode", name=op.f("pk_postcode_centroid")),
    )
    op.create_table(
        "community_service",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("provider_name", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("categories", JSON, nullable=False),
        sa.Column("eligibility", sa.String(length=500), nullable=True),
        sa.Column("languages", JSON, nullable=False),
        sa.Column("hours", sa.String(length=300), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=True),
        sa.Column("postcode", sa.String(length=12), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("website", sa.String(length=300), nullable=True),
        sa.Column("electronic_referrals", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=120), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_community_service_organization_id_organization"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_community_service")),
    )
    with op.batch_alter_table("community_service", schema=None) as batch_op:
        batch_op.create_index(
            "ix_community_service_org", ["organization_id", "active"], unique=False
        )

    op.create_table(
        "social_concern",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("domain", sa.String(length=60), nullable=False),
        sa.Column("snomed", sa.String(length=20), nullable=True),
        sa.Column("icd10", sa.String(length=12), nullable=True),
        sa.Column("patient_words", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("source_response_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by_id", sa.Uuid(), nullable=True),
        sa.Column("decline_reason", sa.String(length=500), nullable=True),
        sa.Column("resolved_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["user_account.id"],
            name=op.f("fk_social_concern_decided_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_social_concern_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_social_concern_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["source_response_id"],
            ["measure_response.id"],
            name=op.f("fk_social_concern_source_response_id_measure_response"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_social_concern")),
    )
    with op.batch_alter_table("social_concern", schema=None) as batch_op:
        batch_op.create_index("ix_social_concern_patient", ["patient_id", "status"], unique=False)

    op.create_table(
        "social_referral",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("concern_id", sa.Uuid(), nullable=True),
        sa.Column("service_id", sa.Uuid(), nullable=False),
        sa.Column("domain", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("self_referral", sa.Boolean(), nullable=False),
        sa.Column("shared_summary", sa.String(length=1000), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=True),
        sa.Column("consent_id", sa.Uuid(), nullable=True),
        sa.Column("requested_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("respond_by", sa.Date(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("token_expires_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column("outcome", sa.String(length=1000), nullable=True),
        sa.Column("patient_report", sa.String(length=20), nullable=True),
        sa.Column("patient_report_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("replaces_id", sa.Uuid(), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["concern_id"],
            ["social_concern.id"],
            name=op.f("fk_social_referral_concern_id_social_concern"),
        ),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_social_referral_consent_id_consent")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_social_referral_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_social_referral_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_social_referral_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["replaces_id"],
            ["social_referral.id"],
            name=op.f("fk_social_referral_replaces_id_social_referral"),
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["community_service.id"],
            name=op.f("fk_social_referral_service_id_community_service"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_social_referral")),
    )
    with op.batch_alter_table("social_referral", schema=None) as batch_op:
        batch_op.create_index("ix_social_referral_patient", ["patient_id", "status"], unique=False)
        batch_op.create_index("ix_social_referral_token", ["token_hash"], unique=False)

    op.create_table(
        "social_referral_event",
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("by_id", sa.Uuid(), nullable=True),
        sa.Column("party", sa.String(length=12), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_id"], ["user_account.id"], name=op.f("fk_social_referral_event_by_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["social_referral.id"],
            name=op.f("fk_social_referral_event_referral_id_social_referral"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_social_referral_event")),
    )
    with op.batch_alter_table("social_referral_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_social_referral_event_referral", ["referral_id", "at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("social_referral_event", schema=None) as batch_op:
        batch_op.drop_index("ix_social_referral_event_referral")

    op.drop_table("social_referral_event")
    with op.batch_alter_table("social_referral", schema=None) as batch_op:
        batch_op.drop_index("ix_social_referral_token")
        batch_op.drop_index("ix_social_referral_patient")

    op.drop_table("social_referral")
    with op.batch_alter_table("social_concern", schema=None) as batch_op:
        batch_op.drop_index("ix_social_concern_patient")

    op.drop_table("social_concern")
    with op.batch_alter_table("community_service", schema=None) as batch_op:
        batch_op.drop_index("ix_community_service_org")

    op.drop_table("community_service")
    op.drop_table("postcode_centroid")
