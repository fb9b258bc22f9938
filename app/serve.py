"""``python -m app.serve``: the embedded one-process desk used by ``make run``.

Serves HTTP and Socket.IO with the threading server; the router and jobs run in this process.
For production use the Procfile (gunicorn + gevent, a separate router and RQ workers)."""
from __future__ import annotations

from app import create_app
from app.extensions import socketio


def main() -> None:
    app = create_app()
    from app.audit.config_watch import audit_startup_config

    audit_startup_config(app)
    settings = app.extensions["desk.settings"]
    print(f" * Service desk on http://127.0.0.1:{settings.port}/ (Ctrl+C to stop)", flush=True)
    socketio.run(app, host="0.0.0.0", port=settings.port, allow_unsafe_werkzeug=True, use_reloader=False)


if __name__ == "__main__":
    main()
