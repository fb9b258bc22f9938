"""Staff accounts: agents, supervisors and admins, with skills, capacity group and language."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, CheckConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import UTCDateTime, utcnow
from app.extensions import db


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


ROLE_RANK = {Role.AGENT: 1, Role.SUPERVISOR: 2, Role.ADMIN: 3}


class StaffUser(UserMixin, db.Model):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.AGENT)
    language: Mapped[str] = mapped_column(String(8), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    agent_group: Mapped[str] = mapped_column(String(64), default="default")
    phone_e164: Mapped[str | None] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Two-factor sign-in (TOTP). The secret is set at enrolment and confirmed by a first valid code.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)  # refuses replay of a code within its window

    skills: Mapped[list[AgentSkill]] = relationship(
        back_populates="staff_user", cascade="all, delete-orphan", lazy="selectin")

    __table_args__ = (CheckConstraint("role in ('agent','supervisor','admin')", name="role_known"),)

    def get_id(self) -> str:  # Flask-Login: staff and customer ids share one session key
        return f"staff:{self.id}"

    @property
    def is_active(self) -> bool:
        return self.active

    def has_role(self, minimum: Role | str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(minimum)]

    def skill_levels(self) -> dict[str, int]:
        return {s.skill: s.level for s in self.skills}

    @property
    def has_second_factor(self) -> bool:
        return self.totp_confirmed_at is not None


class RecoveryCode(db.Model):
    """One-time codes for a lost authenticator; stored hashed, spent once."""

    __tablename__ = "staff_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AgentSkill(db.Model):
    __tablename__ = "agent_skills"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    skill: Mapped[str] = mapped_column(String(64))
    level: Mapped[int] = mapped_column(Integer)

    staff_user: Mapped[StaffUser] = relationship(back_populates="skills")

    __table_args__ = (
        UniqueConstraint("staff_user_id", "skill"),
        CheckConstraint("level between 1 and 10", name="level_range"),
    )
