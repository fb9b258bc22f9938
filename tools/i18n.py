"""Keep the Chinese catalogue complete: ``python tools/i18n.py update`` extracts every message from
the code and templates, merges it into messages.po and fills translations from tools/zh/*.json
(msgid -> Chinese, one file per domain). ``check`` lists messages still without a translation (exit 1 if any)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "app/translations/zh/LC_MESSAGES/messages.po"
GLOSSARIES = ROOT / "tools/zh"  # one JSON file per domain: {"English msgid": "中文"}
POT = ROOT / "instance/messages.pot"


def extract() -> None:
    POT.parent.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", str(ROOT / "babel.cfg"),
                    "-k", "_l", "-k", "lazy_gettext", "-o", str(POT), "."], check=True, cwd=ROOT, capture_output=True)
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "update", "-i", str(POT), "-d",
                    str(ROOT / "app/translations"), "-l", "zh", "--no-fuzzy-matching", "--ignore-obsolete"], check=True, cwd=ROOT, capture_output=True)


def fill() -> list[str]:
    glossary: dict[str, str] = {}
    for path in sorted(GLOSSARIES.glob("*.json")):
        glossary.update(json.loads(path.read_text(encoding="utf-8")))
    with PO.open("rb") as handle:
        catalogue = read_po(handle)
    missing = []
    for message in catalogue:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        if key in glossary:
            message.string = glossary[key]
            message.flags.discard("fuzzy")
        elif not message.string:
            missing.append(key)
    with PO.open("wb") as handle:
        write_po(handle, catalogue, width=120)
    return missing


def main(argv: list[str]) -> int:
    if argv and argv[0] == "update":
        extract()
    missing = fill()
    for key in missing:
        print(f"untranslated: {key}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
