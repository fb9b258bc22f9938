"""Knowledge-base text, pure functions: the safe HTML an article shows, its plain text, and the
search document built from it.

Why bodies pass through nh3 on the way in *and* out: staff write articles in a small HTML subset (or
plain paragraphs); cleaning on save keeps the stored body honest, and cleaning again when rendering means
a row written by any other path (a seed, a script, an old version) can never carry a script to a customer.

Why Chinese is split here: PostgreSQL's text-search parsers do not segment Chinese, so a run such as
如何办理退货 would be a single token and 退货 would never match it. The search document therefore
spells every run of CJK characters out as its single characters and overlapping pairs (如 何 办 理 退 货
如何 何办 办理 理退 退货); queries are split into the same pairs, and ``ts_rank`` rewards documents that
share more of them. No extension or dictionary is needed, so it works on a stock PostgreSQL.
"""
from __future__ import annotations

import html
import re

import nh3

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_TAG = re.compile(r"</?\s*[a-zA-Z][a-zA-Z0-9]*(\s[^<>]*)?/?>")
_SPACE = re.compile(r"\s+")

TAGS = frozenset({"p", "br", "strong", "em", "b", "i", "u", "ul", "ol", "li", "h2", "h3", "h4", "a",
                  "blockquote", "code", "pre"})
ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})


def looks_like_html(body: str) -> bool:
    return _TAG.search(body) is not None


def to_safe_html(body: str) -> str:
    """The HTML a customer sees: an HTML body keeps only the allowed tags and attributes; a plain body
    becomes escaped paragraphs (blank line = new paragraph, line break = ``<br>``)."""
    if not looks_like_html(body):
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body.replace("\r\n", "\n")) if p.strip()]
        body = "".join("<p>" + html.escape(p).replace("\n", "<br>") + "</p>" for p in paragraphs)
    cleaned = nh3.clean(body, tags=set(TAGS), attributes={k: set(v) for k, v in ATTRIBUTES.items()},
                        url_schemes=set(URL_SCHEMES), link_rel="noopener noreferrer nofollow")
    # Text left without any tag is still escaped HTML: wrap it so cleaning it again keeps it as it is.
    return f"<p>{cleaned}</p>" if cleaned.strip() and not looks_like_html(cleaned) else cleaned


def plain_text(body: str) -> str:
    """The words of a body without markup (for search and previews)."""
    if looks_like_html(body):
        spaced = re.sub(r"<(br|/p|/li|/h[2-4]|/blockquote|/pre)\s*/?>", " ", body, flags=re.I)
        body = html.unescape(nh3.clean(spaced, tags=set()))
    return _SPACE.sub(" ", body).strip()


def cjk_grams(run: str) -> list[str]:
    """Overlapping character pairs of a CJK run; a single character stands alone."""
    return [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]


def search_document(text: str) -> str:
    """``text`` with each CJK run replaced by its characters and character pairs, space-separated, so a
    word-based text-search parser indexes both."""

    def spell(match: re.Match) -> str:
        run = match.group(0)
        pairs = cjk_grams(run) if len(run) > 1 else []
        return " " + " ".join(list(run) + pairs) + " "

    return _SPACE.sub(" ", CJK.sub(spell, text)).strip()
