"""Pooled connections are pinged only after sitting idle, and a dead one is replaced before use."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import app as app_module
from app.extensions import db


@pytest.fixture()
def pings(app, monkeypatch):
    engine = db.engine
    engine.dispose()  # start from an empty pool: every connection below is this test's own
    seen: list[int] = []
    real_ping = engine.dialect.do_ping

    def counting_ping(dbapi_connection):
        seen.append(id(dbapi_connection))
        return real_ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting_ping)
    return seen


def _use(engine) -> int:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        return id(conn.connection.dbapi_connection)


def test_a_connection_used_a_moment_ago_is_not_pinged(app, pings):
    assert not app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_pre_ping")
    for _ in range(3):
        _use(db.engine)
    assert pings == []


def test_an_idle_connection_is_pinged_before_use(app, pings, monkeypatch):
    first = _use(db.engine)
    monkeypatch.setattr(app_module, "IDLE_PING_S", 0.0)  # every checkin now counts as long idle
    assert _use(db.engine) == first
    assert pings == [first]


def test_an_idle_connection_that_fails_its_ping_is_replaced(app, pings, monkeypatch):
    engine = db.engine
    first = _use(engine)
    monkeypatch.setattr(app_module, "IDLE_PING_S", 0.0)
    dead = engine.dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")

    def failing_ping(dbapi_connection):
        pings.append(id(dbapi_connection))
        raise dead

    monkeypatch.setattr(engine.dialect, "do_ping", failing_ping)
    monkeypatch.setattr(engine.dialect, "is_disconnect", lambda error, *args: error is dead)
    with engine.connect() as conn:  # the pool swaps in a new connection; the caller never sees the failure
        assert conn.execute(text("SELECT 1")).scalar() == 1
        assert id(conn.connection.dbapi_connection) != first
    assert pings == [first]


def test_a_ping_error_that_is_not_a_disconnect_is_raised(app, pings, monkeypatch):
    engine = db.engine
    _use(engine)
    monkeypatch.setattr(app_module, "IDLE_PING_S", 0.0)
    broken = engine.dialect.loaded_dbapi.ProgrammingError("not a lost connection")

    def failing_ping(dbapi_connection):
        raise broken

    monkeypatch.setattr(engine.dialect, "do_ping", failing_ping)
    monkeypatch.setattr(engine.dialect, "is_disconnect", lambda error, *args: False)
    with pytest.raises(DBAPIError) as raised:
        engine.connect()
    assert raised.value.orig is broken
