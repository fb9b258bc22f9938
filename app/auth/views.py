"""Staff sign-in and sign-out pages."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l, gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SubmitField
from wtforms.validators import DataRequired, Length

from app.audit import service as audit
from app.auth import ratelimit
from app.auth.models import Role
from app.auth.roles import current_staff
from app.auth.service import authenticate
from app.extensions import db

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
SIGN_IN_LIMIT = 10
SIGN_IN_WINDOW_S = 900


class SignInForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])
    submit = SubmitField(_l("Sign in"))


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc and target.startswith("/") else None


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = SignInForm()
    if form.validate_on_submit():
        redis = current_app.extensions["desk.redis"]
        key = f"signin:{request.remote_addr}:{form.email.data.strip().lower()}"
        if not ratelimit.hit(redis, key, limit=SIGN_IN_LIMIT, window_s=SIGN_IN_WINDOW_S):
            log.warning("sign-in rate limit reached for %s", form.email.data)
            return render_template("auth/login.html", form=form,
                                   error=_("Too many attempts. Try again in 15 minutes.")), 429
        user = authenticate(db.session, form.email.data, form.password.data)
        if user is None:
            log.info("sign-in failed for %s", form.email.data)
            audit.record(db.session, actor="anonymous", action="auth.sign_in_failed", ip=request.remote_addr,
                         outcome="failed", data={"email": form.email.data.strip().lower()[:254]})
            db.session.commit()
            return render_template("auth/login.html", form=form, error=_("Wrong email or password.")), 401
        ratelimit.reset(redis, key)
        next_url = _safe_next(request.args.get("next"))
        session.clear()  # a fresh session on privilege change (no fixation)
        if user.has_second_factor:
            session["2fa_pending"] = user.id
            session["2fa_next"] = next_url
            db.session.commit()
            return redirect(url_for("twofactor.verify_page"))
        complete_sign_in(user, second_factor=False)
        return redirect(next_url or url_for("auth.home"))
    return render_template("auth/login.html", form=form, error=None)


def complete_sign_in(user, *, second_factor: bool) -> None:
    """Log ``user`` in, remember whether a second factor was shown, and audit it (commits)."""
    login_user(user)
    session["lang"] = user.language
    session["2fa_ok"] = second_factor
    audit.record(db.session, actor=f"staff:{user.id}", action="auth.sign_in", ip=request.remote_addr,
                 data={"second_factor": second_factor})
    db.session.commit()
    log.info("staff %s signed in", user.id)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    audit.record(db.session, actor=current_user.get_id(), action="auth.sign_out", ip=request.remote_addr)
    db.session.commit()
    logout_user()
    session.clear()
    flash(_("You have signed out."))
    return redirect(url_for("auth.login"))


@bp.route("/")
def home():
    staff = current_staff()
    if staff is None:
        if getattr(current_user, "is_authenticated", False):
            return redirect(current_app.config.get("CUSTOMER_HOME", "/portal/"))
        return redirect(url_for("auth.login"))
    links = [(name, url) for name, url, role in _HOME_LINKS if staff.has_role(role) and url in _known_rules()]
    return render_template("home.html", staff=staff, links=links)


# Pages the home screen points to, shown when they exist and the user's role allows them.
_HOME_LINKS = [
    (_l("Agent console"), "/console/", Role.AGENT),
    (_l("Customers"), "/customers/", Role.AGENT),
    (_l("Complaints"), "/complaints/", Role.AGENT),
    (_l("Wallboard"), "/supervisor/", Role.SUPERVISOR),
    (_l("Reports"), "/supervisor/reports", Role.SUPERVISOR),
    (_l("Staffing"), "/supervisor/staffing", Role.SUPERVISOR),
    (_l("Audit log"), "/audit/", Role.SUPERVISOR),
    (_l("Knowledge base"), "/admin/kb/", Role.SUPERVISOR),
    (_l("Staff"), "/admin/staff/", Role.ADMIN),
    (_l("API tokens"), "/admin/api-tokens/", Role.ADMIN),
    (_l("Webhooks"), "/admin/webhooks/", Role.ADMIN),
    (_l("Phone simulator"), "/dev/phone", Role.AGENT),
    (_l("Mail simulator"), "/dev/mail", Role.AGENT),
]


def _known_rules() -> set[str]:
    return {rule.rule for rule in current_app.url_map.iter_rules()}
