"""Canned replies admins add and delete, next to the three built into ``templates.py``.

An added reply is a key (``canned_<slug>``), a label per language (``CannedReply``) and a subject and
body per language (``EmailTemplate`` rows under that key). Every text is checked in the Jinja2 sandbox
with sample customer and case values before anything is stored, so agents never pick a reply that
cannot render. Built-in replies can be edited and reset (``templates.save_template`` /
``reset_template``) but not deleted. Functions here add to the session and never commit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.channels.email import templates
from app.channels.email.models import CannedReply, EmailTemplate
from app.channels.email.templates import LANGUAGES, Rendered, TemplateProblem

PREFIX = "canned_"
SLUG = re.compile(r"^[a-z0-9][a-z0-9_]{1,24}$")  # PREFIX + 25 characters fits the 32 of the key column
MAX_LABEL_CHARS = 80


class CannedInvalid(ValueError):
    """Bad input for an added canned reply; ``field`` names the form field (``key``, ``label_zh``,
    ``body_en`` ...), ``message`` says what is wrong, in the request's language."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


class BuiltInReply(ValueError):
    """A built-in canned reply cannot be deleted (only edited and reset)."""


@dataclass(frozen=True)
class Draft:
    """What the admin's form holds: labels and texts per language (``{"en": ..., "zh": ...}``)."""

    labels: dict[str, str]
    subjects: dict[str, str]
    bodies: dict[str, str]


def key_from_slug(raw: str) -> str:
    """``canned_<slug>`` from what the admin typed (with or without the prefix). Raises CannedInvalid."""
    slug = (raw or "").strip().lower()
    slug = slug[len(PREFIX):] if slug.startswith(PREFIX) else slug
    if not SLUG.match(slug):
        raise CannedInvalid("key", _("The key must be 2 to 25 characters: lower-case letters, digits and "
                                     "underscores, starting with a letter or digit."))
    return PREFIX + slug


def check(draft: Draft, desk_name: str) -> dict[str, Rendered]:
    """Prove the draft is complete and renders in both languages with sample values; the previews.
    Raises CannedInvalid naming the first field with a problem."""
    for language in LANGUAGES:
        label = draft.labels.get(language, "").strip()
        if not label or len(label) > MAX_LABEL_CHARS:
            raise CannedInvalid(f"label_{language}", _("A label of 1 to %(n)s characters is needed.",
                                                        n=MAX_LABEL_CHARS))
        if not draft.bodies.get(language, "").strip():
            raise CannedInvalid(f"body_{language}", _("The text is empty."))
    previews = {}
    for language in LANGUAGES:
        try:
            previews[language] = templates.render_strings(draft.subjects.get(language, ""), draft.bodies[language],
                                                          templates.sample_context(language, desk_name))
        except TemplateProblem as exc:
            raise CannedInvalid(f"{exc.field}_{language}", exc.message) from exc
    return previews


def added(session: Session) -> list[CannedReply]:
    """The canned replies admins added, oldest first."""
    return list(session.scalars(select(CannedReply).order_by(CannedReply.id)))


def get_added(session: Session, key: str) -> CannedReply | None:
    return session.scalar(select(CannedReply).where(CannedReply.key == key))


def label(reply: CannedReply, language: str) -> str:
    return reply.label_zh if language == "zh" else reply.label_en


def choices(session: Session, language: str) -> list[dict[str, str]]:
    """Every canned reply an agent can pick (built-in first, then added), labelled in ``language``."""
    built_in = [{"key": key, "label": str(text)} for key, text in templates.CANNED_LABELS.items()]
    return built_in + [{"key": r.key, "label": label(r, language)} for r in added(session)]


def _store_texts(session: Session, key: str, draft: Draft, staff_id: int | None, desk_name: str) -> None:
    for language in LANGUAGES:
        templates.save_template(session, key, language, draft.subjects.get(language, ""), draft.bodies[language],
                                staff_id=staff_id, desk_name=desk_name)


def create(session: Session, raw_key: str, draft: Draft, *, staff_id: int | None,
           desk_name: str = "Service Desk") -> CannedReply:
    """Add a canned reply. Raises CannedInvalid (nothing stored) for a bad or taken key, a missing
    label or text, or a template the sandbox refuses."""
    key = key_from_slug(raw_key)
    if key in templates.KEYS or get_added(session, key) is not None:
        raise CannedInvalid("key", _("A canned reply with the key %(key)s exists already.", key=key))
    check(draft, desk_name)
    reply = CannedReply(key=key, label_en=draft.labels["en"].strip(), label_zh=draft.labels["zh"].strip(),
                        created_by=staff_id)
    session.add(reply)
    session.flush()  # the row first: save_template accepts the key only once it exists
    _store_texts(session, key, draft, staff_id, desk_name)
    return reply


def update(session: Session, key: str, draft: Draft, *, staff_id: int | None,
           desk_name: str = "Service Desk") -> CannedReply:
    """Change an added reply's labels and texts. LookupError for a key that is not an added reply;
    CannedInvalid (nothing changed) for bad input."""
    reply = get_added(session, key)
    if reply is None:
        raise LookupError(key)
    check(draft, desk_name)
    reply.label_en, reply.label_zh = draft.labels["en"].strip(), draft.labels["zh"].strip()
    _store_texts(session, key, draft, staff_id, desk_name)
    return reply


def remove(session: Session, key: str) -> None:
    """Delete an added reply and its texts. BuiltInReply for a built-in key, LookupError for an unknown one."""
    if key in templates.KEYS:
        raise BuiltInReply(key)
    reply = get_added(session, key)
    if reply is None:
        raise LookupError(key)
    session.execute(delete(EmailTemplate).where(EmailTemplate.key == key))
    session.delete(reply)
    session.flush()
    templates.forget(key)


def draft_of(session: Session, key: str) -> Draft:
    """The stored labels and texts of an added reply, for its edit form."""
    reply = get_added(session, key)
    if reply is None:
        raise LookupError(key)
    texts = {language: templates.source_of(session, key, language, fresh=True) for language in LANGUAGES}
    return Draft(labels={"en": reply.label_en, "zh": reply.label_zh},
                 subjects={lang: t[0] for lang, t in texts.items()}, bodies={lang: t[1] for lang, t in texts.items()})
