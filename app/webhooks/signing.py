"""HMAC-SHA256 signatures over timestamp and body (pure; the receiver side is in the README)."""
from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Desk-Signature"
TIMESTAMP_HEADER = "X-Desk-Timestamp"
DELIVERY_HEADER = "X-Desk-Delivery"
EVENT_HEADER = "X-Desk-Event"
TOLERANCE_S = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex>`` over ``b"<timestamp>." + body``: binding the time stops replays of old deliveries."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: int,
           tolerance_s: int = TOLERANCE_S) -> bool:
    """What a receiver does; used by our own inbound checks and tests."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)
