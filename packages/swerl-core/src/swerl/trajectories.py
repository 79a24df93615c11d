"""Trajectory records: one JSON line per training sample, written as each trial ends.

A trial yields one sample per gateway segment (usually one: turns stitched into one sequence),
or one record with no tokens when it produced none, so that every trial is on disk with its
reward and its failure cause. Lines are flushed and fsynced per trial: a crash loses nothing
that finished.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any


@dataclass
class SampleRecord:
    run_id: str
    trial_id: str
    task: str
    sample_index: int
    num_samples: int
    reward: float | None
    failure_cause: str | None
    failure_detail: str
    prompt_ids: list[int] = field(default_factory=list)
    response_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    num_turns: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    #: Fraction of mask-1 ids that are the sampled ids verbatim (None: no trained tokens).
    exactness: float | None = None
    stitch_breaks: int = 0
    malformed_tool_calls: int = 0
    agent: dict[str, Any] = field(default_factory=dict)

    @property
    def trained_tokens(self) -> int:
        return sum(self.loss_mask)


class TrajectoryWriter:
    """Appends records to ``<run_dir>/trajectories/<name>.jsonl``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def write(self, records: list[SampleRecord]) -> None:
        for rec in records:
            self._file.write(json.dumps(asdict(rec), separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_records(path: Path) -> list[SampleRecord]:
    return [SampleRecord(**json.loads(line)) for line in path.read_text().splitlines() if line]


def first_per_trial(records: list[SampleRecord]) -> dict[str, SampleRecord]:
    """Trial id → its first record (every record of a trial has the trial's reward and cause)."""
    trials: dict[str, SampleRecord] = {}
    for rec in records:
        trials.setdefault(rec.trial_id, rec)
    return trials


def summarize(records: list[SampleRecord]) -> dict[str, Any]:
    """Per-trial rewards, failures by cause, tokens, exactness and time per phase."""
    trials = first_per_trial(records)
    rewards = [t.reward for t in trials.values() if t.reward is not None]
    causes = Counter(t.failure_cause for t in trials.values() if t.failure_cause)
    trained = sum(r.trained_tokens for r in records)
    matched = sum(round((r.exactness or 0.0) * r.trained_tokens) for r in records)
    phases: dict[str, list[float]] = {}
    for t in trials.values():
        for phase, seconds in t.timings.items():
            phases.setdefault(phase, []).append(seconds)
    return {
        "trials": len(trials),
        "samples": sum(1 for r in records if r.response_ids),
        "reward_mean": statistics.fmean(rewards) if rewards else None,
        "pass_rate": sum(r >= 1.0 for r in rewards) / len(trials) if trials else None,
        "failures": dict(causes),
        "multi_turn_trials": sum(1 for t in trials.values() if t.num_turns > 1),
        "tokens": {
            "prompt": sum(len(r.prompt_ids) for r in records),
            "sampled": trained,
            "observation": sum(len(r.loss_mask) - sum(r.loss_mask) for r in records),
        },
        "exactness": matched / trained if trained else None,
        "stitch_breaks": sum(r.stitch_breaks for r in trials.values()),
        "seconds_per_phase": {
            k: {"mean": statistics.fmean(v), "max": max(v)} for k, v in sorted(phases.items())
        },
    }
