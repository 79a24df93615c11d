#!/usr/bin/env bash
# Stop a run and remove its containers and transient files: `swerl clean` (see
# docs/run-training/manage.md). Run folders are looked up from the repository root.
#   scripts/clean.sh                  # the newest run under runs/
#   scripts/clean.sh <run_id> --logs --trials
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec .venv/bin/swerl clean "$@"
