"""Background jobs: RQ queues when Redis is configured, an in-process runner otherwise.

Jobs take plain values (ids, not objects) and run inside an app context of their own, so the same
function runs under an RQ worker on another machine or on a thread of the embedded desk.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, current_app

log = logging.getLogger(__name__)
QUEUE_NAMES = ("default", "email", "sla", "reports", "webhooks")


class InProcessJobs:
    """The embedded default: run each job on a daemon thread, delayed jobs on a timer."""

    def __init__(self, app: Flask):
        self.app = app
        self.synchronous = False  # tests ask for jobs to run inline...
        self.scheduled: list[tuple[timedelta, Callable, tuple, dict]] = []  # ...and delayed ones kept here

    def run_scheduled(self) -> int:
        """Tests: run every delayed job recorded so far (as if its time had come); returns how many."""
        due, self.scheduled = self.scheduled, []
        for _delay, func, args, kwargs in due:
            self._run(func, args, kwargs)
        return len(due)

    def _run(self, func: Callable, args: tuple, kwargs: dict) -> None:
        with self.app.app_context():
            try:
                func(*args, **kwargs)
            except Exception:
                log.exception("in-process job %s failed", getattr(func, "__name__", func))

    def enqueue(self, func: Callable, *args: Any, queue: str = "default", delay: timedelta | None = None,
                job_id: str | None = None, **kwargs: Any) -> str | None:
        if self.synchronous:
            if delay is None:
                self._run(func, args, kwargs)
            else:
                self.scheduled.append((delay, func, args, kwargs))
            return job_id
        if delay is not None:
            timer = threading.Timer(delay.total_seconds(), self._run, (func, args, kwargs))
            timer.daemon = True
            timer.start()
        else:
            threading.Thread(target=self._run, args=(func, args, kwargs), daemon=True).start()
        return job_id


class RQJobs:
    """Production: named RQ queues on Redis, consumed by the ``worker`` process."""

    def __init__(self, redis_connection):
        from rq import Queue

        self.queues = {name: Queue(name, connection=redis_connection) for name in QUEUE_NAMES}

    def enqueue(self, func: Callable, *args: Any, queue: str = "default", delay: timedelta | None = None,
                job_id: str | None = None, **kwargs: Any) -> str | None:
        target = self.queues[queue]
        if delay is not None:
            job = target.enqueue_in(delay, func, *args, job_id=job_id, **kwargs)
        else:
            job = target.enqueue(func, *args, job_id=job_id, **kwargs)
        return job.id


def enqueue(func: Callable, *args: Any, queue: str = "default", delay: timedelta | None = None,
            job_id: str | None = None, **kwargs: Any) -> str | None:
    """Run ``func(*args, **kwargs)`` in the background; returns the job id where there is one."""
    return current_app.extensions["desk.jobs"].enqueue(func, *args, queue=queue, delay=delay, job_id=job_id,
                                                       **kwargs)
