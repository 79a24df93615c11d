# Shared helpers for scripts/setup/*.sh (sourced, never run). Each step script sets STEP, sources
# this file, and either does its work or, with --check, only reports whether anything is missing.
#
# Output contract (tests/test_setup.py reads it):
#   setup: <step> ... (skipped: already done[: detail])   nothing to do (--check: "ok[: detail]")
#   setup: <step> ... <what it does>                      progress while working
#   setup: <step> ... done in <N>s                        finished work
#   setup: <step> ... missing: <what>                     --check found work to do (exit 1)
#   setup: <step> ... error: <what to install or run>     cannot proceed (exit 2)
# shellcheck shell=bash

set -euo pipefail
SETUP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$SETUP_ROOT"

CHECK=0
if [[ "${1:-}" == "--check" ]]; then CHECK=1; fi
STEP_STARTED=$(date +%s%N)
CACHE="$SETUP_ROOT/.cache"

say() { printf 'setup: %s ... %s\n' "$STEP" "$*"; }
run() { printf 'setup: %s ... + %s\n' "$STEP" "$*"; "$@"; }
die() { printf 'setup: %s ... error: %s\n' "$STEP" "$*" >&2; exit 2; }

# skipped [detail]: nothing to do (also the --check answer when the step is complete).
skipped() {
  if ((CHECK)); then say "ok${1:+: $1}"; else say "(skipped: already done${1:+: $1})"; fi
  exit 0
}

# missing what: in --check mode, report and stop; otherwise a no-op so the step goes on to work.
missing() {
  if ((CHECK)); then
    say "missing: $*"
    exit 1
  fi
}

finished() {
  say "done in $(elapsed)s${1:+ ($1)}"
  exit 0
}

# elapsed: seconds since the step started, one decimal (integer arithmetic: no bc needed).
elapsed() {
  local tenths=$((($(date +%s%N) - STEP_STARTED) / 100000000))
  printf '%d.%d' $((tenths / 10)) $((tenths % 10))
}

is_root() { [[ $(id -u) == 0 ]]; }

# apt_install pkg...: root + apt-get only; refreshes the package lists once if a package is unknown.
apt_install() {
  is_root && command -v apt-get >/dev/null || return 1
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "$@" >"$CACHE/apt.log" 2>&1; then
    say "apt-get install $* failed; refreshing the package lists and retrying"
    apt-get update -qq >>"$CACHE/apt.log" 2>&1 || true
    apt-get install -y -qq --no-install-recommends "$@" >>"$CACHE/apt.log" 2>&1 || {
      tail -n 5 "$CACHE/apt.log" >&2
      return 1
    }
  fi
}

# toml_pin section key: a value from repos/manifest.toml (the single place upstream pins live).
toml_pin() {
  awk -v want="[$1]" -v key="$2" '
    /^\[/ { in_section = ($0 == want) }
    in_section && $1 == key { sub(/^[^=]*= *"/, ""); sub(/".*$/, ""); print; exit }
  ' repos/manifest.toml
}

sha256_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

mkdir -p "$CACHE"
