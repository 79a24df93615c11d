#!/usr/bin/env bash
# Step "sft-model": models/tiny-qwen2-sft, the tiny CPU policy warm-started to drive claude-code
# through several tool calls (scripts/make_sft_model.py). It records scripted claude-code trials
# on the tasks through the real stack (Docker sandbox, claude-code, LiteLLM, the gateway; the
# policy is a scripted fake), then fine-tunes models/tiny-qwen2 on them on the CPU: about 2 min
# of recording and 4 min of training on 2 cores. The recordings are kept in .cache/sft/, so a
# change to the training recipe alone trains again without recording. Done when the model's
# stamp equals what the script would write (the recipe, the base model's stamp, and a hash of
# the tasks, the scaffold settings of configs/smoke_cpu.yaml and the scripted conversations).
# Needs the venv, model, docker, compose, claude-code and base-image steps. weak_model.sh sources
# this file with its own STEP, OUT and EXTRA (more make_sft_model.py arguments).
if [[ -z "${SFT_VARIANT:-}" ]]; then
  STEP=sft-model
  OUT=models/tiny-qwen2-sft
  EXTRA=()
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BASE=models/tiny-qwen2
CONFIG=configs/smoke_cpu.yaml
[[ -x .venv/bin/python ]] || die ".venv is missing: run the venv step first (scripts/setup/venv.sh)"
[[ -f "$BASE/config.json" ]] || die "$BASE is missing: run the model step first (scripts/setup/model.sh)"

# Prints the cached recordings' path on stdout; exit 0 when the model is up to date.
state=$(.venv/bin/python - "$OUT" --base "$BASE" --config "$CONFIG" "${EXTRA[@]}" <<'PY'
import sys
sys.path.insert(0, "scripts")
import make_sft_model as m
args = m.parse_args(sys.argv[1:])
print(args.work / m.stamp_for(args)["inputs"] / m.TRANSCRIPTS)
sys.exit(0 if m.up_to_date(args) else 1)
PY
) && skipped "$OUT"
missing "$OUT"

if [[ ! -f "$state" ]]; then
  docker image inspect swerl-base:latest >/dev/null 2>&1 ||
    die "recording needs Docker and the image swerl-base:latest: run the docker and base-image steps first"
  say "recording scripted claude-code trials, then fine-tuning $BASE (about 6 min on 2 cores)"
else
  say "fine-tuning $BASE on the recordings in $state (about 4 min on 2 cores)"
fi
run .venv/bin/python scripts/make_sft_model.py "$OUT" --base "$BASE" --config "$CONFIG" "${EXTRA[@]}"
finished "$OUT"
