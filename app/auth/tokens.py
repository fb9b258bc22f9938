"""API tokens for integrations: random secrets shown once, stored only as a SHA-256 hash, with scopes.

Why SHA-256 and not argon2: the token is 256 random bits, so a fast hash cannot be brute-forced, and
every API call can verify it with one indexed lookup. Writes through ``/api/`` require a token (never a
browser cookie), which is what lets the API blueprint skip CSRF safely.
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from flask import g, jsonify, request
from sqlalchemy import JSON, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.db import UTCDateTime, utcnow
from app.extensions import db

PREFIX = "desk_"
SCOPES = ("customers:read", "customers:write", "orders:read", "orders:write", "value:recompute", "interactions:read",
          "complaints:read")


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(16))  # 'desk_AbCd' to recognise a token in lists
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TokenError(Exception):
    """Authentication failed: ``status`` 401 (no/bad/expired token) or 403 (token lacks the scope)."""

    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


def _hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def issue_token(session: Session, *, name: str, scopes: list[str], created_by_id: int | None = None,
                expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the plaintext, which is never stored or shown again.
    Raises ValueError for an unknown scope or an empty name. Does not commit."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes: unknown {unknown}; choose from {list(SCOPES)}" if unknown
                         else "scopes: give at least one")
    if not name.strip():
        raise ValueError("name: required")
    plaintext = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name.strip()[:100], token_hash=_hash(plaintext), display_prefix=plaintext[:9],
                     scopes=sorted(set(scopes)), created_by_id=created_by_id, expires_at=expires_at,
                     created_at=utcnow())
    session.add(token)
    session.flush()
    return token, plaintext


def verify_token(session: Session, plaintext: str, *, scope: str, now: datetime | None = None) -> ApiToken:
    """The live token for ``plaintext`` holding ``scope``; stamps last use. Raises TokenError."""
    now = now or utcnow()
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(plaintext)))
    if token is None or token.revoked_at is not None:
        raise TokenError(401, "invalid_token", "the API token is unknown or revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenError(401, "expired_token", "the API token has expired")
    if scope not in token.scopes:
        raise TokenError(403, "insufficient_scope", f"the API token lacks the scope {scope!r}")
    token.last_used_at = now
    return token


def revoke_token(session: Session, token_id: int) -> bool:
    token = session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    return True


def api_auth(scope: str, *, staff_may_read: bool = True) -> Callable:
    """View decorator: a Bearer token with ``scope``; for safe methods, a signed-in staff user also
    passes (the console calls the API) with the read scopes. Sets ``g.api_actor`` ('token:ID' or
    'staff:ID') and ``g.api_scopes``."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            header = request.headers.get("Authorization", "")
            if header.lower().startswith("bearer "):
                try:
                    token = verify_token(db.session, header[7:].strip(), scope=scope)
                except TokenError as exc:
                    db.session.rollback()
                    return _refuse(exc)
                db.session.commit()  # the last-use stamp
                g.api_actor, g.api_scopes = f"token:{token.id}", tuple(token.scopes)
                return view(*args, **kwargs)
            if staff_may_read and request.method in ("GET", "HEAD"):
                from app.auth.models import Role
                from app.auth.roles import current_staff, staff_allowed

                staff = current_staff()
                if staff is not None and staff_allowed(Role.AGENT):
                    g.api_actor = f"staff:{staff.id}"
                    g.api_scopes = tuple(s for s in SCOPES if s.endswith(":read"))
                    return view(*args, **kwargs)
            return _refuse(TokenError(401, "authentication_required",
                                      "send 'Authorization: Bearer <API token>'"))

        return wrapped

    return decorator


def _refuse(exc: TokenError):
    response = jsonify(error=exc.code, message=exc.message, request_id=g.get("request_id"))
    response.status_code = exc.status
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="desk-api"'
    return response
