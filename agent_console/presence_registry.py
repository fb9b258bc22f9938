"""Which agents have a live console, across every web node (Redis is the shared memory).

Each agent has a sorted set ``console:sockets:<agent id>`` of socket ids scored by their last heartbeat
(Unix seconds). A socket counts as live while its heartbeat is younger than ``stale_after_s``; a node that
dies without sending disconnects leaves entries that simply go stale. Two tabs are two sockets: the agent
is gone only when the last live one is.
"""
from __future__ import annotations

import time

KEY = "console:sockets:{agent_id}"
HEARTBEAT_S = 10
STALE_AFTER_S = 3 * HEARTBEAT_S


def _key(agent_id: int) -> str:
    return KEY.format(agent_id=agent_id)


def touch(redis, agent_id: int, sid: str, *, now: float | None = None) -> None:
    """Record a connect or heartbeat of socket ``sid``; the key expires when every socket goes quiet."""
    now = time.time() if now is None else now
    key = _key(agent_id)
    pipe = redis.pipeline()
    pipe.zadd(key, {sid: now})
    pipe.zremrangebyscore(key, "-inf", now - STALE_AFTER_S)
    pipe.expire(key, STALE_AFTER_S * 2)
    pipe.execute()


def drop(redis, agent_id: int, sid: str) -> None:
    redis.zrem(_key(agent_id), sid)


def live_sockets(redis, agent_id: int, *, now: float | None = None) -> int:
    now = time.time() if now is None else now
    return int(redis.zcount(_key(agent_id), now - STALE_AFTER_S, "+inf"))
