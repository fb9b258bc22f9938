"""Email templates: Jinja2 in a sandbox, in English and Simplified Chinese, editable by admins.

Built-in texts live here; an admin's edited version (``EmailTemplate`` row) replaces one key and
language. Canned replies an admin added (``CannedReply``, see ``canned.py``) have no built-in text:
their ``EmailTemplate`` rows are the only text, in both languages. Templates see only plain values
(``customer``, ``case``, ``desk``, ``agent``, ``body``), never models, and the sandbox refuses
attribute tricks (``__class__`` and friends), so an admin template cannot reach into the application.
Rendering for sending never fails: a broken stored template falls back to the built-in one and the
problem is logged.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from flask_babel import lazy_gettext as _l
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.channels.email.models import CannedReply, EmailTemplate
from app.db import utcnow

log = logging.getLogger(__name__)
# Canned replies: texts an agent inserts into the email composer or the chat panel and then edits,
# rendered for the contact in the customer's language. Their subject is only a title for admins.
CANNED_LABELS = {
    "canned_delivery_delay": _l("Canned reply: delivery delayed"),
    "canned_refund": _l("Canned reply: refund on its way"),
    "canned_more_details": _l("Canned reply: ask for details"),
}
CANNED_KEYS = tuple(CANNED_LABELS)
KEYS = ("acknowledgement", "reply", *CANNED_KEYS)
LANGUAGES = ("en", "zh")
MAX_TEMPLATE_CHARS = 20_000

BUILT_IN: dict[tuple[str, str], tuple[str, str]] = {
    ("acknowledgement", "en"): (
        "We have received your message: {{ case.subject }}",
        ("Dear {{ customer.name or 'customer' }},\n\n"
        "Thank you for writing to {{ desk.name }}. Your message has been received and recorded as case "
        "{{ case.reference }}.\n"
        "We expect to reply by {{ case.expected_reply }}.\n\n"
        "To add anything, simply reply to this email and keep {{ case.tag }} in the subject.\n\n"
        "This is an automatic acknowledgement.\n{{ desk.name }}\n")),
    ("acknowledgement", "zh"): (
        "我们已收到您的来信：{{ case.subject }}",
        ("尊敬的{{ customer.name or '客户' }}：\n\n"
        "感谢您致信{{ desk.name }}。您的来信已收到，案件编号为 {{ case.reference }}。\n"
        "我们预计将在 {{ case.expected_reply }} 前答复您。\n\n"
        "如需补充信息，请直接回复本邮件，并在主题中保留 {{ case.tag }}。\n\n"
        "此邮件为自动确认，请勿直接回复询问其他事项。\n{{ desk.name }}\n")),
    ("reply", "en"): (
        "Re: {{ case.subject }}",
        "Dear {{ customer.name or 'customer' }},\n\n{{ body }}\n\nKind regards,\n{{ agent.name }}\n{{ desk.name }}\n"),
    ("reply", "zh"): (
        "回复：{{ case.subject }}",
        "尊敬的{{ customer.name or '客户' }}：\n\n{{ body }}\n\n此致\n{{ agent.name }}\n{{ desk.name }}\n"),
    ("canned_delivery_delay", "en"): (
        "Delivery delayed",
        ("Thank you for your patience{% if customer.name %}, {{ customer.name }}{% endif %}. We are sorry that "
         "your order has not arrived yet. We have asked the carrier to find it and will update you on case "
         "{{ case.reference }} within one working day.")),
    ("canned_delivery_delay", "zh"): (
        "配送延误",
        ("感谢您的耐心等待{% if customer.name %}，{{ customer.name }}{% endif %}。很抱歉您的订单尚未送达。"
         "我们已请承运商查找包裹，将在一个工作日内就案件 {{ case.reference }} 向您更新进展。")),
    ("canned_refund", "en"): (
        "Refund on its way",
        ("Your refund has been approved. It reaches your original payment method within 5 to 7 working days; "
         "please quote {{ case.reference }} if you ask us about it.")),
    ("canned_refund", "zh"): (
        "退款处理中",
        "您的退款已获批准，将在 5 至 7 个工作日内退回原支付方式；如需查询，请提供案件编号 {{ case.reference }}。"),
    ("canned_more_details", "en"): (
        "Ask for details",
        ("To look into this for you, could you please tell us your order number and, if you can, send a photo "
         "of the item?")),
    ("canned_more_details", "zh"): (
        "补充信息",
        "为了尽快为您处理，请告诉我们您的订单号，如方便，请附上商品照片。"),
}


class TemplateProblem(ValueError):
    """A template that does not compile or render; ``field`` is "subject" or "body"."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


class _BoundedSandbox(SandboxedEnvironment):
    """The sandbox, plus limits on ``*`` and ``**`` so a template cannot build a gigabyte string."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and (not isinstance(right, int) or abs(right) > 64):
            raise TemplateError("exponent too large")
        if operator == "*" and any(isinstance(v, (str, list, tuple)) for v in (left, right)):
            size = len(left) if isinstance(left, (str, list, tuple)) else len(right)
            count = right if isinstance(left, (str, list, tuple)) else left
            if isinstance(count, int) and size * count > MAX_TEMPLATE_CHARS * 10:
                raise TemplateError("repetition too large")
        return super().call_binop(context, operator, left, right)


_ENV = _BoundedSandbox(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)
# What a broken admin template can raise while rendering, besides Jinja's own errors.
_RUNTIME_ERRORS = (TemplateError, ArithmeticError, TypeError, ValueError, LookupError, AttributeError)


def sample_context(language: str, desk_name: str = "Service Desk") -> dict[str, Any]:
    """Made-up values for previews and for checking a template before it is saved."""
    zh = language == "zh"
    return {
        "customer": {"name": "王小明" if zh else "Alex Smith", "language": language, "tier": "ordinary"},
        "case": {"reference": "C-1234", "tag": "[#C-1234]", "subject": "订单未送达" if zh else "Order not delivered",
                 "queue": "general", "expected_reply": "2026-05-12 18:00"},
        "desk": {"name": desk_name},
        "agent": {"name": "李娜" if zh else "Sam Lee"},
        "body": "我们已为您重新安排配送。" if zh else "We have re-arranged the delivery for you.",
    }


@lru_cache(maxsize=256)
def _compiled(source: str):
    return _ENV.from_string(source)


def render_strings(subject: str, body: str, context: dict[str, Any]) -> Rendered:
    """Render a subject and body; raises TemplateProblem naming the field that failed."""
    out = []
    for field, source in (("subject", subject), ("body", body)):
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateProblem(field, f"longer than {MAX_TEMPLATE_CHARS} characters")
        try:
            out.append(_compiled(source).render(context))
        except _RUNTIME_ERRORS as exc:  # syntax, undefined variables, sandbox refusals, 1/0, huge ranges
            raise TemplateProblem(field, str(exc)) from exc
    return Rendered(" ".join(out[0].split()), out[1])


def is_canned(session: Session, key: str) -> bool:
    """A canned reply agents can pick: a built-in one or one an admin added (read fresh, so a deleted
    reply is gone at once in every process)."""
    if key in CANNED_KEYS:
        return True
    return session.scalar(select(CannedReply.id).where(CannedReply.key == key)) is not None


def is_known(session: Session, key: str) -> bool:
    """Any template key: a built-in one or an added canned reply."""
    return key in KEYS or is_canned(session, key)


# Stored templates change rarely and are read for every acknowledgement: each process keeps them for a
# few seconds (an admin's edit is live everywhere within CACHE_S; at once in the process that saved it).
CACHE_S = 5.0
_cache: dict[tuple[str, str], tuple[float, tuple[str, str, bool]]] = {}


def forget(key: str) -> None:
    """Drop this process's cached texts of ``key`` (after a save, reset or delete)."""
    for language in LANGUAGES:
        _cache.pop((key, language), None)


def source_of(session: Session, key: str, language: str, *, fresh: bool = False) -> tuple[str, str, bool]:
    """(subject, body, customised) for ``key`` in ``language`` (English when the language is unknown)."""
    language = language if language in LANGUAGES else "en"
    cached = _cache.get((key, language))
    if cached and not fresh and time.monotonic() - cached[0] < CACHE_S:
        return cached[1]
    row = session.execute(select(EmailTemplate.subject, EmailTemplate.body).where(
        EmailTemplate.key == key, EmailTemplate.language == language)).first()
    if row is None and (key, language) not in BUILT_IN:
        raise KeyError(f"{key}/{language}")  # an added canned reply that was deleted meanwhile
    found = (row.subject, row.body, True) if row is not None else (*BUILT_IN[(key, language)], False)
    _cache[(key, language)] = (time.monotonic(), found)
    return found


def render(session: Session, key: str, language: str, context: dict[str, Any]) -> Rendered:
    """Render the live template; a broken stored template falls back to the built-in text (an added
    canned reply has none: its TemplateProblem reaches the caller). KeyError for an unknown key."""
    subject, body, customised = source_of(session, key, language)
    try:
        return render_strings(subject, body, context)
    except TemplateProblem:
        if not customised or (key, "en") not in BUILT_IN:
            raise
        log.exception("stored email template %s/%s failed; using the built-in text", key, language)
        fallback = BUILT_IN[(key, language if language in LANGUAGES else "en")]
        return render_strings(*fallback, context)


def save_template(session: Session, key: str, language: str, subject: str, body: str, *,
                  staff_id: int | None, desk_name: str = "Service Desk") -> EmailTemplate:
    """Store an admin's template after proving it renders with sample values.
    Raises TemplateProblem (nothing stored) or KeyError for an unknown key/language. Does not commit."""
    if language not in LANGUAGES or not is_known(session, key):
        raise KeyError(f"{key}/{language}")
    render_strings(subject, body, sample_context(language, desk_name))
    row = session.scalar(select(EmailTemplate).where(EmailTemplate.key == key, EmailTemplate.language == language))
    if row is None:
        row = EmailTemplate(key=key, language=language, subject=subject, body=body)
        session.add(row)
    row.subject, row.body, row.updated_by, row.updated_at = subject, body, staff_id, utcnow()
    session.flush()
    _cache.pop((key, language), None)
    return row


def reset_template(session: Session, key: str, language: str) -> None:
    """Go back to the built-in text. KeyError for a key without one (an added canned reply: deleting
    its text would leave agents nothing to insert). Does not commit."""
    if (key, language) not in BUILT_IN:
        raise KeyError(f"{key}/{language}")
    row = session.scalar(select(EmailTemplate).where(EmailTemplate.key == key, EmailTemplate.language == language))
    if row is not None:
        session.delete(row)
        session.flush()
    _cache.pop((key, language), None)
