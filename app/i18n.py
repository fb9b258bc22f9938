"""Translation catalogues: compiled from the committed .po files when missing or stale.

Compiling at start-up (milliseconds) means no build step can be forgotten and a fresh clone
speaks Chinese from its first page.
"""
from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).parent / "translations"


def reader_language() -> str:
    """The request's language as the desk's bilingual labels key it: "zh" or "en"."""
    from flask_babel import get_locale

    return "zh" if str(get_locale()) == "zh" else "en"


def compile_catalogues(directory: Path = TRANSLATIONS) -> list[Path]:
    """Write messages.mo beside every messages.po that is newer; return the files written."""
    written = []
    for po_path in directory.glob("*/LC_MESSAGES/messages.po"):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as handle:
            catalogue = read_po(handle)
        with mo_path.open("wb") as handle:
            write_mo(handle, catalogue)
        written.append(mo_path)
    return written
