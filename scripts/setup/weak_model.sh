#!/usr/bin/env bash
# Step "weak-model" (not part of `make setup`; `nox -s learn` runs it): models/tiny-qwen2-weak,
# the tiny policy taught the same routine as sft-model from the same recordings, but with each
# task's wrong fix seen more often than its right one (make_sft_model.py --right-share 0.3) and
# for 3000 steps instead of 600, so that it can write every task's right fix yet picks it rarely:
# a start that leaves RL room to rise on every task (configs/learn_cpu.yaml). 5 times the
# sft-model step's training (about 4 min on 2 cores for 600 steps, so roughly 20 min; 54 s on an
# H100); records first (about 2 min) when the sft-model step has not. Done when the model's stamp
# matches.
SFT_VARIANT=1
STEP=weak-model
OUT=models/tiny-qwen2-weak
EXTRA=(--right-share 0.3 --steps 3000)
source "$(dirname "${BASH_SOURCE[0]}")/sft_model.sh"
