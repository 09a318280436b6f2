"""The schema comes from the migrations; the models must agree with them exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from concord.migrate import head_revision
from concord.models import Base


def test_models_and_migrations_agree(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], (
        f"The models and the migrations disagree; write a migration for: {differences}"
    )


def test_the_database_is_at_the_newest_migration(engine):
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    assert current == head_revision()


def test_migrations_go_down_and_up_again(tmp_path):
    from alembic import command
    from sqlalchemy import inspect

    from concord.db import make_engine
    from concord.migrate import alembic_config, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'roundtrip.db'}")
    upgrade(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    upgrade(engine)
    assert "care_plan" in inspect(engine).get_table_names()
    engine.dispose()
