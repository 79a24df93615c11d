#!/usr/bin/env bash
# Step "venv": .venv, the Python 3.12 environment of the whole training stack, from uv.lock.
# uv comes from PATH or is pip-installed into .cache/tools. A stamp (hash of uv.lock, every
# pyproject.toml and the extras) lets a second run skip `uv sync` altogether.
# Environment: SWERL_PYTHON=/path/to/python3.12 picks the interpreter; SWERL_EXTRAS=gpu installs
# the lock's GPU extra (the default when nvidia-smi lists a GPU); UV_CACHE_DIR moves uv's cache.
STEP=venv
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Extras of the lock to install: `gpu` (verl[vllm], vllm) on a machine with an NVIDIA GPU.
# A plain `uv sync` removes what the lock does not ask for, so a GPU host must keep asking for it.
if [[ -z "${SWERL_EXTRAS+set}" ]]; then
  SWERL_EXTRAS=""
  if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    SWERL_EXTRAS=gpu
  fi
fi
STAMP=.venv/swerl-setup.stamp
want="$(sha256_of uv.lock pyproject.toml packages/*/pyproject.toml) extras=${SWERL_EXTRAS}"
if [[ -x .venv/bin/python && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  skipped ".venv matches uv.lock (extras: ${SWERL_EXTRAS:-none})"
fi
missing ".venv in sync with uv.lock (extras: ${SWERL_EXTRAS:-none})"

is_py312() { [[ -x "$1" ]] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; }

find_python() {
  local candidate
  if [[ -n "${SWERL_PYTHON:-}" ]]; then
    is_py312 "$SWERL_PYTHON" || die "SWERL_PYTHON=$SWERL_PYTHON is not a Python 3.12 interpreter"
    echo "$SWERL_PYTHON"
    return
  fi
  # `python3.12` may be a pyenv shim that exists but refuses to run: try it, do not trust it.
  candidate=$(command -v python3.12 || true)
  if [[ -n "$candidate" ]] && is_py312 "$candidate"; then
    "$candidate" -c 'import sys; print(sys.executable)'
    return
  fi
  if command -v pyenv >/dev/null; then
    for candidate in $(ls -d "$(pyenv root)"/versions/3.12.*/bin/python3 2>/dev/null | sort -rV); do
      is_py312 "$candidate" && { echo "$candidate"; return; }
    done
  fi
  die "no Python 3.12 found: install one (e.g. \`pyenv install 3.12\`, or your distribution's python3.12) or set SWERL_PYTHON"
}

find_uv() {
  local candidate
  for candidate in "$(command -v uv || true)" .cache/tools/bin/uv; do
    if [[ -n "$candidate" ]] && "$candidate" --version >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
}

PY312=$(find_python)
say "Python 3.12: $PY312"
UV=$(find_uv)
if [[ -z "$UV" ]]; then
  say "uv not found: installing it into .cache/tools (a small venv of its own)"
  run "$PY312" -m venv .cache/tools
  run .cache/tools/bin/python -m pip install --quiet --disable-pip-version-check uv
  UV=.cache/tools/bin/uv
fi
say "uv: $UV ($("$UV" --version)); extras: ${SWERL_EXTRAS:-none} (SWERL_EXTRAS=gpu or SWERL_EXTRAS= to choose)"

extras=()
for extra in ${SWERL_EXTRAS//,/ }; do extras+=(--extra "$extra"); done
# uv must not download interpreters (GitHub is not reachable everywhere swerl runs).
export UV_PYTHON_DOWNLOADS=never
run "$UV" sync --locked --python "$PY312" "${extras[@]}"
printf '%s' "$want" >"$STAMP"
finished ".venv/bin/swerl is ready"
