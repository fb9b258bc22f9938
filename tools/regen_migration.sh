#!/usr/bin/env bash
# Before the first release the schema has a single initial migration; this regenerates it from the
# models (used while domains are still being added). After a release, add migrations instead.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -f migrations/versions/0001_*.py
if ! DATABASE_URL="sqlite:///$tmp/regen.db" SECRET_KEY=regen LOG_LEVEL=WARNING \
     .venv/bin/flask --app app db migrate -m "initial schema" --rev-id 0001 >"$tmp/log" 2>&1; then
  cat "$tmp/log" >&2
  exit 1
fi
ls migrations/versions/
