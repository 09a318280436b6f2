"""foundation: accounts, patients, care plans, audit

Revision ID: 0001
Revises:
Create Date: 2026-11-22 10:59:52.519206
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import concord.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.create_table(
        "audit_event",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("occurred_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_role", sa.String(length=40), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("object_type", sa.String(length=40), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_actor_seq", ["actor_id", "seq"], unique=False)
        batch_op.create_index("ix_audit_event_patient_seq", ["patient_id", "seq"], unique=False)

    op.create_table(
        "login_attempt",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempt")),
    )
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempt_email_at", ["email", "at"], unique=False)
        batch_op.create_index("ix_login_attempt_ip_at", ["ip", "at"], unique=False)

    op.create_table(
        "organization",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=80), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("require_mfa_for_clinicians", sa.Boolean(), nullable=False),
        sa.Column("review_interval_days", sa.Integer(), nullable=True),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization")),
        sa.UniqueConstraint("slug", name=op.f("uq_organization_slug")),
    )
    op.create_table(
        "clinic",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_clinic_organization_id_organization"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinic")),
    )
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_clinic_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "user_account",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("password_changed_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("totp_secret_encrypted", sa.String(length=400), nullable=True),
        sa.Column("mfa_enabled", sa.Boolean(), nullable=False),
        sa.Column("totp_last_step", sa.Integer(), nullable=True),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinic.id"], name=op.f("fk_user_account_clinic_id_clinic")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_user_account_organization_id_organization"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_account")),
        sa.UniqueConstraint("email", name=op.f("uq_user_account_email")),
    )
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_user_account_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "api_token",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_api_token_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_token_token_hash")),
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_token_user_id"), ["user_id"], unique=False)

    op.create_table(
        "mfa_recovery_code",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(length=128), nullable=False),
        sa.Column("used_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_mfa_recovery_code_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_recovery_code")),
    )
    with op.batch_alter_table("mfa_recovery_code", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mfa_recovery_code_user_id"), ["user_id"], unique=False)

    op.create_table(
        "patient",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("mrn", sa.String(length=40), nullable=False),
        sa.Column("given_name", sa.String(length=100), nullable=False),
        sa.Column("family_name", sa.String(length=100), nullable=False),
        sa.Column("preferred_name", sa.String(length=100), nullable=True),
        sa.Column("pronouns", sa.String(length=40), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("gender", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinic.id"], name=op.f("fk_patient_clinic_id_clinic")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_patient_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_patient_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient")),
        sa.UniqueConstraint("organization_id", "mrn", name=op.f("uq_patient_organization_id_mrn")),
        sa.UniqueConstraint("user_id", name=op.f("uq_patient_user_id")),
    )
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patient_clinic_id"), ["clinic_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_patient_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "submission",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("result", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_submission_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_submission")),
    )
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_submission_created_at"), ["created_at"], unique=False)

    op.create_table(
        "web_session",
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("csrf_token", sa.String(length=128), nullable=False),
        sa.Column("mfa_verified", sa.Boolean(), nullable=False),
        sa.Column("revoked_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_web_session_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_session_token_hash")),
    )
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_session_user_id"), ["user_id"], unique=False)

    op.create_table(
        "care_plan",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=False),
        sa.Column("activated_on", sa.Date(), nullable=True),
        sa.Column("next_review_on", sa.Date(), nullable=True),
        sa.Column("last_reviewed_on", sa.Date(), nullable=True),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("substantive_revision_number", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("what_matters_most", sa.Text(), nullable=True),
        sa.Column("treatment_preferences", sa.Text(), nullable=True),
        sa.Column("monitoring_intensity", sa.String(length=20), nullable=True),
        sa.Column("appointment_frequency", sa.String(length=200), nullable=True),
        sa.Column("preferred_language", sa.String(length=60), nullable=True),
        sa.Column("interpreter_needed", sa.Boolean(), nullable=False),
        sa.Column("cultural_considerations", sa.Text(), nullable=True),
        sa.Column("others_involved", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_care_plan_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_care_plan_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_plan")),
    )
    with op.batch_alter_table("care_plan", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_care_plan_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(
            "uq_care_plan_one_current",
            ["patient_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('draft', 'active')"),
            postgresql_where=sa.text("status IN ('draft', 'active')"),
        )

    op.create_table(
        "care_team",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_care_team_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_team")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_care_team_patient_id")),
    )
    op.create_table(
        "related_person",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("relationship_to_patient", sa.String(length=60), nullable=False),
        sa.Column("consent_recorded_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("consent_recorded_by_id", sa.Uuid(), nullable=True),
        sa.Column("consent_note", sa.String(length=500), nullable=True),
        sa.Column("consent_withdrawn_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_recorded_by_id"],
            ["user_account.id"],
            name=op.f("fk_related_person_consent_recorded_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_related_person_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_related_person_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_related_person")),
        sa.UniqueConstraint(
            "patient_id", "user_id", name=op.f("uq_related_person_patient_id_user_id")
        ),
    )
    with op.batch_alter_table("related_person", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_related_person_patient_id"), ["patient_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_related_person_user_id"), ["user_id"], unique=False)

    op.create_table(
        "barrier",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("way_around", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Uuid(), nullable=False),
        sa.Column("removed_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["care_plan.id"], name=op.f("fk_barrier_plan_id_care_plan")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_barrier_updated_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_barrier")),
    )
    with op.batch_alter_table("barrier", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_barrier_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "care_team_member",
        sa.Column("care_team_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("is_lead", sa.Boolean(), nullable=False),
        sa.Column("added_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("added_by_id", sa.Uuid(), nullable=True),
        sa.Column("ended_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["added_by_id"],
            ["user_account.id"],
            name=op.f("fk_care_team_member_added_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["care_team_id"],
            ["care_team.id"],
            name=op.f("fk_care_team_member_care_team_id_care_team"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_care_team_member_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_team_member")),
        sa.UniqueConstraint(
            "care_team_id", "user_id", name=op.f("uq_care_team_member_care_team_id_user_id")
        ),
    )
    with op.batch_alter_table("care_team_member", schema=None) as batch_op:
        batch_op.create_index(
            "ix_care_team_member_user_current", ["user_id", "ended_at"], unique=False
        )
        batch_op.create_index(
            "uq_care_team_member_one_lead",
            ["care_team_id"],
            unique=True,
            sqlite_where=sa.text("is_lead AND ended_at IS NULL"),
            postgresql_where=sa.text("is_lead AND ended_at IS NULL"),
        )

    op.create_table(
        "concern",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("code_system", sa.String(length=20), nullable=True),
        sa.Column("code", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Uuid(), nullable=False),
        sa.Column("removed_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["care_plan.id"], name=op.f("fk_concern_plan_id_care_plan")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_concern_updated_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concern")),
    )
    with op.batch_alter_table("concern", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_concern_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "contingency",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("if_this", sa.Text(), nullable=False),
        sa.Column("then_we", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Uuid(), nullable=False),
        sa.Column("removed_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["care_plan.id"], name=op.f("fk_contingency_plan_id_care_plan")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_contingency_updated_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contingency")),
    )
    with op.batch_alter_table("contingency", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contingency_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "goal",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("measure", sa.Text(), nullable=True),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("proposed_by_id", sa.Uuid(), nullable=False),
        sa.Column("proposed_by_patient", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_changed_on", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Uuid(), nullable=False),
        sa.Column("removed_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["care_plan.id"], name=op.f("fk_goal_plan_id_care_plan")
        ),
        sa.ForeignKeyConstraint(
            ["proposed_by_id"],
            ["user_account.id"],
            name=op.f("fk_goal_proposed_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["user_account.id"], name=op.f("fk_goal_updated_by_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goal")),
    )
    with op.batch_alter_table("goal", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_goal_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "plan_agreement",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("party", sa.String(length=20), nullable=False),
        sa.Column("agreed_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["care_plan.id"], name=op.f("fk_plan_agreement_plan_id_care_plan")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_plan_agreement_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_agreement")),
        sa.UniqueConstraint(
            "plan_id",
            "revision_number",
            "party",
            name=op.f("uq_plan_agreement_plan_id_revision_number_party"),
        ),
    )
    with op.batch_alter_table("plan_agreement", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_agreement_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "plan_comment",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["user_account.id"], name=op.f("fk_plan_comment_author_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["care_plan.id"], name=op.f("fk_plan_comment_plan_id_care_plan")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_comment")),
    )
    with op.batch_alter_table("plan_comment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_comment_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "plan_revision",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "summary",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("substantive", sa.Boolean(), nullable=False),
        sa.Column(
            "snapshot",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["user_account.id"], name=op.f("fk_plan_revision_author_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["care_plan.id"], name=op.f("fk_plan_revision_plan_id_care_plan")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_revision")),
        sa.UniqueConstraint("plan_id", "number", name=op.f("uq_plan_revision_plan_id_number")),
    )
    op.create_table(
        "strength",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Uuid(), nullable=False),
        sa.Column("removed_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["care_plan.id"], name=op.f("fk_strength_plan_id_care_plan")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_strength_updated_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strength")),
    )
    with op.batch_alter_table("strength", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_strength_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "action_step",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("goal_id", sa.Uuid(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner_is_patient", sa.Boolean(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("done_on", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Uuid(), nullable=False),
        sa.Column("removed_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["goal_id"], ["goal.id"], name=op.f("fk_action_step_goal_id_goal")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["user_account.id"], name=op.f("fk_action_step_owner_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["care_plan.id"], name=op.f("fk_action_step_plan_id_care_plan")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_action_step_updated_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_step")),
    )
    with op.batch_alter_table("action_step", schema=None) as batch_op:
        batch_op.create_index("ix_action_step_owner_status", ["owner_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_action_step_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "intervention",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("goal_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("responsible_id", sa.Uuid(), nullable=True),
        sa.Column("frequency", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Uuid(), nullable=False),
        sa.Column("removed_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["goal_id"], ["goal.id"], name=op.f("fk_intervention_goal_id_goal")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["care_plan.id"], name=op.f("fk_intervention_plan_id_care_plan")
        ),
        sa.ForeignKeyConstraint(
            ["responsible_id"],
            ["user_account.id"],
            name=op.f("fk_intervention_responsible_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_intervention_updated_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intervention")),
    )
    with op.batch_alter_table("intervention", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_intervention_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "milestone",
        sa.Column("goal_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("target_on", sa.Date(), nullable=True),
        sa.Column("reached_on", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", concord.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Uuid(), nullable=False),
        sa.Column("removed_at", concord.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["goal_id"], ["goal.id"], name=op.f("fk_milestone_goal_id_goal")),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_milestone_updated_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_milestone")),
    )
    with op.batch_alter_table("milestone", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_milestone_goal_id"), ["goal_id"], unique=False)
    _audit_append_only()


AUDIT_GUARD_PG = """
CREATE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only';
END;
$$ LANGUAGE plpgsql
"""


def _audit_append_only() -> None:
    """The audit trail refuses UPDATE and DELETE at the database, beneath the application."""
    op.execute(
        sa.text("INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, :genesis)").bindparams(
            genesis="0" * 64
        )
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(AUDIT_GUARD_PG)
        op.execute(
            "CREATE TRIGGER audit_event_no_update BEFORE UPDATE OR DELETE ON audit_event "
            "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
            "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
            "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update ON audit_event")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
    with op.batch_alter_table("milestone", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_milestone_goal_id"))

    op.drop_table("milestone")
    with op.batch_alter_table("intervention", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intervention_plan_id"))

    op.drop_table("intervention")
    with op.batch_alter_table("action_step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_step_plan_id"))
        batch_op.drop_index("ix_action_step_owner_status")

    op.drop_table("action_step")
    with op.batch_alter_table("strength", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_strength_plan_id"))

    op.drop_table("strength")
    op.drop_table("plan_revision")
    with op.batch_alter_table("plan_comment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_comment_plan_id"))

    op.drop_table("plan_comment")
    with op.batch_alter_table("plan_agreement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_agreement_plan_id"))

    op.drop_table("plan_agreement")
    with op.batch_alter_table("goal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_goal_plan_id"))

    op.drop_table("goal")
    with op.batch_alter_table("contingency", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contingency_plan_id"))

    op.drop_table("contingency")
    with op.batch_alter_table("concern", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_concern_plan_id"))

    op.drop_table("concern")
    with op.batch_alter_table("care_team_member", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_care_team_member_one_lead",
            sqlite_where=sa.text("is_lead AND ended_at IS NULL"),
            postgresql_where=sa.text("is_lead AND ended_at IS NULL"),
        )
        batch_op.drop_index("ix_care_team_member_user_current")

    op.drop_table("care_team_member")
    with op.batch_alter_table("barrier", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_barrier_plan_id"))

    op.drop_table("barrier")
    with op.batch_alter_table("related_person", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_related_person_user_id"))
        batch_op.drop_index(batch_op.f("ix_related_person_patient_id"))

    op.drop_table("related_person")
    op.drop_table("care_team")
    with op.batch_alter_table("care_plan", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_care_plan_one_current",
            sqlite_where=sa.text("status IN ('draft', 'active')"),
            postgresql_where=sa.text("status IN ('draft', 'active')"),
        )
        batch_op.drop_index(batch_op.f("ix_care_plan_patient_id"))

    op.drop_table("care_plan")
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_session_user_id"))

    op.drop_table("web_session")
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submission_created_at"))

    op.drop_table("submission")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_organization_id"))
        batch_op.drop_index(batch_op.f("ix_patient_clinic_id"))

    op.drop_table("patient")
    with op.batch_alter_table("mfa_recovery_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mfa_recovery_code_user_id"))

    op.drop_table("mfa_recovery_code")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_user_id"))

    op.drop_table("api_token")
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_account_organization_id"))

    op.drop_table("user_account")
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clinic_organization_id"))

    op.drop_table("clinic")
    op.drop_table("organization")
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempt_ip_at")
        batch_op.drop_index("ix_login_attempt_email_at")

    op.drop_table("login_attempt")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_patient_seq")
        batch_op.drop_index("ix_audit_event_actor_seq")

    op.drop_table("audit_event")
    op.drop_table("audit_chain_head")
