"""Fixed-window rate limits on Redis (real or the embedded twin): sign-in attempts, forms."""
from __future__ import annotations

from redis import Redis


def hit(redis: Redis, key: str, *, limit: int, window_s: int) -> bool:
    """Count one attempt against ``key``; True while the count is within ``limit`` for the window."""
    full_key = f"ratelimit:{key}"
    pipe = redis.pipeline()
    pipe.incr(full_key)
    pipe.expire(full_key, window_s, nx=True)
    count, _ = pipe.execute()
    return int(count) <= limit


def reset(redis: Redis, key: str) -> None:
    redis.delete(f"ratelimit:{key}")
