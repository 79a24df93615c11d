#!/usr/bin/env bash
# Step "weak-model" (not part of `make setup`; `nox -s learn` runs it): models/tiny-qwen2-weak,
# the tiny policy taught the same routine as sft-model from the same recordings, but with each
# task's wrong fix seen more often than its right one (make_sft_model.py --right-share 0.3), so
# that it picks the right fix about a quarter of the time: a start that leaves RL room to rise
# (configs/learn_cpu.yaml). About 4 min of training on 2 cores; records first (about 2 min)
# when the sft-model step has not. Done when the model's stamp matches.
SFT_VARIANT=1
STEP=weak-model
OUT=models/tiny-qwen2-weak
EXTRA=(--right-share 0.3)
source "$(dirname "${BASH_SOURCE[0]}")/sft_model.sh"
