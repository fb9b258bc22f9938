"""Starter knowledge-base content in English and Chinese, and the ``flask portal`` commands."""
from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.portal.models import KbArticle, KbCategory

CATEGORIES = [
    ("orders", "Orders and delivery", "订单与配送"),
    ("returns", "Returns and refunds", "退货与退款"),
    ("account", "Your account", "您的账户"),
]
ARTICLES = [
    ("orders", "track-order", "How do I track my order?", "如何查询订单物流？",
     "Sign in and open My requests, or use the tracking number in your shipping email on the carrier's site. "
     "Deliveries usually arrive within three working days.\n\nIf the tracking has not changed for two days, open "
     "a request and choose A delivery.",
     "登录后打开“我的请求”，或使用发货邮件中的运单号在承运商网站查询物流。通常三个工作日内送达。\n\n如果物流信息两天未更新，"
     "请提交请求并选择“配送”。"),
    ("returns", "return-item", "How do I return an item for a refund?", "如何办理退货退款？",
     "You can return most items within 30 days. Open a request, choose An order, give the order number and "
     "attach a photo if the item is damaged. The refund reaches your original payment method within 7 days of "
     "our receiving the parcel.",
     "大多数商品可在30天内退货。请提交请求，选择“订单”，填写订单号；如商品损坏，请附上照片。我们收到包裹后7天内将退款至原支付方式。"),
    ("returns", "damaged-item", "My item arrived damaged", "收到的商品有损坏",
     "We are sorry. Open a complaint with photos of the item and the packaging. We replace or refund damaged "
     "items at no cost to you.",
     "非常抱歉。请提交投诉并附上商品和包装的照片。我们将免费为您更换或退款。"),
    ("account", "reset-password", "I forgot my password", "忘记密码怎么办？",
     "Choose Forgot your password on the sign-in page and we will email you a link. You can also ask for a "
     "one-time sign-in link instead of using a password.",
     "在登录页选择“忘记密码”，我们会通过邮件发送重置链接。您也可以申请一次性登录链接，无需密码即可登录。"),
]


def seed_knowledge_base(session: Session) -> int:
    """Add the starter categories and articles that are missing (idempotent). Returns articles added.
    Does not commit."""
    categories = {c.slug: c for c in session.scalars(select(KbCategory))}
    for position, (slug, name_en, name_zh) in enumerate(CATEGORIES):
        if slug not in categories:
            categories[slug] = KbCategory(slug=slug, name_en=name_en, name_zh=name_zh, position=position)
            session.add(categories[slug])
    session.flush()
    existing = {(a.slug, a.language) for a in session.scalars(select(KbArticle))}
    added = 0
    for cat, slug, title_en, title_zh, body_en, body_zh in ARTICLES:
        for language, title, body in (("en", title_en, body_en), ("zh", title_zh, body_zh)):
            if (slug, language) not in existing:
                session.add(KbArticle(category_id=categories[cat].id, slug=slug, group_key=slug, language=language,
                                      title=title, body=body))
                added += 1
    session.flush()
    return added


@click.group("portal")
def portal_cli() -> None:
    """Customer portal tasks."""


@portal_cli.command("seed-kb")
@with_appcontext
def seed_kb_command() -> None:
    """Add the starter help-centre articles (English and Chinese)."""
    from app.extensions import db

    added = seed_knowledge_base(db.session)
    db.session.commit()
    click.echo(f"knowledge base: {added} articles added")


def reindex_knowledge_base(session: Session) -> int:
    """Rebuild every article's search index (after a change to how it is built, or rows written
    without the ORM). Returns the number of articles. Does not commit."""
    from sqlalchemy.orm.attributes import flag_modified

    articles = list(session.scalars(select(KbArticle)))
    for article in articles:
        flag_modified(article, "title")  # the flush hook rebuilds search_index on update
    session.flush()
    return len(articles)


@portal_cli.command("reindex-kb")
@with_appcontext
def reindex_kb_command() -> None:
    """Rebuild the help centre's full-text search index."""
    from app.extensions import db

    count = reindex_knowledge_base(db.session)
    db.session.commit()
    click.echo(f"knowledge base: {count} articles reindexed")
