#!/usr/bin/env bash
# Preflight a run without starting anything: `swerl check` on a config (default: the CPU smoke).
#   scripts/dryrun.sh                         # configs/smoke_cpu.yaml
#   scripts/dryrun.sh -c configs/sync_1node_cc.yaml --json
# Arguments pass through to `swerl check`; it exits 1 when a check fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

swerl=swerl
if [[ -x .venv/bin/swerl ]]; then
  swerl=.venv/bin/swerl
elif ! command -v swerl >/dev/null; then
  echo "dryrun: no swerl found; run \`make setup\` (or \`uv sync\`) first" >&2
  exit 2
fi

has_config=0
for arg in "$@"; do
  case "$arg" in -c | --config | --config=*) has_config=1 ;; esac
done
if [[ $has_config == 0 ]]; then
  set -- --config configs/smoke_cpu.yaml "$@"
fi
exec "$swerl" check "$@"
