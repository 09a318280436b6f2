"""plan item author: who wrote each care plan item, kept when someone else edits it

Revision ID: 0014_plan_item_author
Revises: 0013_ehr_import
Create Date: 2026-12-07 15:30:00

Issue 18: a plan item's 42 CFR Part 2 label follows the item's author (a Part 2 program's
staff), not its last editor. Until now the items held only `updated_by_id`, so a primary care
clinician editing a program's item dropped its label and program staff editing a primary care
item added one. Backfill: the author of the first revision whose snapshot holds the item (the
revision that added it); an item no revision names keeps its current editor.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0014_plan_item_author"
down_revision = "0013_ehr_import"
branch_labels = None
depends_on = None

# Snapshot section -> table.
SECTIONS = {
    "concerns": "concern",
    "goals": "goal",
    "milestones": "milestone",
    "interventions": "intervention",
    "action_steps": "action_step",
    "strengths": "strength",
    "barriers": "barrier",
    "contingencies": "contingency",
}


def _uuid(value: object) -> object:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def upgrade() -> None:
    for table in SECTIONS.values():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("author_id", sa.Uuid(), nullable=True))

    bind = op.get_bind()
    meta = sa.MetaData()
    revision_t = sa.Table(
        "plan_revision",
        meta,
        sa.Column("plan_id", sa.Uuid()),
        sa.Column("number", sa.Integer()),
        sa.Column("author_id", sa.Uuid()),
        sa.Column("snapshot", sa.JSON()),
    )
    # The first revision that names an item is the one that added it.
    first: dict[str, dict[object, object]] = {table: {} for table in SECTIONS.values()}
    rows = bind.execute(
        sa.select(revision_t.c.author_id, revision_t.c.snapshot).order_by(
            revision_t.c.plan_id, revision_t.c.number
        )
    )
    for author_id, snapshot in rows:
        for section, table in SECTIONS.items():
            for item_id in ((snapshot or {}).get(section) or {}).keys():
                key = _uuid(item_id)
                if key is not None:
                    first[table].setdefault(key, author_id)
    for table, authors in first.items():
        t = sa.Table(
            table,
            sa.MetaData(),
            sa.Column("id", sa.Uuid()),
            sa.Column("author_id", sa.Uuid()),
            sa.Column("updated_by_id", sa.Uuid()),
        )
        for item_id, author_id in authors.items():
            bind.execute(sa.update(t).where(t.c.id == item_id).values(author_id=author_id))
        bind.execute(
            sa.update(t).where(t.c.author_id.is_(None)).values(author_id=t.c.updated_by_id)
        )

    for table in SECTIONS.values():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("author_id", existing_type=sa.Uuid(), nullable=False)
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_author_id_user_account"),
                "user_account",
                ["author_id"],
                ["id"],
            )


def downgrade() -> None:
    for table in SECTIONS.values():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"fk_{table}_author_id_user_account"), type_="foreignkey"
            )
            batch_op.drop_column("author_id")
