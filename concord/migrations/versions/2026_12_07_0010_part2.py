"""part2: Part 2 programs, label corrections and emergency access (42 CFR Part 2)

Revision ID: 0010_part2
Revises: 0009_consents
Create Date: 2026-12-07 05:20:00

Issue 18: an organization marks a clinic as a Part 2 program (and may name its privacy
officer); an authorized person's correction of a record's Part 2 label is a row of its own; a
clinician's emergency access to withheld records (break the glass) is a row with its expiry.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import concord.db

revision = "0010_part2"
down_revision = "0009_consents"
branch_labels = None
depends_on = None

WHEN = concord.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("part2_program", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("privacy_officer_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_clinic_privacy_officer_id_user_account"),
            "user_account",
            ["privacy_officer_id"],
            ["id"],
            use_alter=True,
        )
    op.create_table(
        "part2_label_override",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("record_type", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("part2", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("by_id", sa.Uuid(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_id"], ["user_account.id"], name=op.f("fk_part2_label_override_by_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_part2_label_override_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_part2_label_override_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_part2_label_override")),
    )
    with op.batch_alter_table("part2_label_override", schema=None) as batch_op:
        batch_op.create_index("ix_part2_label_override_patient", ["patient_id"], unique=False)
    op.create_table(
        "emergency_access",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_emergency_access_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_emergency_access_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_emergency_access_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emergency_access")),
    )
    with op.batch_alter_table("emergency_access", schema=None) as batch_op:
        batch_op.create_index(
            "ix_emergency_access_user_patient", ["user_id", "patient_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("emergency_access", schema=None) as batch_op:
        batch_op.drop_index("ix_emergency_access_user_patient")
    op.drop_table("emergency_access")
    with op.batch_alter_table("part2_label_override", schema=None) as batch_op:
        batch_op.drop_index("ix_part2_label_override_patient")
    op.drop_table("part2_label_override")
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_clinic_privacy_officer_id_user_account"), type_="foreignkey"
        )
        batch_op.drop_column("privacy_officer_id")
        batch_op.drop_column("part2_program")
