"""Migration 0014's backfill, on both engines, with data: a plan item's author is the author
of the first revision that holds it, not its last editor; an item no revision names keeps its
editor. (Issue 18: a Part 2 label follows the item's author.)

The data are made at the head through the services (a program care manager adds a goal, a PCP
edits it; an item no revision holds is written straight to its table), the schema is taken down
to 0013 (the author column is dropped) and brought up again: the backfill must name the
care manager for the goal and the editor for the unrevised item.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, MetaData, Table, Uuid, select, text, update
from sqlalchemy.orm import Session

from concord.audit.service import set_context
from concord.careplans import service as plans
from concord.careplans.schemas import GoalIn, PlanStart, StrengthIn
from concord.clock import FakeClock, set_clock
from concord.db import make_engine
from concord.migrate import downgrade, upgrade
from tests.conftest import NOW, commit, fresh_database
from tests.factories import acc_for, build_personas


def _items(name: str) -> Table:
    return Table(
        name,
        MetaData(),
        Column("id", Uuid()),
        Column("author_id", Uuid()),
        Column("updated_by_id", Uuid()),
    )


def test_the_backfill_names_who_added_each_item(database_url, tmp_path):
    previous = set_clock(FakeClock(NOW))
    try:
        with fresh_database(database_url, tmp_path, "authors") as url:
            engine = make_engine(url)
            try:
                upgrade(engine)
                with Session(engine) as session:
                    set_context(session, channel="system")
                    people = build_personas(session)
                    commit(session)
                    by_cm = acc_for(session, people.care_manager, people.patient)
                    by_other = acc_for(session, people.therapist, people.patient)
                    plans.start_plan(session, access=by_cm, data=PlanStart())
                    goal = plans.add_item(
                        session,
                        access=by_cm,
                        section="goals",
                        data=GoalIn(statement="Two alcohol-free days a week", category="symptoms"),
                    )
                    commit(session)
                    plans.update_item(
                        session,
                        access=by_other,
                        section="goals",
                        item_id=goal.id,
                        data=GoalIn(
                            statement="Three alcohol-free days a week", category="symptoms"
                        ),
                        version=goal.version,
                        reason=None,
                    )
                    strength = plans.add_item(
                        session,
                        access=by_cm,
                        section="strengths",
                        data=StrengthIn(description="Walks every Sunday"),
                    )
                    commit(session)
                    ids = {
                        "cm": people.care_manager.id,
                        "other": people.therapist.id,
                        "goal": goal.id,
                        "strength": strength.id,
                    }
                revisions = Table(
                    "plan_revision",
                    MetaData(),
                    Column("id", Uuid()),
                    Column("snapshot", JSON()),
                )
                with engine.begin() as connection:
                    # An item no revision holds (as if made before revisions kept snapshots),
                    # last edited by the therapist.
                    strength_t = _items("strength")
                    connection.execute(
                        update(strength_t)
                        .where(strength_t.c.id == ids["strength"])
                        .values(updated_by_id=ids["other"])
                    )
                    held = 0
                    for rid, snap in connection.execute(select(revisions)).all():
                        held += str(ids["goal"]) in (snap.get("goals") or {})
                        snap = {k: v for k, v in snap.items() if k != "strengths"}
                        connection.execute(
                            update(revisions).where(revisions.c.id == rid).values(snapshot=snap)
                        )
                    goal = _items("goal")
                    goal_editor = connection.scalar(
                        select(goal.c.updated_by_id).where(goal.c.id == ids["goal"])
                    )
                assert held >= 2, "the goal is in the revision that added it and the edit's"
                assert goal_editor == ids["other"]
                downgrade(engine, "0013_ehr_import")
                with engine.connect() as connection:
                    columns = connection.execute(text("SELECT * FROM goal")).keys()
                assert "author_id" not in columns
                upgrade(engine)
                with engine.connect() as connection:
                    authors = {
                        item_id: author_id
                        for table in ("goal", "strength")
                        for item_id, author_id in connection.execute(
                            select(_items(table).c["id", "author_id"])
                        ).all()
                    }
                assert authors[ids["goal"]] == ids["cm"], "the goal's author is who added it"
                assert authors[ids["strength"]] == ids["other"], "no revision: its editor"
            finally:
                engine.dispose()
    finally:
        set_clock(previous)
