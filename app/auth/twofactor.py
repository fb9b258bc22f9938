"""Two-factor sign-in for staff: TOTP (RFC 6238, authenticator apps) and one-time recovery codes.

A code is accepted once: the last accepted time step is stored, so a code seen over someone's
shoulder cannot be replayed within its 30-second window.
"""
from __future__ import annotations

import secrets

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.service import record
from app.auth.config import SecurityConfig
from app.auth.models import RecoveryCode, StaffUser
from app.auth.passwords import _hasher
from app.db import utcnow

VALID_WINDOW = 1  # accept the previous and next 30 s step too (clock drift)


class TwoFactorError(ValueError):
    """The code was wrong, reused, or enrolment is not in the expected state."""


def required_for(user: StaffUser, security: SecurityConfig) -> bool:
    return user.role in security.require_2fa_roles or user.has_second_factor


def begin_enrolment(session: Session, user: StaffUser, security: SecurityConfig) -> str:
    """Give ``user`` a fresh unconfirmed secret; returns the otpauth:// URI for the QR code."""
    if user.has_second_factor:
        raise TwoFactorError("two-factor sign-in is already set up; an admin must reset it first")
    user.totp_secret = pyotp.random_base32()
    user.totp_last_step = None
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=security.totp_issuer)


def _matching_step(secret: str, code: str) -> int | None:
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(utcnow())
    for step in range(now_step - VALID_WINDOW, now_step + VALID_WINDOW + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def confirm_enrolment(session: Session, user: StaffUser, code: str, security: SecurityConfig) -> list[str]:
    """Confirm the secret with a first valid code; returns new recovery codes (shown once)."""
    if not user.totp_secret or user.has_second_factor:
        raise TwoFactorError("no enrolment in progress")
    step = _matching_step(user.totp_secret, code)
    if step is None:
        raise TwoFactorError("that code is not valid; check the time on your phone and try again")
    user.totp_confirmed_at = utcnow()
    user.totp_last_step = step
    record(session, actor=f"staff:{user.id}", action="auth.2fa_enrolled", target_type="staff", target_id=user.id)
    return _new_recovery_codes(session, user, security.recovery_codes)


def _new_recovery_codes(session: Session, user: StaffUser, count: int) -> list[str]:
    for old in session.scalars(select(RecoveryCode).where(RecoveryCode.staff_user_id == user.id)):
        session.delete(old)
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(count)]
    for code in codes:
        session.add(RecoveryCode(staff_user_id=user.id, code_hash=_hasher.hash(code)))
    return codes


def verify(session: Session, user: StaffUser, code: str) -> str:
    """Accept a TOTP code (once) or an unused recovery code; returns "totp" or "recovery".
    Raises TwoFactorError otherwise."""
    if not user.has_second_factor:
        raise TwoFactorError("two-factor sign-in is not set up")
    step = _matching_step(user.totp_secret or "", code)
    if step is not None:
        if user.totp_last_step is not None and step <= user.totp_last_step:
            raise TwoFactorError("that code was used already; wait for the next one")
        user.totp_last_step = step
        return "totp"
    candidate = code.strip().lower()
    for stored in session.scalars(select(RecoveryCode).where(RecoveryCode.staff_user_id == user.id,
                                                             RecoveryCode.used_at.is_(None))):
        try:
            if _hasher.verify(stored.code_hash, candidate):
                stored.used_at = utcnow()
                return "recovery"
        except Exception:  # argon2 raises on mismatch; try the next code
            continue
    raise TwoFactorError("that code is not valid")


def reset(session: Session, user: StaffUser, *, admin: StaffUser, reason: str) -> None:
    """An admin clears a lost device; the user enrols again at next sign-in. Audited."""
    if not admin.has_role("admin"):
        raise PermissionError("only an admin can reset two-factor sign-in")
    if not reason.strip():
        raise TwoFactorError("a reason is required")
    user.totp_secret = None
    user.totp_confirmed_at = None
    user.totp_last_step = None
    for old in session.scalars(select(RecoveryCode).where(RecoveryCode.staff_user_id == user.id)):
        session.delete(old)
    record(session, actor=f"staff:{admin.id}", action="auth.2fa_reset", target_type="staff", target_id=user.id,
           data={"reason": reason.strip()[:500]})


def remaining_recovery_codes(session: Session, user: StaffUser) -> int:
    return len(list(session.scalars(select(RecoveryCode.id).where(
        RecoveryCode.staff_user_id == user.id, RecoveryCode.used_at.is_(None)))))
