"""``swerl eval``: a fixed evaluation of one of a run's checkpoints, or of its starting model.

A training step's mean reward is a small, changing sample (``train_batch_size × n_resp`` trials
of the tasks the sampler drew). An evaluation runs every task of the run's task set ``n`` times
with the same stack and sampling settings as the run's rollouts (``swerl rollout`` on a copy of
the run's config whose ``model.path`` is the checkpoint), so two checkpoints compare on the same
tasks with a known standard error.

The engine turns its checkpoint into a model folder (:meth:`swerl.components.Engine.
checkpoint_model`) under ``<run dir>/eval/models/``; the rollout's own folder (logs,
trajectories) is ``<run dir>/eval/<eval run id>/``; the result is ``<run dir>/eval/<label>.json``
(``base`` or ``step_<N>``), which a later ``swerl eval`` of the same run prints beside its own.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

from swerl.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from swerl.components import Engine
    from swerl.config.load import LoadedConfig
    from swerl.plugins import PluginManager
    from swerl.trajectories import SampleRecord

EVAL = "eval"


@dataclass
class EvalResult:
    label: str
    step: int | None
    model: str
    n: int
    #: task → the reward of each trial (None: the trial got no reward)
    tasks: dict[str, list[float | None]]
    trials: int
    scored: int
    mean: float | None
    stderr: float | None
    rollout_run: str

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)


def task_rewards(records: list[SampleRecord]) -> dict[str, list[float | None]]:
    """Each task's trial rewards, one per trial (a trial's samples share its reward)."""
    seen: set[str] = set()
    out: dict[str, list[float | None]] = {}
    for rec in records:
        if rec.trial_id in seen:
            continue
        seen.add(rec.trial_id)
        out.setdefault(rec.task, []).append(rec.reward)
    return dict(sorted(out.items()))


def mean_and_stderr(values: list[float]) -> tuple[float | None, float | None]:
    """The mean and its standard error (sample standard deviation / sqrt(k))."""
    if not values:
        return None, None
    k = len(values)
    mean = sum(values) / k
    if k < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (k - 1)
    return mean, math.sqrt(var / k)


def eval_config(
    loaded: LoadedConfig, pm: PluginManager, model: Path, run_dir: Path, label: str
) -> LoadedConfig:
    """The run's own config with ``model.path`` = ``model`` and the rollout's folder under
    ``<run dir>/eval/``."""
    from swerl.config.load import parse_config

    data = loaded.resolved()
    data["model"]["path"] = str(model)
    data["run"]["name"] = label  # short: the sandbox socket path must stay under 108 bytes
    data["run"]["output_dir"] = str(run_dir / EVAL)
    source = f"{run_dir / 'config.yaml'} (eval of {label})"
    return parse_config(yaml.safe_dump(data, sort_keys=False), source=source, env={}, pm=pm)


def previous(run_dir: Path) -> list[dict[str, Any]]:
    """Earlier evaluations of this run, base first, then by step."""
    out = []
    for path in (run_dir / EVAL).glob("*.json"):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda r: -1 if r.get("step") is None else int(r["step"]))


def evaluate(
    run_dir: Path,
    pm: PluginManager,
    *,
    console: Console,
    step: int | None = None,
    base: bool = False,
    n: int = 8,
    tasks_dir: Path | None = None,
) -> EvalResult:
    """Run every task ``n`` times with the checkpoint after ``step`` (None: the newest), or with
    the run's starting model (``base``); save and return the result."""
    from swerl.config.load import load_config
    from swerl.launch import run_rollout

    run_dir = run_dir.resolve()  # the eval config names folders inside it
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a run folder: it has no config.yaml")
    loaded = load_config(run_dir / "config.yaml", env={}, pm=pm)
    config = loaded.config
    base_model = Path(config.model.path).expanduser().resolve()
    if base:
        label, model, chosen = "base", base_model, None
    else:
        engine = cast(
            "Engine", pm.get("engine", config.engine.name).cls(loaded.options.get("engine"))
        )
        chosen, model = engine.checkpoint_model(
            run_dir, step, base_model, run_dir / EVAL / "models"
        )
        label = f"step_{chosen:06d}"
    console.print(f"eval of {run_dir.name}: {label} ({model}), every task × {n}")
    result = run_rollout(
        eval_config(loaded, pm, model, run_dir, label),
        pm,
        console=console,
        tasks_dir=tasks_dir,
        n=n,
    )
    per_task = task_rewards(result.records)
    scored = [r for rewards in per_task.values() for r in rewards if r is not None]
    mean, stderr = mean_and_stderr(scored)
    out = EvalResult(
        label=label,
        step=chosen,
        model=str(model),
        n=n,
        tasks=per_task,
        trials=sum(len(r) for r in per_task.values()),
        scored=len(scored),
        mean=mean,
        stderr=stderr,
        rollout_run=str(result.run_dir),
    )
    out.save(run_dir / EVAL / f"{label}.json")
    if result.died:
        raise UserError(
            f"these processes died during the evaluation: {', '.join(result.died)} "
            f"(the trials so far are in {result.run_dir})"
        )
    return out


def render(results: list[dict[str, Any]]) -> list[str]:
    """One line per evaluation, then each task's mean per evaluation."""

    def fmt(r: dict[str, Any]) -> str:
        if r.get("mean") is None:
            return "n/a"
        se = f" ± {r['stderr']:.2f}" if r.get("stderr") is not None else ""
        return f"{r['mean']:.2f}{se}"

    lines = [
        f"{r['label']:>12}  mean reward {fmt(r)}  ({r['scored']}/{r['trials']} trials scored, "
        f"n={r['n']})"
        for r in results
    ]
    tasks = sorted({t for r in results for t in r.get("tasks", {})})
    if tasks:
        lines.append(f"{'task':<24}" + "".join(f"{r['label']:>14}" for r in results))
        for task in tasks:
            cells = []
            for r in results:
                scored = [v for v in r.get("tasks", {}).get(task, []) if v is not None]
                cells.append(f"{sum(scored) / len(scored):>14.2f}" if scored else f"{'-':>14}")
            lines.append(f"{task:<24}" + "".join(cells))
    return lines
