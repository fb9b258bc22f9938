"""One fixture for the app, database and Redis.

Under CI=true the tests use this machine's PostgreSQL (database ``test``) and Redis, and stop with an
error when either is unreachable. Elsewhere they fall back to SQLite and fakeredis and say so.
The test schema is built from the models (``create_all``); tests/foundation/test_migrations.py proves
the Alembic migrations build exactly the same schema on an empty database and downgrade to base.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

# One definition of the browser fixtures for the whole suite: a session-scoped Playwright instance
# imported into several modules would start a second sync Playwright inside the first one's loop.
from tests.browser_support import browser, chromium_browser, live_server  # noqa: E402,F401

os.environ.setdefault("DESK_ARGON2_PROFILE", "cheapest")  # before app modules import the hasher
CI = os.environ.get("CI") == "true"
PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
_BACKEND: dict[str, str] = {}


def _reachable_postgres() -> str | None:
    try:
        engine = create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return str(exc).splitlines()[0]


def _reachable_redis() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        return None
    except Exception as exc:
        return str(exc)


def pytest_configure(config):
    if CI or os.environ.get("DESK_TEST_REAL_SERVICES") == "1":
        problems = [f"PostgreSQL at {PG_URL}: {err}" for err in [_reachable_postgres()] if err]
        problems += [f"Redis at {REDIS_URL}: {err}" for err in [_reachable_redis()] if err]
        if problems:
            raise pytest.UsageError("CI=true needs the real services; unreachable: " + "; ".join(problems))
        _BACKEND.update(database=PG_URL, redis=REDIS_URL, kind="real")
    else:
        _BACKEND.update(kind="fallback")


def pytest_report_header(config):
    if _BACKEND.get("kind") == "real":
        return f"desk tests: PostgreSQL {PG_URL} and Redis {REDIS_URL}"
    return "desk tests: CI is not 'true', so using SQLite and fakeredis instead of PostgreSQL and Redis"


def _test_env(tmp_dir: Path) -> dict[str, str]:
    env = {"SECRET_KEY": "test-secret-key", "PUBLIC_BASE_URL": "http://desk.test", "DESK_DEV_TOOLS": "1",
           "TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "test-twilio-token", "LOG_LEVEL": "WARNING"}
    if _BACKEND["kind"] == "real":
        env.update(DATABASE_URL=PG_URL, REDIS_URL=REDIS_URL)
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp_dir / 'test.db'}"
    return env


def _reset_schema(app) -> None:
    from app.extensions import db

    with app.app_context():
        engine = db.engine
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
            else:
                for table in inspect(conn).get_table_names():
                    conn.execute(text(f'DROP TABLE IF EXISTS "{table}"'))
        db.create_all()


@pytest.fixture(scope="session")
def _app(tmp_path_factory):
    from app import create_app

    tmp_dir = tmp_path_factory.mktemp("desk")
    overrides = {"TESTING": True, "WTF_CSRF_ENABLED": False, "JOBS_MODE": "inline", "ROUTER_THREAD": False,
                 "SOCKETIO_MESSAGE_QUEUE": None, "SERVER_NAME": None}
    app = create_app(env=_test_env(tmp_dir), overrides=overrides)
    if _BACKEND["kind"] == "fallback":
        import fakeredis

        app.extensions["desk.redis"] = fakeredis.FakeRedis(decode_responses=True)
    _reset_schema(app)
    return app


def _empty_tables(app) -> None:
    from agent_console.namespace import _dispatcher
    from app.extensions import db

    _dispatcher.drain()  # the console's background fan-out reads the database: let it finish first
    with app.app_context():
        db.session.remove()
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as conn:
            if db.engine.dialect.name == "postgresql":
                conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture()
def app(_app):
    """The app with empty tables, an empty Redis database and a pushed app context."""
    _empty_tables(_app)
    _app.extensions["desk.redis"].flushdb()
    _app.extensions["desk.jobs"].scheduled.clear()  # delayed jobs of an earlier test never leak in
    from app.webhooks.service import forget_subscriptions

    forget_subscriptions()
    with _app.app_context():
        yield _app
        from app.extensions import db

        db.session.rollback()
        db.session.remove()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def db_session(app):
    from app.extensions import db

    return db.session


@pytest.fixture()
def postgresql(app) -> None:
    """For a test that pins what the desk does only on PostgreSQL (statements sent, transactions): skipped
    on the SQLite fallback outside CI; CI always runs it (``CI=true`` refuses to fall back)."""
    from app.extensions import db

    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: the fallback database is SQLite")


@pytest.fixture()
def redis_client(app):
    return app.extensions["desk.redis"]


@pytest.fixture()
def desk_config(app):
    return app.extensions["desk.config"]


@pytest.fixture()
def events(app):
    """Realtime events published during the test, with a fresh router before and after (routing tests)."""
    from app import realtime
    from queues import router

    seen: list[tuple[str, dict]] = []

    def listener(name, payload):
        seen.append((name, payload))

    realtime.subscribe(listener)
    router.reset(app)
    yield seen
    realtime.unsubscribe(listener)
    router.reset(app)
