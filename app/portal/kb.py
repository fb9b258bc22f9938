"""The knowledge base: search (PostgreSQL full text for English where available, a portable ranked
match elsewhere and for Chinese), suggestions while a customer types, "did this help?" votes and the
report they feed.

Why a fallback for Chinese even on PostgreSQL: the stock text-search parsers do not segment Chinese, so
a ``to_tsvector`` of Chinese text is one token per run of characters. The fallback matches character
bigrams, which finds 退货 inside 如何办理退货 without a segmenter.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import and_, case, func, literal_column, or_, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.portal.models import KbArticle, KbCategory, KbVote

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
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
        grams = [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]
        found.extend(g for g in grams if g not in found)
    return found[:limit]


def _published(language: str | None):
    conditions = [KbArticle.published.is_(True)]
    if language:
        conditions.append(KbArticle.language == language)
    return and_(*conditions)


def _postgres_english(session: Session, query: str, limit: int) -> list[Hit]:
    document = func.to_tsvector(literal_column("'english'"), KbArticle.title + " " + KbArticle.body)
    tsquery = func.plainto_tsquery(literal_column("'english'"), query)
    rank = func.ts_rank(document, tsquery)
    rows = session.execute(select(KbArticle, rank).where(_published("en"), document.op("@@")(tsquery))
                           .order_by(rank.desc(), KbArticle.id).limit(limit)).all()
    return [Hit(article, float(score)) for article, score in rows]


def _portable(session: Session, words: list[str], language: str | None, limit: int) -> list[Hit]:
    if not words:
        return []
    title, body = func.lower(KbArticle.title), func.lower(KbArticle.body)
    score = sum((case((title.contains(w, autoescape=True), 3), else_=0) +
                 case((body.contains(w, autoescape=True), 1), else_=0) for w in words), start=literal_column("0"))
    matches = or_(*[or_(title.contains(w, autoescape=True), body.contains(w, autoescape=True)) for w in words])
    rows = session.execute(select(KbArticle, score.label("score")).where(_published(language), matches)
                           .order_by(literal_column("score").desc(), KbArticle.id).limit(limit)).all()
    return [Hit(article, float(s)) for article, s in rows]


def search(session: Session, query: str, *, language: str | None, limit: int = 10) -> list[Hit]:
    """Published articles matching ``query``, best first. English on PostgreSQL uses full-text search
    (stemming: "refunds" finds "refund"); everything else uses the portable ranked match."""
    query = query.strip()[:200]
    if not query:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and language == "en" and not _CJK.search(query):
        hits = _postgres_english(session, query, limit)
        if hits:
            return hits
    return _portable(session, terms(query), language, limit)


def suggest(session: Session, text: str, *, language: str, limit: int = 3) -> list[Hit]:
    """Articles that may answer what the customer is typing (any of its significant words)."""
    return _portable(session, terms(text[-500:]), language, limit)


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
    rows = session.execute(select(KbArticle.id, KbArticle.slug, KbArticle.language, KbArticle.title,
                                  func.coalesce(yes, 0), func.coalesce(no, 0))
                           .outerjoin(KbVote, KbVote.article_id == KbArticle.id)
                           .group_by(KbArticle.id, KbArticle.slug, KbArticle.language, KbArticle.title)).all()
    report = [ReportRow(*(int(v) if isinstance(v, int) else v for v in row)) for row in rows]
    return sorted(report, key=lambda r: (r.helpful_percent is None, r.helpful_percent or 0, -r.not_helpful,
                                         r.title))
