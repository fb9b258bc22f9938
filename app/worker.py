"""``python -m app.worker [QUEUE...]``: an RQ worker with the desk's app context (Procfile ``worker``)."""
from __future__ import annotations

import sys

import redis
from rq import Worker

from app import create_app
from app.collector import settle_collector
from app.jobs import QUEUE_NAMES


def main(argv: list[str]) -> int:
    app = create_app()
    settings = app.extensions["desk.settings"]
    if not settings.redis_url:
        print("error: REDIS_URL: required for a separate worker (the embedded desk runs jobs in-process)",
              file=sys.stderr)
        return 2
    connection = redis.Redis.from_url(settings.redis_url)
    from app.audit.config_watch import audit_startup_config

    audit_startup_config(app)
    from app.periodic import start_scheduler

    start_scheduler(app, enqueue=True)  # only the worker holding the Redis lock schedules
    settle_collector()  # before the work horses fork: collections thin, start-up objects left alone (app.collector)
    with app.app_context():
        Worker(argv or list(QUEUE_NAMES), connection=connection).work(with_scheduler=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
