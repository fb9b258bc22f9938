"""Making received HTML safe to show an agent (pure; nh3).

Scripts, styles, forms, event handlers and dangerous URL schemes go. Remote images are blocked until
the agent allows them for the message (they tell the sender the mail was opened, and when);
``cid:`` images are pointed at our own, staff-only attachment URLs.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import nh3

_TAGS = set(nh3.ALLOWED_TAGS) | {"font", "center"}
_SCHEMES = set(nh3.ALLOWED_URL_SCHEMES) | {"cid"}  # cid: is rewritten to our URL below
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES.setdefault("img", set()).update({"src", "alt", "width", "height", "title"})
_ATTRIBUTES.setdefault("td", set()).update({"colspan", "rowspan", "align", "valign"})
_ATTRIBUTES.setdefault("font", set()).update({"color"})


@dataclass(frozen=True)
class SafeHtml:
    html: str
    blocked_images: int


def sanitise_html(html: str, *, allow_remote_images: bool = False,
                  cid_urls: Mapping[str, str] | None = None) -> SafeHtml:
    """Clean ``html``. ``cid_urls`` maps Content-IDs to the URLs their attachments are served at."""
    cid_urls = cid_urls or {}
    blocked = 0

    def _filter(tag: str, attribute: str, value: str) -> str | None:
        nonlocal blocked
        if tag != "img" or attribute != "src":
            return None if value.strip().lower().startswith("cid:") else value
        src = value.strip()
        lowered = src.lower()
        if lowered.startswith("cid:"):
            return cid_urls.get(src[4:].strip("<>"))
        if lowered.startswith(("http://", "https://", "//")):
            if allow_remote_images:
                return src
            blocked += 1
            return None
        return None  # data:, file:, relative paths to somebody else's server: never

    cleaned = nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, attribute_filter=_filter,
                        link_rel="noopener noreferrer nofollow", url_schemes=_SCHEMES, url_relative="pass_through")
    return SafeHtml(cleaned, blocked)
