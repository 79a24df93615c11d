"""verl's per-step metrics reach metrics.jsonl: files written by verl's own Tracking/FileLogger
(as main_ppo writes them, one per launch), collected through the plan the launcher runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from swerl.config.load import load_config
from swerl.plan import build_plan
from swerl.plugins import PluginManager
from swerl.runstate import read_metrics, read_status
from swerl.train import step_line
from swerl_engine_fsdp.launch import metrics_path
from swerl_engine_fsdp.metrics import collect

ROOT = Path(__file__).resolve().parents[3]


def verl_logs(
    path: Path, steps: dict[int, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What verl's trainer logs with ``trainer.logger=[file]`` and $VERL_FILE_LOGGER_PATH."""
    from verl.utils.tracking import Tracking

    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(path))
    tracking = Tracking(project_name="swerl", experiment_name="t", default_backend=["file"])
    for step, data in steps.items():
        tracking.log(data=data, step=step)
    tracking.finish()


def step_data(step: int) -> dict[str, Any]:
    """A verl step's metrics as the trainer hands them over (numpy scalars included)."""
    return {
        "critic/score/mean": 0.25 * step,
        "rollout_corr/kl": np.float32(1e-4 * step),
        "timing_s/gen": 2.0 + step,
        "timing_s/update_actor": np.float64(3.0),
        "timing_s/update_weights": 0.3,
        "timing_s/step": 7.0 + step,
        "perf/total_num_tokens": np.int64(12800 + step),
        "num_turns/mean": np.float64(3.5),
        "actor/loss": -0.1 * step,
        "training/global_step": step,
        "note": "not a number",
        "nan_metric": float("nan"),
    }


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The launch plan of configs/gpu_1gpu_scripted.yaml in a temporary folder."""
    pm = PluginManager(env={"SWERL_PLUGIN_MODULES": "swerl.testing.fakes:Fakes"}).load()
    loaded = load_config(ROOT / "configs/gpu_1gpu_scripted.yaml", env={}, pm=pm)
    plan = build_plan(loaded, pm, run_id="m-1", env={}, base_dir=tmp_path)
    (Path(plan.run_dir) / "logs").mkdir(parents=True)
    return plan


def test_verl_steps_become_metrics_rows_with_swerl_names(
    run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = Path(run.run_dir)
    (verl,) = [p for p in run.processes if p.name == "verl-trainer"]
    logged = Path(verl.env["VERL_FILE_LOGGER_PATH"])
    assert logged.parent == run_dir / "logs"
    verl_logs(logged, {1: step_data(1), 2: step_data(2)}, monkeypatch)

    assert run.collect() == 2
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [0, 1]  # 0-based, as the local engine counts
    second = rows[1]
    assert second["reward/mean"] == second["critic/score/mean"] == 0.5
    assert second["time/rollout_s"] == 4.0 and second["time/train_s"] == 3.0
    assert second["time/sync_s"] == 0.3 and second["time/step_s"] == 9.0
    assert second["tokens/total"] == 12802
    assert second["rollout_corr/kl"] == pytest.approx(2e-4)
    assert "note" not in second and "nan_metric" not in second
    assert read_status(run_dir)["step"] == 2
    assert "reward 0.500" in step_line(second, 3) and "kl 2.0e-04" in step_line(second, 3)

    assert run.collect() == 0  # nothing new: nothing appended twice
    assert len(read_metrics(run_dir)) == 2


def test_a_resumed_launch_adds_only_the_steps_it_is_first_to_log(
    run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Launch 1 logged steps 1-3 and checkpointed at 2; launch 2 redoes 3 and goes on to 4.
    Each launch has its own file (verl truncates the one it opens); step 3 keeps launch 1's row."""
    run_dir = Path(run.run_dir)
    verl_logs(metrics_path_at(run_dir, 0), {s: step_data(s) for s in (1, 2, 3)}, monkeypatch)
    redo = step_data(3) | {"critic/score/mean": 9.0}
    verl_logs(metrics_path_at(run_dir, 60), {3: redo, 4: step_data(4)}, monkeypatch)
    assert collect(run_dir) == 4
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert rows[2]["reward/mean"] == 0.75  # launch 1's record of step 3
    assert rows[3]["reward/mean"] == 1.0
    raw = [json.loads(line) for line in metrics_path_at(run_dir, 0).read_text().splitlines()]
    assert [r["step"] for r in raw] == [1, 2, 3]  # launch 2 did not overwrite launch 1's file


def test_a_half_written_last_line_waits_for_the_next_call(run: Any) -> None:
    run_dir = Path(run.run_dir)
    path = metrics_path_at(run_dir, 0)
    whole = json.dumps({"step": 1, "data": {"critic/score/mean": 1.0}})
    path.write_text(whole + "\n" + '{"step": 2, "data": {"critic/sc')
    assert collect(run_dir) == 1
    path.write_text(whole + "\n" + json.dumps({"step": 2, "data": {"critic/score/mean": 0.0}}))
    assert collect(run_dir) == 1
    assert [r["reward/mean"] for r in read_metrics(run_dir)] == [1.0, 0.0]


def metrics_path_at(run_dir: Path, offset_s: float) -> Path:
    from swerl.plan import PlanContext

    ctx = PlanContext(run_dir.name, run_dir, run_dir.parent, {})
    return metrics_path(ctx, now=1_795_000_000 + offset_s)
