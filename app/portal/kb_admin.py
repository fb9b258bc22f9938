"""Writing the knowledge base (staff side): articles in English and Chinese, categories, publishing.

An article is a *group* of language versions sharing ``group_key`` and ``slug`` (the portal finds the
reader's language by slug). Every change is validated before anything is touched (a bad form changes
nothing), bodies are sanitised on the way in (``kb_text.to_safe_html``), and each change adds an audit
entry in the caller's transaction, so the change and its record commit together.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit.service import record
from app.db import utcnow
from app.portal.kb_text import plain_text, to_safe_html
from app.portal.models import KbArticle, KbCategory, KbVote

LANGUAGES = ("en", "zh")
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_TITLE = 200
MAX_BODY = 50_000


class InvalidArticle(ValueError):
    """A form value refused; the message is already translated for the page."""


@dataclass
class Version:
    title: str = ""
    body: str = ""
    published: bool = False

    @property
    def empty(self) -> bool:
        return not self.title.strip() and not self.body.strip()


@dataclass
class Draft:
    """What the edit form submits: the group's slug and category, and one version per language."""

    slug: str
    category_id: int | None
    versions: dict[str, Version] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupRow:
    group_key: str
    slug: str
    category: KbCategory
    versions: dict[str, KbArticle]


def groups(session: Session) -> list[GroupRow]:
    """Every article group (published or not), by category then slug, with its language versions."""
    articles = session.scalars(select(KbArticle).order_by(KbArticle.group_key, KbArticle.language)).all()
    by_key: dict[str, dict[str, KbArticle]] = {}
    for article in articles:
        by_key.setdefault(article.group_key, {})[article.language] = article
    rows = [GroupRow(key, next(iter(v.values())).slug, next(iter(v.values())).category, v)
            for key, v in by_key.items()]
    return sorted(rows, key=lambda r: (r.category.position, r.category.id, r.slug))


def group(session: Session, group_key: str) -> dict[str, KbArticle]:
    return {a.language: a for a in session.scalars(select(KbArticle).where(KbArticle.group_key == group_key))}


def categories(session: Session) -> list[KbCategory]:
    return list(session.scalars(select(KbCategory).order_by(KbCategory.position, KbCategory.id)))


def _validate(session: Session, draft: Draft, group_key: str | None) -> KbCategory:
    if not SLUG.fullmatch(draft.slug) or len(draft.slug) > 120:
        raise InvalidArticle(_("The address name uses lower-case letters, digits and single dashes "
                               "(at most 120 characters)."))
    category = session.get(KbCategory, draft.category_id) if draft.category_id else None
    if category is None:
        raise InvalidArticle(_("Choose a category."))
    clash = session.scalar(select(KbArticle.id).where(KbArticle.slug == draft.slug,
                                                      KbArticle.group_key != (group_key or "")).limit(1))
    if clash is not None:
        raise InvalidArticle(_("Another article already uses this address name."))
    if set(draft.versions) - set(LANGUAGES):
        raise InvalidArticle(_("Unknown language."))
    filled = {lang: v for lang, v in draft.versions.items() if not v.empty}
    if not filled:
        raise InvalidArticle(_("Write at least one language version (a title and a text)."))
    for version in filled.values():
        if not version.title.strip() or len(version.title.strip()) > MAX_TITLE:
            raise InvalidArticle(_("Each version needs a title of at most %(n)s characters.", n=MAX_TITLE))
        if not plain_text(to_safe_html(version.body)) or len(version.body) > MAX_BODY:
            raise InvalidArticle(_("Each version needs a text of at most %(n)s characters.", n=MAX_BODY))
    return category


def save(session: Session, draft: Draft, *, actor: str, group_key: str | None = None) -> str:
    """Create a group (``group_key`` None) or update one. A language left empty is not created; an
    existing version cannot be emptied (unpublish it instead). Returns the group key. Does not commit."""
    existing = group(session, group_key) if group_key else {}
    if group_key and not existing:
        raise LookupError(group_key)
    category = _validate(session, draft, group_key)
    for lang, version in draft.versions.items():
        if lang in existing and version.empty:
            raise InvalidArticle(_("A version cannot be emptied; unpublish it instead."))
    key = group_key or _free_group_key(session, draft.slug)
    changes: dict[str, list[str]] = {}
    for lang in LANGUAGES:
        version = draft.versions.get(lang)
        if version is None or version.empty:
            continue
        body = to_safe_html(version.body)
        article = existing.get(lang)
        if article is None:
            article = KbArticle(group_key=key, language=lang, slug=draft.slug, category_id=category.id,
                                title=version.title.strip(), body=body, published=version.published)
            session.add(article)
            changes[lang] = ["created"]
            continue
        changed = [name for name, old, new in (("slug", article.slug, draft.slug),
                                               ("category", article.category_id, category.id),
                                               ("title", article.title, version.title.strip()),
                                               ("body", article.body, body),
                                               ("published", article.published, version.published)) if old != new]
        if changed:
            article.slug, article.category_id, article.category = draft.slug, category.id, category
            article.title, article.body, article.published = version.title.strip(), body, version.published
            article.updated_at = utcnow()
            changes[lang] = changed
    session.flush()
    if changes:
        record(session, actor=actor, action="kb.article_created" if not existing else "kb.article_updated",
               target_type="kb_article", target_id=key, data={"slug": draft.slug, "changes": changes})
    return key


def _free_group_key(session: Session, slug: str) -> str:
    """``slug``, or ``slug-2``… when a renamed group still holds it as its key."""
    taken = set(session.scalars(select(KbArticle.group_key).where(KbArticle.group_key.startswith(slug))))
    key, n = slug, 1
    while key in taken:
        n += 1
        key = f"{slug}-{n}"
    return key


def set_published(session: Session, article_id: int, published: bool, *, actor: str) -> KbArticle:
    """Publish or withdraw one language version. Raises LookupError for an unknown article."""
    article = session.get(KbArticle, article_id)
    if article is None:
        raise LookupError(article_id)
    if article.published != published:
        article.published, article.updated_at = published, utcnow()
        record(session, actor=actor, action="kb.article_published" if published else "kb.article_unpublished",
               target_type="kb_article", target_id=article.group_key,
               data={"slug": article.slug, "language": article.language})
        session.flush()
    return article


def save_category(session: Session, *, actor: str, slug: str, name_en: str, name_zh: str, position: int,
                  category_id: int | None = None) -> KbCategory:
    """Create or rename a category. Raises InvalidArticle or LookupError; does not commit."""
    category = session.get(KbCategory, category_id) if category_id is not None else KbCategory()
    if category is None:
        raise LookupError(category_id)
    if not SLUG.fullmatch(slug) or len(slug) > 64:
        raise InvalidArticle(_("The address name uses lower-case letters, digits and single dashes "
                               "(at most 64 characters)."))
    if not name_en.strip() or not name_zh.strip() or max(len(name_en), len(name_zh)) > 120:
        raise InvalidArticle(_("Give the category an English and a Chinese name (at most 120 characters)."))
    if not 0 <= position <= 1000:
        raise InvalidArticle(_("The position is a whole number from 0 to 1000."))
    clash = session.scalar(select(KbCategory.id).where(KbCategory.slug == slug, KbCategory.id != (category_id or 0)))
    if clash is not None:
        raise InvalidArticle(_("Another category already uses this address name."))
    before = {"slug": category.slug, "name_en": category.name_en, "name_zh": category.name_zh,
              "position": category.position}
    category.slug, category.name_en, category.name_zh = slug, name_en.strip(), name_zh.strip()
    category.position = position
    if category_id is None:
        session.add(category)
    session.flush()
    after = {"slug": slug, "name_en": category.name_en, "name_zh": category.name_zh, "position": position}
    if before != after:
        record(session, actor=actor, action="kb.category_created" if category_id is None else "kb.category_updated",
               target_type="kb_category", target_id=category.id, data={"from": before, "to": after})
    return category


def vote_counts(session: Session) -> dict[int, tuple[int, int]]:
    """Helpful and not-helpful votes per article id (for the list page)."""
    rows = session.execute(select(KbVote.article_id, KbVote.helpful, func.count())
                           .group_by(KbVote.article_id, KbVote.helpful)).all()
    counts: dict[int, list[int]] = {}
    for article_id, helpful, n in rows:
        counts.setdefault(article_id, [0, 0])[0 if helpful else 1] += n
    return {k: (v[0], v[1]) for k, v in counts.items()}
