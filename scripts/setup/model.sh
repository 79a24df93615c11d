#!/usr/bin/env bash
# Step "model": the tiny CPU policy model in models/tiny-qwen2 (scripts/make_tiny_model.py: a
# random Qwen2 and a tokenizer trained offline, ~10 s). Done when the model's stamp file equals
# what the script would write, which is read without importing anything heavy.
STEP=model
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUT=models/tiny-qwen2
SEED=0
[[ -x .venv/bin/python ]] || die ".venv is missing: run the venv step first (scripts/setup/venv.sh)"
if .venv/bin/python - "$OUT" "$SEED" <<'PY'; then
import json, sys
from pathlib import Path
sys.path.insert(0, "scripts")
import make_tiny_model as m
stamp = Path(sys.argv[1]) / m.STAMP
ok = stamp.is_file() and json.loads(stamp.read_text()) == m.stamp_for(int(sys.argv[2]))
sys.exit(0 if ok else 1)
PY
  skipped "$OUT (seed $SEED)"
fi
missing "$OUT (seed $SEED)"
run .venv/bin/python scripts/make_tiny_model.py "$OUT" --seed "$SEED"
finished "$OUT"
