"""Decoding text the way mail clients do (pure).

Mail in the wild mislabels its charset: "gb2312" that holds GBK characters, "iso-8859-1" that is
really windows-1252, raw 8-bit headers with no label at all. Like browsers (the WHATWG Encoding
standard), we decode labels with their supersets, and fall back through the charsets our customers use
(UTF-8, GB18030, Big5) before Latin-1, which never fails -- so no message is unreadable for a label.
"""
from __future__ import annotations

import codecs
import re
from email.header import decode_header

# Label -> the codec that decodes everything the label is used for in practice.
SUPERSETS = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030", "euc-cn": "gb18030",
    "hz-gb-2312": "hz", "csgb2312": "gb18030", "chinese": "gb18030", "gb_2312-80": "gb18030",
    "big5": "big5hkscs", "x-x-big5": "big5hkscs", "cn-big5": "big5hkscs", "csbig5": "big5hkscs",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252",
    "iso-8859-9": "cp1254", "iso-8859-11": "cp874", "tis-620": "cp874",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "shift_jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "utf8": "utf-8", "unicode-1-1-utf-8": "utf-8", "x-unknown": "", "unknown-8bit": "", "unknown": "",
}
# Tried in order when there is no usable label; Latin-1 last because it accepts any byte.
FALLBACKS = ("utf-8", "gb18030", "big5hkscs", "cp1252", "latin-1")
_FOLD = re.compile(r"\s*\r?\n\s*")  # a line break with the blanks around it
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.\-]+)""", re.IGNORECASE)


def codec_for(label: str | None) -> str | None:
    """The Python codec for a charset label, or None when the label is missing or unknown."""
    if not label:
        return None
    key = label.strip().strip('"').lower()
    if key in SUPERSETS:
        return SUPERSETS[key] or None
    try:
        return codecs.lookup(key).name
    except LookupError:
        return None


def decode_bytes(data: bytes, label: str | None = None) -> tuple[str, str]:
    """Decode ``data``; returns (text, codec used). Never raises.

    The labelled codec is tried strictly first, then the fallbacks; if a label was given and nothing
    decodes strictly, the label wins with replacement characters (better than guessing Latin-1)."""
    codec = codec_for(label)
    if codec:
        try:
            return data.decode(codec), codec
        except (UnicodeDecodeError, LookupError):
            pass
    for candidate in FALLBACKS:
        if candidate == codec:
            continue
        if candidate == "latin-1" and codec:
            return data.decode(codec, errors="replace"), codec
        try:
            return data.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"  # pragma: no cover - latin-1 above accepts every byte


def html_declared_charset(html: bytes) -> str | None:
    """The charset an HTML document declares in its first 2 KB (<meta charset=...>), if any."""
    match = _META_CHARSET.search(html[:2048])
    return match.group(1).decode("ascii", "replace") if match else None


def decode_header_value(value: str) -> str:
    """A header as text: RFC 2047 encoded-words decoded (with charset supersets), raw 8-bit bytes
    (carried by the parser as surrogate escapes) guessed, whitespace folded. Never raises."""
    if not value:
        return ""
    if value.isascii() and "=?" not in value:  # most values: nothing to decode (what the rest would find)
        return _fold(value)
    try:
        raw = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # already real Unicode (a parser that decoded it for us)
        return _fold(value)
    if not raw.isascii() and b"=?" not in raw:
        return _fold(decode_bytes(raw)[0])
    try:
        chunks = decode_header(raw.decode("latin-1"))
    except Exception:  # noqa: BLE001 - email.header raises several types on garbage; keep the text
        return _fold(decode_bytes(raw)[0])
    parts: list[str] = []
    for chunk, label in chunks:
        if isinstance(chunk, str):
            parts.append(chunk)
            continue
        if label is None:
            parts.append(decode_bytes(chunk.decode("latin-1").encode("latin-1"))[0])
        else:
            parts.append(decode_bytes(chunk, label)[0])
    return _fold("".join(parts))


def _fold(text: str) -> str:
    return _FOLD.sub(" ", text).strip() if "\n" in text else text.strip()
