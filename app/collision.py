"""Collision control: who else is viewing or replying to a case, live.

Each staff member's console sends a heartbeat every few seconds while a case is open; an entry
expires 25 s after its last heartbeat, so a closed tab or a lost network disappears by itself.
Kept in Redis (a sorted set by last-seen time plus a hash of details per case), shared by every web
node; nothing here is durable data, so losing Redis only hides presence for a moment.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Literal

from redis import Redis

TTL_S = 25
Mode = Literal["viewing", "replying"]


@dataclass(frozen=True)
class Presence:
    staff_id: int
    name: str
    mode: str
    last_seen: float


def _keys(case_key: str) -> tuple[str, str]:
    return f"collision:{case_key}:seen", f"collision:{case_key}:who"


def heartbeat(redis: Redis, case_key: str, *, staff_id: int, name: str, mode: Mode,
              now: float | None = None) -> list[Presence]:
    """Record that ``staff_id`` is on the case now; returns everyone else present (fresh entries only)."""
    if mode not in ("viewing", "replying"):
        raise ValueError("mode must be 'viewing' or 'replying'")
    now = time.time() if now is None else now
    seen_key, who_key = _keys(case_key)
    pipe = redis.pipeline()
    pipe.zadd(seen_key, {str(staff_id): now})
    pipe.hset(who_key, str(staff_id), json.dumps({"name": name, "mode": mode}))
    pipe.expire(seen_key, TTL_S * 2)
    pipe.expire(who_key, TTL_S * 2)
    pipe.execute()
    return [p for p in present(redis, case_key, now=now) if p.staff_id != staff_id]


def leave(redis: Redis, case_key: str, *, staff_id: int) -> None:
    seen_key, who_key = _keys(case_key)
    pipe = redis.pipeline()
    pipe.zrem(seen_key, str(staff_id))
    pipe.hdel(who_key, str(staff_id))
    pipe.execute()


def present(redis: Redis, case_key: str, *, now: float | None = None) -> list[Presence]:
    """Everyone seen on the case in the last 25 s, replying first, then by name."""
    now = time.time() if now is None else now
    seen_key, who_key = _keys(case_key)
    stale = [m for m, _ in redis.zrangebyscore(seen_key, "-inf", now - TTL_S, withscores=True)]
    if stale:
        redis.zrem(seen_key, *stale)
        redis.hdel(who_key, *stale)
    fresh = redis.zrangebyscore(seen_key, now - TTL_S, "+inf", withscores=True)
    details = redis.hmget(who_key, [m for m, _ in fresh]) if fresh else []
    people = []
    for (member, score), raw in zip(fresh, details, strict=True):
        if raw is None:
            continue
        info = json.loads(raw)
        people.append(Presence(staff_id=int(member), name=info["name"], mode=info["mode"], last_seen=score))
    return sorted(people, key=lambda p: (p.mode != "replying", p.name))


def as_dicts(people: list[Presence]) -> list[dict]:
    return [asdict(p) for p in people]


def newer_customer_messages(latest_seen_id: int | None, customer_message_ids: list[int]) -> list[int]:
    """The customer's messages that arrived after the one the agent last saw (pure): a reply about to
    be sent over them is held for review first."""
    if latest_seen_id is None:
        return sorted(customer_message_ids)
    return sorted(i for i in customer_message_ids if i > latest_seen_id)
