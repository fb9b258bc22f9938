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
"""
from __future__ import annotations

import gc

FULL_EVERY = 100


def settle_collector() -> None:
    """Call once the process has built everything it keeps (after ``create_app``)."""
    gc.freeze()
    young, middle, _old = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)
