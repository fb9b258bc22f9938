"""Admin pages for staff accounts: list, create, and change role, active flag, group and skills.
Every change is written to the audit log with what it was before and after."""
from __future__ import annotations

import re

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.audit.service import record
from app.auth.models import AgentSkill, Role, StaffUser
from app.auth.passwords import MIN_LENGTH, WeakPassword
from app.auth.roles import current_staff, role_required
from app.auth.service import DuplicateEmail, create_staff
from app.config import LANGUAGES
from app.extensions import db

bp = Blueprint("staff_admin", __name__, url_prefix="/admin/staff")
SKILL_NAME = re.compile(r"[a-z0-9_]+")
GROUP_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class InvalidInput(ValueError):
    """A form value the page refuses; the message is already translated."""


def parse_skills(text: str) -> dict[str, int]:
    """``"general:5, billing:3"`` -> ``{"general": 5, "billing": 3}``; raises InvalidInput."""
    skills: dict[str, int] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, level = (p.strip() for p in part.partition(":"))
        if not sep or not SKILL_NAME.fullmatch(name):
            raise InvalidInput(_("Skills are written as name:level, separated by commas; names use "
                                 "lower-case letters, digits and underscores (%(part)s).", part=part))
        if not level.isdigit() or not 1 <= int(level) <= 10:
            raise InvalidInput(_("Skill levels are whole numbers from 1 to 10 (%(part)s).", part=part))
        if name in skills:
            raise InvalidInput(_("The skill %(name)s is listed twice.", name=name))
        skills[name] = int(level)
    return skills


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(_("Unknown role.")) from None


def _page(status: int = 200, *, error: str | None = None, error_for: int | None = None):
    staff = list(db.session.scalars(select(StaffUser).order_by(StaffUser.name, StaffUser.id)))
    return render_template("auth/staff_admin.html", staff=staff, roles=list(Role), languages=LANGUAGES,
                           error=error, error_for=error_for, me=current_staff(),
                           min_length=MIN_LENGTH), status


@bp.get("/")
@role_required(Role.ADMIN)
def index():
    return _page()


@bp.post("/")
@role_required(Role.ADMIN)
def create():
    form = request.form
    email = form.get("email", "").strip()
    name = form.get("name", "").strip()
    language = form.get("language", "en")
    try:
        if not EMAIL.fullmatch(email) or len(email) > 254:
            raise InvalidInput(_("Enter a valid email address."))
        if not name or len(name) > 120:
            raise InvalidInput(_("Enter a name (at most 120 characters)."))
        if language not in LANGUAGES:
            raise InvalidInput(_("Unknown language."))
        role = _role(form.get("role", Role.AGENT))
        if len(form.get("password", "")) < MIN_LENGTH:
            raise InvalidInput(_("The temporary password needs at least %(n)s characters.", n=MIN_LENGTH))
        user = create_staff(db.session, email=email, name=name, password=form["password"], role=role,
                            language=language)
        db.session.flush()
    except InvalidInput as exc:
        return _page(422, error=str(exc))
    except DuplicateEmail:
        db.session.rollback()
        return _page(422, error=_("A staff account with this email already exists."))
    except WeakPassword:
        db.session.rollback()
        return _page(422, error=_("The temporary password needs at least %(n)s characters.", n=MIN_LENGTH))
    record(db.session, actor=current_user.get_id(), action="staff.created", target_type="staff",
           target_id=user.id, data={"email": user.email, "role": user.role, "language": user.language})
    db.session.commit()
    return _page(201)


@bp.post("/<int:staff_id>")
@role_required(Role.ADMIN)
def update(staff_id: int):
    user = db.session.get(StaffUser, staff_id)
    if user is None:
        abort(404)
    form = request.form
    me = current_staff()
    try:
        role = _role(form["role"]) if "role" in form else Role(user.role)
        active = form["active"] == "1" if "active" in form else user.active
        group = form.get("agent_group", user.agent_group).strip()
        if not GROUP_NAME.fullmatch(group):
            raise InvalidInput(_("Groups use letters, digits, dots, dashes and underscores (at most 64)."))
        skills = parse_skills(form["skills"]) if "skills" in form else user.skill_levels()
        if user.id == me.id and role != Role.ADMIN:
            raise InvalidInput(_("You cannot remove your own admin role."))
        if user.id == me.id and not active:
            raise InvalidInput(_("You cannot deactivate your own account."))
    except InvalidInput as exc:
        return _page(422, error=str(exc), error_for=user.id)

    actor = current_user.get_id()
    if role != user.role:
        record(db.session, actor=actor, action="staff.role_changed", target_type="staff", target_id=user.id,
               data={"from": user.role, "to": str(role)})
        user.role = str(role)
    if active != user.active:
        record(db.session, actor=actor, action="staff.activated" if active else "staff.deactivated",
               target_type="staff", target_id=user.id)
        user.active = active
    if group != user.agent_group:
        record(db.session, actor=actor, action="staff.group_changed", target_type="staff", target_id=user.id,
               data={"from": user.agent_group, "to": group})
        user.agent_group = group
    before = user.skill_levels()
    if skills != before:
        record(db.session, actor=actor, action="staff.skills_changed", target_type="staff", target_id=user.id,
               data={"from": before, "to": skills})
        # Change rows in place so the (user, skill) unique constraint never sees a delete-then-insert.
        for row in list(user.skills):
            if row.skill in skills:
                row.level = skills[row.skill]
            else:
                user.skills.remove(row)
        user.skills.extend(AgentSkill(skill=name, level=level) for name, level in skills.items()
                           if name not in before)
    db.session.commit()
    return redirect(url_for("staff_admin.index"))
