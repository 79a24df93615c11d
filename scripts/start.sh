#!/usr/bin/env bash
# Set up what is missing (scripts/bootstrap.sh: idempotent, ~1 s once done), then train:
# `swerl run` with the arguments given, e.g.
#   scripts/start.sh --config configs/smoke_cpu.yaml
#   scripts/start.sh --config configs/smoke_cpu.yaml --background
#   scripts/start.sh --resume runs/<run_id>
# SWERL_EXTRAS (e.g. gpu) and the other bootstrap variables apply to the setup part.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
scripts/bootstrap.sh
export LITELLM_LOCAL_MODEL_COST_MAP="${LITELLM_LOCAL_MODEL_COST_MAP:-True}"
exec .venv/bin/swerl run "$@"
