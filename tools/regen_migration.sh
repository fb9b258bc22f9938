#!/usr/bin/env bash
# Before the first release the schema has a single initial migration; this regenerates it from the
# models (used while domains are still being added). After a release, add migrations instead.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
mkdir "$tmp/later"
# Later hand-written revisions (0002_...: database-specific settings the models cannot express) build on
# 0001: set aside while it is made again from the models, then put back.
restore() { mv "$tmp"/later/*.py migrations/versions/ 2>/dev/null || true; rm -rf "$tmp"; }
trap restore EXIT
find migrations/versions -maxdepth 1 -name '0*.py' ! -name '0001_*' -exec mv {} "$tmp/later/" \;
rm -f migrations/versions/0001_*.py
if ! DATABASE_URL="sqlite:///$tmp/regen.db" SECRET_KEY=regen LOG_LEVEL=WARNING \
     .venv/bin/flask --app app db migrate -m "initial schema" --rev-id 0001 >"$tmp/log" 2>&1; then
  cat "$tmp/log" >&2
  exit 1
fi
restore
trap - EXIT
ls migrations/versions/
