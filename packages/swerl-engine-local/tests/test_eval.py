"""``swerl eval`` with the local engine: a checkpoint becomes a servable model folder, and the
evaluation's rollout runs on a copy of the run's config that serves it (the rollout itself is
replaced here; `swerl rollout`'s own tests run the real stack)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from swerl.errors import UserError
from swerl.evaluate import evaluate, mean_and_stderr, previous, render
from swerl.launch import RolloutRun
from swerl.plugins import PluginManager
from swerl.trajectories import SampleRecord
from swerl_engine_local.checkpoint import export_model

BASE_FILES = {
    "config.json": '{"model_type": "qwen2"}',
    "generation_config.json": "{}",
    "tokenizer.json": "{}",
    "tokenizer_config.json": "{}",
}


def make_run(tmp_path: Path, steps: tuple[int, ...] = (3, 7)) -> tuple[Path, Path]:
    """A local-engine run folder with checkpoints after ``steps``, and its base model."""
    base = tmp_path / "models" / "base"
    base.mkdir(parents=True)
    for name, text in BASE_FILES.items():
        (base / name).write_text(text)
    (base / "model.safetensors").write_bytes(b"base weights")
    run = tmp_path / "runs" / "learn-1"
    for step in steps:
        ck = run / "checkpoints" / f"step_{step:06d}"
        ck.mkdir(parents=True)
        (ck / "model.safetensors").write_bytes(f"weights after step {step}".encode())
        (ck / "state.json").write_text(json.dumps({"step": step}))
    (run / "checkpoints" / "latest.json").write_text(
        json.dumps({"step": steps[-1], "path": f"step_{steps[-1]:06d}"})
    )
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    config = {
        "model": {"path": str(base)},
        "tasks": {"path": str(tasks)},
        "scaffold": {"name": "claude-code"},
        "sandbox": {"name": "docker"},
        "engine": {"name": "local"},
        "trainer": {"n_gpus_per_node": 0},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run, base


def test_a_checkpoint_becomes_a_model_folder_with_the_base_models_files(tmp_path: Path) -> None:
    run, base = make_run(tmp_path)
    out = run / "eval" / "models"
    step, folder = export_model(run, None, base, out)  # newest
    assert step == 7 and folder == out / "step_000007"
    assert (folder / "model.safetensors").read_bytes() == b"weights after step 7"
    for name, text in BASE_FILES.items():
        assert (folder / name).read_text() == text
    assert export_model(run, 3, base, out)[1].joinpath("model.safetensors").read_bytes() == (
        b"weights after step 3"
    )
    with pytest.raises(UserError, match=r"step 5 .*step_000003, step_000007"):
        export_model(run, 5, base, out)
    empty, _ = make_run(tmp_path / "other", steps=(1,))
    (empty / "checkpoints" / "step_000001" / "state.json").unlink()  # torn: not complete
    (empty / "checkpoints" / "latest.json").unlink()
    with pytest.raises(UserError, match="no complete checkpoint"):
        export_model(empty, None, base, out)


def record(task: str, trial: str, reward: float | None, index: int = 0) -> SampleRecord:
    return SampleRecord("r", trial, task, index, 1, reward, None, "")


def test_eval_serves_the_checkpoint_and_scores_every_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, base = make_run(tmp_path)
    calls: list[dict[str, Any]] = []

    def fake_rollout(loaded: Any, pm: Any, *, console: Any, tasks_dir: Any, n: int) -> Any:
        c = loaded.config
        calls.append({"model": Path(c.model.path), "out": Path(c.run.output_dir), "n": n})
        served = (Path(c.model.path) / "model.safetensors").read_bytes()
        good = 1.0 if served == b"weights after step 7" else 0.0
        records = [
            record("fix-a", "a0", good),
            record("fix-a", "a0", good, index=1),  # a second sample of the same trial
            record("fix-a", "a1", 1.0),
            record("fix-b", "b0", 0.0),
            record("fix-b", "b1", None),  # no reward: counted as a trial, not scored
        ]
        return RolloutRun("eval-run", run / "eval" / "eval-run", records, {}, [])

    monkeypatch.setattr("swerl.launch.run_rollout", fake_rollout)
    pm = PluginManager(env={}).load()
    console = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    late = evaluate(run, pm, console=console, n=2)
    first = evaluate(run, pm, console=console, base=True, n=2)

    assert calls[0]["model"] == run / "eval" / "models" / "step_000007"
    assert calls[1]["model"] == base
    assert all(c["out"] == run / "eval" and c["n"] == 2 for c in calls)
    assert (late.label, late.step, first.label, first.step) == ("step_000007", 7, "base", None)
    assert late.tasks == {"fix-a": [1.0, 1.0], "fix-b": [0.0, None]}
    assert (late.trials, late.scored) == (4, 3)
    assert late.mean == pytest.approx(2 / 3) and first.mean == pytest.approx(1 / 3)
    saved = previous(run)
    assert [r["label"] for r in saved] == ["base", "step_000007"]  # base first
    text = "\n".join(render(saved))
    assert "base  mean reward 0.33 ± 0.33" in text
    assert "step_000007  mean reward 0.67 ± 0.33" in text
    assert "fix-a" in text and "0.50" in text and "1.00" in text


def test_mean_and_stderr() -> None:
    assert mean_and_stderr([]) == (None, None)
    assert mean_and_stderr([1.0]) == (1.0, None)
    mean, se = mean_and_stderr([0.0, 1.0, 1.0, 0.0])
    assert mean == 0.5 and se == pytest.approx((1 / 3) ** 0.5 / 2)
