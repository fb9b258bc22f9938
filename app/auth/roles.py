"""Role checks for pages, API calls and Socket.IO events: one rule, three front doors."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, request
from flask_login import current_user

from app.auth.models import Role, StaffUser


def current_staff() -> StaffUser | None:
    """The signed-in staff user, or None (anonymous, or a customer account)."""
    user = current_user
    if getattr(user, "is_authenticated", False) and isinstance(user._get_current_object(), StaffUser):
        return user._get_current_object()
    return None


def staff_allowed(minimum: Role) -> bool:
    """The one rule behind pages, API calls and socket events: an active staff user with the role,
    who has shown a second factor in this session when their role (or their own choice) requires one."""
    from app.auth.twofactor_views import second_factor_missing

    staff = current_staff()
    return staff is not None and staff.active and staff.has_role(minimum) and not second_factor_missing()


def role_required(minimum: Role) -> Callable:
    """Allow staff with at least ``minimum`` role. Anonymous: the sign-in page (401 under /api/);
    signed in without the role, or a customer account: 403."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            if not getattr(current_user, "is_authenticated", False):
                if request.path.startswith("/api/"):
                    abort(401)
                from flask import redirect, url_for

                return redirect(url_for("auth.login", next=request.full_path))
            if not staff_allowed(minimum):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def socket_role_required(minimum: Role) -> Callable:
    """For Socket.IO handlers: refuse (return an error ack) unless the connection's user has the role."""

    def decorator(handler: Callable) -> Callable:
        @wraps(handler)
        def wrapped(*args: Any, **kwargs: Any):
            if not staff_allowed(minimum):
                return {"ok": False, "error": "forbidden"}
            return handler(*args, **kwargs)

        return wrapped

    return decorator
