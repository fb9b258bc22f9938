"""Migrations: upgrade an empty database to head, match the models exactly, and downgrade to base."""
from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text

from app.extensions import db

MIGRATIONS = str(Path(__file__).resolve().parents[2] / "migrations")


def _scratch_url(app, tmp_path):
    if db.engine.dialect.name == "postgresql":
        base = db.engine.url
        with create_engine(base, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS desk_migrations_scratch"))
            conn.execute(text("CREATE DATABASE desk_migrations_scratch"))
        return base.set(database="desk_migrations_scratch")
    return f"sqlite:///{tmp_path / 'scratch.db'}"


def test_upgrade_matches_models_and_downgrades_to_base(app, tmp_path):
    url = _scratch_url(app, tmp_path)
    previous = app.config["SQLALCHEMY_DATABASE_URI"]
    engines = app.extensions["sqlalchemy"]._app_engines[app]
    saved = dict(engines)
    scratch = create_engine(url)
    engines[None] = scratch
    try:
        upgrade(directory=MIGRATIONS)
        with scratch.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
        assert diff == [], f"models and migrations differ; run 'flask --app app db migrate': {diff}"
        downgrade(directory=MIGRATIONS, revision="base")
        with scratch.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    finally:
        engines.clear()
        engines.update(saved)
        scratch.dispose()
        app.config["SQLALCHEMY_DATABASE_URI"] = previous
