"""The garbage collector of a long-running desk process (web worker, router).

A full collection stops the whole process -- every socket a web worker serves, the router's next
decision -- for as long as it takes to scan every tracked object: tens of milliseconds with a few
hundred sockets open, the largest single pause in the chat and screen-pop latency tails. Two settings
shorten and thin those pauses:

- everything built at start-up (modules, config, compiled templates and SQL) lives as long as the
  process: ``gc.freeze`` moves it out of the collector's sight, so a full collection scans only what
  was made since;
- a full collection runs after ``FULL_EVERY`` collections of the middle generation instead of
  CPython's 10: young collections still reclaim short-lived cycles (a request's, a message's) at once,
  and the rare cycle that survives into the old generation waits a little longer.

``DESK_GC_LOG=directory`` makes each process that settles its collector append one JSON line per
collection of 1 ms or more to ``gc-<pid>.jsonl`` there (when, generation, milliseconds, objects
collected): to see which pauses a latency tail holds.
"""
from __future__ import annotations

import gc
import json
import os
import time
from pathlib import Path

FULL_EVERY = 100
LOGGED_MS = 1.0


def settle_collector() -> None:
    """Call once the process has built everything it keeps (after ``create_app``)."""
    gc.freeze()
    young, middle, _old = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)
    directory = os.environ.get("DESK_GC_LOG")
    if directory:
        log_collections(Path(directory) / f"gc-{os.getpid()}.jsonl")


def log_collections(path: Path) -> None:
    """Append a line to ``path`` for every collection lasting ``LOGGED_MS`` or more."""
    started: dict[str, float] = {}

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started["at"] = time.perf_counter()
            return
        elapsed_ms = (time.perf_counter() - started.pop("at", time.perf_counter())) * 1000
        if elapsed_ms >= LOGGED_MS:
            with path.open("a") as out:
                out.write(json.dumps({"at": round(time.time(), 3), "generation": info["generation"],
                                      "ms": round(elapsed_ms, 2), "collected": info["collected"]}) + "\n")

    gc.callbacks.append(callback)
