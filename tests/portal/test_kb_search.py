"""Knowledge-base search: PostgreSQL full text (weighted tsvector, GIN index, ts_rank, Chinese by
character pairs) under CI=true, the portable ranked match on SQLite; and the safe-HTML helpers.

The ranking and Chinese tests run on both backends with the same expectations; the facts only full
text has (stemming, the index, the tsvector) are asserted on PostgreSQL, their portable counterparts
on SQLite."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import select, text

from app.portal import kb, kb_text
from app.portal.models import KbArticle, KbCategory


def _postgres(session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@pytest.fixture()
def library(app, db_session):
    category = KbCategory(slug="general", name_en="General", name_zh="综合")
    db_session.add(category)
    db_session.flush()
    rows = [
        ("refund-policy", "en", "Refund policy", "How we pay money back after a return, and how long it takes."),
        ("delivery-times", "en", "Delivery times", "Parcels arrive in three days. Late parcels may earn a refund."),
        ("gift-cards", "en", "Gift cards", "Gift cards cannot be exchanged for cash."),
        ("late-refunds", "en", "Why is my money late?", "A refund for a late delivery is paid within a week."),
        ("refund-policy", "zh", "如何办理退货退款", "收到退回的商品后七天内退款。"),
        ("delivery-times", "zh", "配送时间", "一般三天内送达。如需退货请看另一篇文章。"),
        ("gift-cards", "zh", "礼品卡", "礼品卡不能兑换现金。"),
    ]
    for slug, language, title, body in rows:
        db_session.add(KbArticle(category_id=category.id, slug=slug, group_key=slug, language=language,
                                 title=title, body=body))
    db_session.commit()


def _slugs(hits):
    return [h.article.slug for h in hits]


def test_title_matches_outrank_body_matches(app, db_session, library):
    hits = kb.search(db_session, "refund", language="en")
    assert _slugs(hits)[0] == "refund-policy"  # the title says it
    assert {"delivery-times", "late-refunds"} <= set(_slugs(hits)) and "gift-cards" not in _slugs(hits)
    assert hits[0].score > hits[-1].score
    assert all(h.article.language == "en" for h in hits)


def test_chinese_matches_by_character_pairs_and_ranks_the_title_first(app, db_session, library):
    assert _slugs(kb.search(db_session, "退货", language="zh")) == ["refund-policy", "delivery-times"]
    assert _slugs(kb.search(db_session, "怎样退款", language="zh"))[0] == "refund-policy"  # 退款 inside 退货退款
    assert _slugs(kb.search(db_session, "礼品卡能换现金吗", language="zh"))[0] == "gift-cards"
    assert set(_slugs(kb.search(db_session, "退", language="zh"))) == {"refund-policy", "delivery-times"}
    assert kb.search(db_session, "飞机", language="zh") == []
    assert all(h.article.language == "zh" for h in kb.search(db_session, "退货", language="zh"))
    both = kb.search(db_session, "gift 礼品", language=None)
    assert {(h.article.slug, h.article.language) for h in both} == {("gift-cards", "en"), ("gift-cards", "zh")}


def test_editing_an_article_reindexes_it(app, db_session, library):
    article = db_session.scalar(select(KbArticle).where(KbArticle.slug == "gift-cards", KbArticle.language == "zh"))
    article.title, article.body = "电子礼券", "<p>电子礼券<strong>永久</strong>有效。</p>"
    db_session.commit()
    assert _slugs(kb.search(db_session, "礼券", language="zh")) == ["gift-cards"]
    assert kb.search(db_session, "现金", language="zh") == []
    assert kb.search(db_session, "strong", language="zh") == []  # markup is not searchable text


def test_full_text_on_postgresql_and_the_portable_match_elsewhere(app, db_session, library):
    if _postgres(db_session):
        # Stemming: "refunds"/"paying" meet "refund"/"pay"; every word first, then any of them.
        assert _slugs(kb.search(db_session, "refunds", language="en"))[0] == "refund-policy"
        assert _slugs(kb.search(db_session, "late delivery refunds", language="en")) == ["late-refunds",
                                                                                         "delivery-times"]
        assert _slugs(kb.search(db_session, "paying back", language="en")) == ["refund-policy"]
        assert _slugs(kb.search(db_session, "refunds xylophone", language="en"))[0] == "refund-policy"
        kind = db_session.scalar(text("SELECT pg_typeof(search_index)::text FROM kb_articles LIMIT 1"))
        assert kind == "tsvector"
        vector = db_session.scalar(text("SELECT search_index::text FROM kb_articles WHERE slug = 'refund-policy' "
                                        "AND language = 'zh'"))
        assert "'退货':" in vector and "'退':" in vector and "A" in vector  # pairs, characters, title weight
        index = db_session.scalar(text("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                       "'ix_kb_articles_search_index'"))
        assert "USING gin (search_index)" in index
        db_session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(db_session.scalars(text(
            "EXPLAIN SELECT id FROM kb_articles WHERE search_index @@ to_tsquery('simple', '退货')")))
        assert "ix_kb_articles_search_index" in plan
        db_session.rollback()
    else:
        assert kb.search(db_session, "refunds", language="en") == []  # no stemming without full text
        stored = db_session.scalar(select(KbArticle.search_index).where(KbArticle.slug == "gift-cards",
                                                                       KbArticle.language == "en"))
        assert stored == "gift cards gift cards cannot be exchanged for cash."
    assert _slugs(kb.suggest(db_session, "I want my refund for the late parcel", language="en"))


def test_unpublished_articles_are_not_found(app, db_session, library):
    for article in db_session.scalars(select(KbArticle).where(KbArticle.slug == "refund-policy")):
        article.published = False
    db_session.commit()
    assert "refund-policy" not in _slugs(kb.search(db_session, "refund", language="en"))
    assert "refund-policy" not in _slugs(kb.search(db_session, "退货", language="zh"))


@pytest.mark.parametrize("query", ["'", "a & b", "!!", "refund:*", "(退货", "\\", "' | '"])
def test_query_syntax_is_never_interpreted(app, db_session, library, query):
    kb.search(db_session, query, language="en")
    kb.search(db_session, query, language="zh")
    kb.suggest(db_session, query, language="zh")


# --------------------------------------------------------------------------------- safe HTML, pure

@pytest.mark.parametrize("body,must_not", [
    ('<p>Hi<script>alert(1)</script></p>', "<script"),
    ('<img src=x onerror="alert(1)">', "onerror"),
    ('<a href="javascript:alert(1)">x</a>', "javascript:"),
    ('<p style="position:fixed" onclick="x()">x</p>', "onclick"),
    ('<iframe src="https://evil.example"></iframe>', "<iframe"),
])
def test_unsafe_markup_is_removed(body, must_not):
    cleaned = kb_text.to_safe_html(body)
    assert must_not not in cleaned
    assert kb_text.to_safe_html(cleaned) == cleaned  # cleaning twice changes nothing


def test_plain_text_becomes_escaped_paragraphs_and_markup_is_kept_when_allowed():
    assert kb_text.to_safe_html("One <3 & two\nlines\n\nTwo") == "<p>One &lt;3 &amp; two<br>lines</p><p>Two</p>"
    html = '<p>See <a href="https://example.com/x">this</a> and <strong>that</strong></p><ul><li>a</li></ul>'
    cleaned = kb_text.to_safe_html(html)
    assert '<a href="https://example.com/x" rel="noopener noreferrer nofollow">this</a>' in cleaned
    assert "<strong>that</strong>" in cleaned and "<li>a</li>" in cleaned
    assert kb_text.plain_text("<p>A &amp; B</p><p>C</p>") == "A & B C"


def test_search_document_spells_out_chinese():
    assert kb_text.search_document("如何退货 now") == "如 何 退 货 如何 何退 退货 now"
    assert kb_text.search_document("单") == "单"


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>/&\"'=ab pscript\n退")), max_size=80))
def test_any_body_cleans_to_allowed_tags_only_and_is_stable(body):
    cleaned = kb_text.to_safe_html(body)
    tags = set(re.findall(r"</?([a-zA-Z0-9]+)", cleaned))
    assert tags <= kb_text.TAGS
    if not kb_text.looks_like_html(body):
        assert tags <= {"p", "br"}
    assert kb_text.to_safe_html(cleaned) == cleaned


def test_reindex_rebuilds_rows_written_without_the_orm(app, db_session, library):
    from sqlalchemy import update

    from app.portal.seed import reindex_knowledge_base

    db_session.execute(update(KbArticle).where(KbArticle.slug == "gift-cards").values(search_index=None))
    db_session.commit()
    if _postgres(db_session):
        assert kb.search(db_session, "gift", language="en") == []  # the index is all PostgreSQL reads
    runner = app.test_cli_runner()
    result = runner.invoke(args=["portal", "reindex-kb"])
    assert result.exit_code == 0 and "7 articles reindexed" in result.output
    db_session.expire_all()
    assert _slugs(kb.search(db_session, "gift", language="en")) == ["gift-cards"]
    assert _slugs(kb.search(db_session, "礼品", language="zh")) == ["gift-cards"]
    assert reindex_knowledge_base(db_session) == 7
