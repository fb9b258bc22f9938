"""Staff accounts: creation and credential checks (no Flask request objects here)."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.models import AgentSkill, Role, StaffUser
from app.auth.passwords import hash_password, needs_rehash, verify_password


class DuplicateEmail(ValueError):
    """A staff account with this email already exists."""


def create_staff(session: Session, *, email: str, name: str, password: str, role: Role | str = Role.AGENT,
                 language: str = "en", timezone: str = "UTC", skills: dict[str, int] | None = None,
                 agent_group: str = "default", phone_e164: str | None = None) -> StaffUser:
    """Add a staff user (not committed). Raises DuplicateEmail or WeakPassword."""
    email = email.strip().lower()
    if session.scalar(select(StaffUser.id).where(StaffUser.email == email)):
        raise DuplicateEmail(email)
    user = StaffUser(email=email, name=name, password_hash=hash_password(password), role=str(Role(role)),
                     language=language, timezone=timezone, agent_group=agent_group, phone_e164=phone_e164)
    user.skills = [AgentSkill(skill=skill, level=level) for skill, level in (skills or {}).items()]
    session.add(user)
    return user


def authenticate(session: Session, email: str, password: str) -> StaffUser | None:
    """The active staff user with these credentials, or None. Upgrades old hashes in place."""
    user = session.scalar(select(StaffUser).where(func.lower(StaffUser.email) == email.strip().lower()))
    if user is None or not user.active or not verify_password(user.password_hash, password):
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user
