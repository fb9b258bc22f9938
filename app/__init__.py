"""The desk's application factory."""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

from flask import Flask

from app.config import ConfigError, DeskConfig, EnvSettings, load_desk_config, load_env_settings


class DeskFlask(Flask):
    """Flask, remembering which hooks and views are plain functions.

    Flask asks ``ensure_sync`` (documented as the method to override) about every hook and view of
    every request, and inspecting a function each time was a measurable share of a short webhook. A
    function found plain is remembered (up to ``MAX_REMEMBERED``: per-request ``after_this_request``
    closures must not grow the set without end); coroutine functions are wrapped as Flask does."""

    MAX_REMEMBERED = 1000

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._plain_functions: set = set()

    def ensure_sync(self, func):
        if func in self._plain_functions:
            return func
        wrapped = super().ensure_sync(func)
        if wrapped is func and len(self._plain_functions) < self.MAX_REMEMBERED:
            self._plain_functions.add(func)
        return wrapped


def create_app(config_path: str | os.PathLike | None = None, *, env: dict[str, str] | None = None,
               overrides: dict[str, Any] | None = None, exit_on_config_error: bool = True) -> Flask:
    """Build the Flask app from config.yaml and the environment.

    A broken configuration prints every problem and exits with status 2 (``exit_on_config_error``),
    or raises ConfigError for callers that want to handle it (tests, tools)."""
    try:
        settings = load_env_settings(env)
        desk_config = load_desk_config(config_path)
    except ConfigError as exc:
        if not exit_on_config_error:
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc

    app = DeskFlask(__name__, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(_flask_settings(app, settings, desk_config))
    app.config.update(overrides or {})
    app.extensions["desk.settings"] = settings
    app.extensions["desk.config"] = desk_config

    from app.wiring import wire

    wire(app)
    _ping_idle_connections(app)
    return app


IDLE_PING_S = 1.0


def _ping_idle_connections(app: Flask) -> None:
    """Check a pooled connection before use only when it has sat idle for ``IDLE_PING_S``.

    ``pool_pre_ping`` pings on every checkout: one more round trip per request, which under load is a
    sizeable share of a short webhook. A connection handed back less than a second ago is as good as
    the last statement it ran; one that sat longer (a quiet desk, a database restarted meanwhile) is
    pinged as before, and a dead one is replaced -- with every other connection opened before it -- so
    the request gets a live connection. Turned off with ``pool_pre_ping=True`` in
    SQLALCHEMY_ENGINE_OPTIONS (then SQLAlchemy pings every checkout itself)."""
    import time

    from sqlalchemy import event, exc

    from app.extensions import db

    if app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}).get("pool_pre_ping"):
        return
    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        dialect = engine.dialect

        def _checked_in(dbapi_connection, record) -> None:
            record.info["desk.idle_since"] = time.monotonic()

        def _checking_out(dbapi_connection, record, proxy, dialect=dialect) -> None:
            idle_since = record.info.get("desk.idle_since")
            if idle_since is None or time.monotonic() - idle_since < IDLE_PING_S:
                return  # new, or used a moment ago
            try:
                dialect.do_ping(dbapi_connection)
            except dialect.loaded_dbapi.Error as error:
                if dialect.is_disconnect(error, dbapi_connection, None):
                    raise exc.InvalidatePoolError(f"idle connection failed its ping: {error}") from error
                raise

        event.listen(engine, "checkin", _checked_in)
        event.listen(engine, "checkout", _checking_out)


def _database_uri(app: Flask, settings: EnvSettings) -> str:
    url = settings.database_url
    if url is None:
        return f"sqlite:///{Path(app.instance_path) / 'desk.db'}"
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _engine_options(settings: EnvSettings) -> dict[str, Any]:
    """Idle connections are checked by ``_ping_idle_connections``; a server database gets the pool the
    environment asks for (SQLite keeps SQLAlchemy's own pool for files)."""
    options: dict[str, Any] = {"pool_pre_ping": False}
    if settings.database_url is not None and not settings.database_url.startswith("sqlite"):
        options.update(pool_size=settings.database_pool_size, max_overflow=settings.database_max_overflow)
    return options


def _secret_key(app: Flask, settings: EnvSettings) -> str:
    if settings.secret_key:
        return settings.secret_key
    if not settings.embedded:
        raise ConfigError("environment", ["SECRET_KEY: required key is missing (needed whenever DATABASE_URL is set)"])
    key_file = Path(app.instance_path) / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _flask_settings(app: Flask, settings: EnvSettings, desk_config: DeskConfig) -> dict[str, Any]:
    secure = settings.public_base_url.startswith("https://")
    return {
        "SECRET_KEY": _secret_key(app, settings),
        "SQLALCHEMY_DATABASE_URI": _database_uri(app, settings),
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(settings),
        "MAX_CONTENT_LENGTH": desk_config.desk.max_request_bytes,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": secure,
        "PERMANENT_SESSION_LIFETIME": 12 * 3600,
        "BABEL_DEFAULT_LOCALE": desk_config.desk.default_language,
        "BABEL_DEFAULT_TIMEZONE": "UTC",
        "BABEL_TRANSLATION_DIRECTORIES": str(Path(__file__).parent / "translations"),
        "WTF_CSRF_TIME_LIMIT": None,
        "PUBLIC_BASE_URL": settings.public_base_url.rstrip("/"),
        "TWILIO_API_KEY_SID": settings.twilio_api_key_sid,
        "TWILIO_API_KEY_SECRET": settings.twilio_api_key_secret,
        "TWILIO_TWIML_APP_SID": settings.twilio_twiml_app_sid,
    }
