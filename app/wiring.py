"""Binds extensions, blueprints, error pages, request ids and CLI commands to a new app."""
from __future__ import annotations

import importlib
import logging
import uuid

from flask import Flask, current_app, g, jsonify, render_template, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_babel import get_locale, refresh as refresh_babel
from flask_login import current_user
from sqlalchemy.orm import lazyload
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from app.extensions import babel, csrf, db, login_manager, migrate, socketio
from app.logging_setup import configure_logging

log = logging.getLogger(__name__)

# Each domain adds its blueprint module here: "module.path:attribute".
BLUEPRINTS = [
    "app.auth.views:bp",
    "app.auth.twofactor_views:bp",
    "app.audit.views:bp",
    "app.collision_views:bp",
    "app.privacy_views:bp",
    "app.auth.token_views:bp",
    "agent_console.routing_trace:bp",
    "app.auth.staff_views:bp",
    "app.ops:bp",
    "app.portal.views:bp",
    "app.portal.kb_admin_views:bp",
    "app.channels.chat_views:bp",
    "agent_console.supervisor:bp",
    "agent_console.views:bp",
    "app.crm.api:bp",
    "app.crm.views:bp",
    "app.crm.api_more:bp",
    "app.complaints.views:bp",
    "app.channels.voice:bp",
    "app.channels.voice:api",
    "app.channels.email.views:bp",
    "app.channels.email.canned_views:bp",
    "app.channels.dev_phone:bp",
    "app.channels.dev_mail:bp",
]
# Blueprints only machines call (provider webhooks, checked by their own signature): nobody signs in
# through them, so their requests skip loading a user from the session cookie -- and the cookie
# session itself is not opened (nor saved) under their URL prefixes.
SESSIONLESS_BLUEPRINTS = frozenset({"voice"})
# Each domain with a Socket.IO namespace or start-up hook adds "module.path:function(app)".
INITIALISERS: list[str] = [
    "app.channels.chat_socket:init_chat",
    "agent_console.supervisor_namespace:init_supervisor_realtime",
    "app.periodic:init_app",
    "app.webhooks.views:init_app",
    "agent_console.namespace:init_app",
    "app.channels.voice:init_voice",
    "queues.router:init_app",
]
# CLI command groups: "module.path:click_group".
CLI_GROUPS = [
    "app.demo:demo_cli",
    "app.portal.seed:portal_cli",
    "app.crm.cli:crm_cli",
    "app.complaints.jobs:complaints_cli",
    "app.channels.email.cli:mail_cli",
    "queues.cli:routing_cli",
]


def _load(ref: str):
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` limited to the database's 32-bit ids: a larger number is simply not found (404),
    instead of reaching the database as an integer it cannot bind."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


def wire(app: Flask) -> None:
    settings = app.extensions["desk.settings"]
    app.url_map.converters["int"] = BoundedIntConverter
    configure_logging(settings.log_level)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.root_path + "/../migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"
    from app.i18n import compile_catalogues

    compile_catalogues()
    babel.init_app(app, locale_selector=_select_locale, timezone_selector=_select_timezone)
    _init_redis(app, settings)
    _init_jobs(app, settings)
    _init_socketio(app, settings)
    _import_models()
    _install_request_hooks(app)  # first, so every other before-request hook sees a fresh request
    for ref in BLUEPRINTS:
        app.register_blueprint(_load(ref))
    app.session_interface = _WebhookFreeSessions(
        tuple(app.blueprints[name].url_prefix.rstrip("/") + "/" for name in SESSIONLESS_BLUEPRINTS))
    for ref in CLI_GROUPS:
        app.cli.add_command(_load(ref))
    for ref in INITIALISERS:
        _load(ref)(app)
    _install_error_pages(app)
    app.jinja_env.globals["get_locale"] = get_locale


def _import_models() -> None:
    """Import every models module so metadata (and Alembic) knows every table."""
    import app.models  # noqa: F401


def _init_redis(app: Flask, settings) -> None:
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    else:  # embedded: an in-process Redis twin, so code has one API for locks, rates and presence
        import fakeredis

        client = fakeredis.FakeRedis(decode_responses=True)
    app.extensions["desk.redis"] = client


def _init_jobs(app: Flask, settings) -> None:
    """JOBS_MODE: "rq" (default with REDIS_URL), "thread" (embedded default) or "inline" (tests)."""
    from app.jobs import InProcessJobs, RQJobs

    mode = app.config.get("JOBS_MODE") or ("rq" if settings.redis_url else "thread")
    if mode == "rq":
        import redis

        app.extensions["desk.jobs"] = RQJobs(redis.Redis.from_url(settings.redis_url))
    else:
        jobs = InProcessJobs(app)
        jobs.synchronous = mode == "inline"
        app.extensions["desk.jobs"] = jobs


def _socketio_async_mode() -> str:
    try:
        from gevent import monkey

        if monkey.is_module_patched("socket"):
            return "gevent"
    except ImportError:  # pragma: no cover - gevent is pinned in requirements
        pass
    return "threading"


def pubsub_channel(base: str, redis_url: str | None) -> str:
    """``base`` named for the Redis database of ``redis_url``. Redis's publish/subscribe ignores database
    numbers: two desks (or a desk and its staging twin) sharing a server on databases 0 and 1 would
    otherwise hear each other's messages -- each other's Socket.IO events and routing hints."""
    if not redis_url:
        return base
    from redis.connection import parse_url

    return f"{base}:{parse_url(redis_url).get('db', 0)}"


def _init_socketio(app: Flask, settings) -> None:
    message_queue = app.config.get("SOCKETIO_MESSAGE_QUEUE", settings.redis_url)
    socketio.init_app(app, message_queue=message_queue, async_mode=_socketio_async_mode(),
                      channel=pubsub_channel("flask-socketio", message_queue),
                      # None: a socket must come from the page's own origin (the chat widget's frame is
                      # served by the desk too), whatever host name people reach the desk by.
                      cors_allowed_origins=None, manage_session=False)


@login_manager.user_loader
def _load_user(user_id: str):
    from app.auth.models import StaffUser
    from app.portal.models import CustomerAccount

    kind, _, raw_id = user_id.partition(":")
    if not raw_id.isdigit():
        return None
    if kind == "staff":  # skills load when something reads them, not on every request and socket event
        return db.session.get(StaffUser, int(raw_id), options=[lazyload(StaffUser.skills)])
    return db.session.get(CustomerAccount, int(raw_id)) if kind == "customer" else None


class _WebhookFreeSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session, except under ``prefixes`` (the sessionless blueprints' URLs): there
    a request gets Flask's null session -- reading finds nothing, writing is an error -- and no cookie
    is read, verified or written (each a measurable share of a short webhook)."""

    def __init__(self, prefixes: tuple[str, ...]):
        self.prefixes = prefixes

    def open_session(self, app: Flask, request):
        if request.path.startswith(self.prefixes):
            return None  # Flask substitutes its null session
        return super().open_session(app, request)


def _select_locale() -> str:
    from app.config import LANGUAGES

    chosen = request.args.get("lang") or session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    if getattr(current_user, "is_authenticated", False) and getattr(current_user, "language", None) in LANGUAGES:
        return current_user.language
    return request.accept_languages.best_match(LANGUAGES) or "en"


def _select_timezone() -> str | None:
    if getattr(current_user, "is_authenticated", False):
        return getattr(current_user, "timezone", None)
    return None


def session_is_null() -> bool:
    """True on a request without a cookie session (a sessionless blueprint's webhook)."""
    return current_app.session_interface.is_null_session(session._get_current_object())


def _install_request_hooks(app: Flask) -> None:
    from app.ops import observe_request

    @app.before_request
    def _request_id() -> None:
        # Locale and signed-in user are cached per app context, which a test (or CLI) may share between
        # requests; each request starts from its own cookie.
        refresh_babel()
        if request.blueprint in SESSIONLESS_BLUEPRINTS:
            g._login_user = login_manager.anonymous_user()  # what Flask-Login would load there, without the work
        else:
            g.pop("_login_user", None)
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        if request.args.get("lang") in ("en", "zh") and not session_is_null():
            session["lang"] = request.args["lang"]

    @app.after_request
    def _stamp(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        observe_request(request, response)
        return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _install_error_pages(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if _wants_json():
            return jsonify(error=exc.name.lower().replace(" ", "_"), message=exc.description,
                           request_id=g.get("request_id")), exc.code
        return render_template("error.html", code=exc.code, name=exc.name, description=exc.description), exc.code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            return jsonify(error="internal_error", request_id=g.get("request_id")), 500
        return render_template("error.html", code=500, name="Internal Server Error",
                               description=""), 500
