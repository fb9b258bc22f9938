"""The knowledge base: search, suggestions while a customer types, "did this help?" votes and the
report they feed.

Search on PostgreSQL is full text: each article's weighted ``tsvector`` (``KbArticle.search_index``,
GIN-indexed; ``english`` stemming for English, the ``simple`` configuration over CJK characters and
character pairs for Chinese, see ``kb_text``) matched with ``@@`` and ordered by ``ts_rank``, so a title
match outranks a body match and an article sharing more of the query ranks higher. English asks for
every word first and, when nothing has them all, for any of them. Elsewhere (SQLite) a portable ranked
``LIKE`` match over the same words and character pairs stands in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import and_, case, func, literal_column, or_, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.portal.kb_text import CJK as _CJK, cjk_grams
from app.portal.models import KbArticle, KbCategory, KbVote, text_search_config

_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(["a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "does", "for", "from",
                       "have", "how", "i", "if", "in", "is", "it", "its", "my", "me", "no", "not", "of", "on", "or",
                       "our", "so", "that", "the", "this", "to", "was", "we", "what", "when", "where", "which",
                       "who", "why", "will", "with", "you", "your", "please", "help", "hello", "hi", "thanks",
                       "thank"])


@dataclass(frozen=True)
class Hit:
    article: KbArticle
    score: float


def terms(text: str, limit: int = 12) -> list[str]:
    """Search terms: latin words (lower-case, no stop-words, 2+ letters) and Chinese character bigrams."""
    lowered = text.lower()
    found: list[str] = []
    for word in _WORD.findall(lowered):
        if len(word) >= 2 and word not in STOPWORDS and word not in found:
            found.append(word)
    for run in _CJK.findall(text):
        found.extend(g for g in cjk_grams(run) if g not in found)
    return found[:limit]


def _published(language: str | None):
    conditions = [KbArticle.published.is_(True)]
    if language:
        conditions.append(KbArticle.language == language)
    return and_(*conditions)


def _any_of(config: str, words: list[str]):
    """A tsquery matching any of ``words`` (each quoted as one lexeme: they hold only letters, digits
    and CJK characters, so nothing in them is tsquery syntax)."""
    return func.to_tsquery(literal_column(f"'{config}'::regconfig"), " | ".join(f"'{w}'" for w in words))


def _postgres(session: Session, query: str, words: list[str], language: str | None, limit: int,
              *, every_word: bool) -> list[Hit]:
    """Full-text matches in one or both index families (English stemmed; everything else ``simple``)."""
    branches = []
    if language == "en" and every_word:
        branches.append((KbArticle.language == "en",
                         func.websearch_to_tsquery(literal_column("'english'::regconfig"), query)))
    elif language in (None, "en") and words:
        branches.append((KbArticle.language == "en", _any_of("english", words)))
    if language != "en" and words:
        branches.append((KbArticle.language != "en" if language is None else KbArticle.language == language,
                         _any_of(text_search_config(language), words)))
    if not branches:
        return []
    matched = or_(*[and_(which, KbArticle.search_index.op("@@")(tsquery)) for which, tsquery in branches])
    rank = case(*[(which, func.ts_rank(KbArticle.search_index, tsquery)) for which, tsquery in branches],
                else_=literal_column("0.0"))
    rows = session.execute(select(KbArticle, rank.label("rank")).where(_published(language), matched)
                           .order_by(literal_column("rank").desc(), KbArticle.id).limit(limit)).all()
    return [Hit(article, float(score)) for article, score in rows]


def _portable(session: Session, words: list[str], language: str | None, limit: int) -> list[Hit]:
    if not words:
        return []
    title = func.lower(KbArticle.title)
    body = func.coalesce(KbArticle.search_index, func.lower(KbArticle.body))
    score = sum((case((title.contains(w, autoescape=True), 3), else_=0) +
                 case((body.contains(w, autoescape=True), 1), else_=0) for w in words), start=literal_column("0"))
    matches = or_(*[or_(title.contains(w, autoescape=True), body.contains(w, autoescape=True)) for w in words])
    rows = session.execute(select(KbArticle, score.label("score")).where(_published(language), matches)
                           .order_by(literal_column("score").desc(), KbArticle.id).limit(limit)).all()
    return [Hit(article, float(s)) for article, s in rows]


def _full_text(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def search(session: Session, query: str, *, language: str | None, limit: int = 10) -> list[Hit]:
    """Published articles matching ``query``, best first. On PostgreSQL: full-text search (English
    stemming — "refunds" finds "refund"; Chinese by character pairs), ranked with ``ts_rank``; in
    English all the words first and then any of them; elsewhere the portable ranked match."""
    query = query.strip()[:200]
    words = terms(query)
    if not query:
        return []
    if not _full_text(session):
        return _portable(session, words, language, limit)
    hits = _postgres(session, query, words, language, limit, every_word=True) if language == "en" else []
    return hits or _postgres(session, query, words, language, limit, every_word=False)


def suggest(session: Session, text: str, *, language: str, limit: int = 3) -> list[Hit]:
    """Articles that may answer what the customer is typing (any of its significant words)."""
    text = text[-500:]
    words = terms(text)
    if not _full_text(session):
        return _portable(session, words, language, limit)
    return _postgres(session, text, words, language, limit, every_word=False) if words else []


def by_category(session: Session, language: str) -> list[tuple[KbCategory, list[KbArticle]]]:
    categories = session.scalars(select(KbCategory).order_by(KbCategory.position, KbCategory.id)).all()
    articles = session.scalars(select(KbArticle).where(_published(language)).order_by(KbArticle.title)).all()
    return [(c, [a for a in articles if a.category_id == c.id]) for c in categories]


def get_article(session: Session, slug: str, language: str) -> KbArticle | None:
    """The article in ``language``, else its other-language version, else None."""
    rows = session.scalars(select(KbArticle).where(KbArticle.slug == slug, KbArticle.published.is_(True))).all()
    return next((a for a in rows if a.language == language), rows[0] if rows else None)


def vote(session: Session, article_id: int, *, helpful: bool, voter: str) -> KbVote:
    """Record (or change) one voter's answer for an article. Raises LookupError for an unknown article."""
    if session.get(KbArticle, article_id) is None:
        raise LookupError(article_id)
    row = session.scalar(select(KbVote).where(KbVote.article_id == article_id, KbVote.voter == voter))
    if row is None:
        row = KbVote(article_id=article_id, voter=voter, helpful=helpful)
        session.add(row)
    else:
        row.helpful, row.voted_at = helpful, utcnow()
    session.flush()
    return row


@dataclass(frozen=True)
class ReportRow:
    article_id: int
    slug: str
    group_key: str
    language: str
    title: str
    helpful: int
    not_helpful: int

    @property
    def helpful_percent(self) -> int | None:
        total = self.helpful + self.not_helpful
        return None if total == 0 else round(100 * self.helpful / total)


def vote_report(session: Session) -> list[ReportRow]:
    """Votes per article, least helpful first (articles to fix), then the rest by title."""
    yes = func.sum(case((KbVote.helpful.is_(True), 1), else_=0))
    no = func.sum(case((KbVote.helpful.is_(False), 1), else_=0))
    rows = session.execute(select(KbArticle.id, KbArticle.slug, KbArticle.group_key, KbArticle.language,
                                  KbArticle.title, func.coalesce(yes, 0), func.coalesce(no, 0))
                           .outerjoin(KbVote, KbVote.article_id == KbArticle.id)
                           .group_by(KbArticle.id, KbArticle.slug, KbArticle.group_key, KbArticle.language,
                                     KbArticle.title)).all()
    report = [ReportRow(*(int(v) if isinstance(v, int) else v for v in row)) for row in rows]
    return sorted(report, key=lambda r: (r.helpful_percent is None, r.helpful_percent or 0, -r.not_helpful,
                                         r.title))
