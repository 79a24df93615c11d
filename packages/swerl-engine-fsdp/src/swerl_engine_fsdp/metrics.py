"""verl's per-step metrics into the run's ``metrics.jsonl`` (what ``swerl status``, ``swerl report``
and ``swerl run``'s step lines read).

verl's FileLogger (``trainer.logger`` has ``file``) writes one line per step to
``$VERL_FILE_LOGGER_PATH``, which the plan sets to ``logs/verl_metrics_<launch>.jsonl``: one file
per launch, because verl truncates the file it opens. Each line is
``{"step": <verl global step, from 1>, "data": {name: value}}``.

A row of ``metrics.jsonl`` keeps every numeric verl metric under its own name, with ``step``
0-based as the local engine counts, plus swerl's names for the headline ones (:data:`ALIASES`), so
the same report and status work for both engines. A step already in ``metrics.jsonl`` is not
added again: after a resume, verl redoes the steps after its last checkpoint, and the first
record of such a step is the one kept.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from swerl.runstate import append_metrics, read_metrics, update_status

#: verl's metric → swerl's name for it (both are kept).
ALIASES = {
    "critic/score/mean": "reward/mean",
    "timing_s/gen": "time/rollout_s",
    "timing_s/update_actor": "time/train_s",
    "timing_s/update_weights": "time/sync_s",
    "timing_s/save_checkpoint": "time/checkpoint_s",
    "timing_s/step": "time/step_s",
    "perf/total_num_tokens": "tokens/total",
    "perf/throughput": "tokens/per_s",
}
#: The files verl's FileLogger writes, one per launch, under the run folder.
PATTERN = "logs/verl_metrics_*.jsonl"


def number(value: Any) -> float | None:
    """A finite number from what verl logged (numpy scalars arrive as numbers), else None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    return None


def swerl_row(entry: dict[str, Any]) -> tuple[int, dict[str, float]]:
    """One verl line → (0-based step, metrics): verl's numeric metrics, then swerl's aliases."""
    data = entry.get("data") or {}
    metrics = {k: v for k, v in ((k, number(v)) for k, v in data.items()) if v is not None}
    for verl_name, name in ALIASES.items():
        if verl_name in metrics:
            metrics[name] = metrics[verl_name]
    return int(entry["step"]) - 1, metrics


def read_verl_lines(path: Path) -> list[dict[str, Any]]:
    """The complete lines of one verl metrics file (a line still being written is skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("step"), int):
            out.append(entry)
    return out


def collect(run_dir: Path) -> int:
    """Append the verl steps that ``metrics.jsonl`` lacks, oldest launch first; the number
    added. The status then names the step after the newest (phase ``running``)."""
    have = {int(r["step"]) for r in read_metrics(run_dir) if isinstance(r.get("step"), int)}
    added = 0
    last = None
    for path in sorted(run_dir.glob(PATTERN)):  # launch timestamps sort in time order
        for entry in read_verl_lines(path):
            step, metrics = swerl_row(entry)
            if step in have:
                continue
            append_metrics(run_dir, step, metrics)
            have.add(step)
            added += 1
            last = step
    if last is not None:
        update_status(run_dir, phase="running", step=last + 1)
    return added
