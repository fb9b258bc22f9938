"""``python -m bench NAME [--json] [options]``: run one benchmark from bench/NAME.py.

Each benchmark module exposes ``main(argv: list[str]) -> int``; it prints one JSON line per result
(with ``--json``) and a human-readable table. Benchmarks print figures; they never assert times.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def _available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                  if not m.name.startswith("_") and m.name != "common")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m bench NAME [--json] [options]\navailable: {', '.join(_available())}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in _available():
        print(f"error: unknown benchmark {name!r}; available: {', '.join(_available())}", file=sys.stderr)
        return 2
    return importlib.import_module(f"bench.{name}").main(rest)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
