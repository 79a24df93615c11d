"""Checkpoints of the local engine, written atomically, and the task sampler they restore.

``<run_dir>/checkpoints/step_<N>/`` holds ``model.safetensors`` (the weights after step N),
``optimizer.pt`` (AdamW state), and ``state.json``: the step, the sampler position and the RNG
states. A checkpoint is first written to a hidden temp folder and renamed into place, so a kill at
any moment leaves either the whole checkpoint or none of it; ``latest.json`` names the newest
complete one. Resuming from step N continues with step N + 1.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swerl.runstate import read_json, write_json_atomic

if TYPE_CHECKING:
    from swerl_engine_local.policy import Policy

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"


@dataclass
class SamplerState:
    epoch: int = 0
    index: int = 0


class TaskSampler:
    """Tasks in a fresh seeded shuffle each epoch; a step takes the next ``batch`` of them."""

    def __init__(self, tasks: list[Path], seed: int, state: SamplerState | None = None) -> None:
        if not tasks:
            raise ValueError("no tasks to sample from")
        self.tasks = sorted(tasks)
        self.seed = seed
        self.state = state or SamplerState()

    def _order(self, epoch: int) -> list[Path]:
        order = list(self.tasks)
        random.Random(f"{self.seed}:{epoch}").shuffle(order)
        return order

    def next(self, batch: int) -> list[Path]:
        out: list[Path] = []
        while len(out) < batch:
            order = self._order(self.state.epoch)
            take = order[self.state.index : self.state.index + batch - len(out)]
            out += take
            self.state.index += len(take)
            if self.state.index >= len(order):
                self.state = SamplerState(self.state.epoch + 1, 0)
        return out


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS / f"step_{step:06d}"


def save_checkpoint(
    run_dir: Path, step: int, policy: Policy, sampler: TaskSampler, extra: dict[str, Any]
) -> Path:
    import torch

    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    policy.save_weights(tmp)
    torch.save(policy.optimizer.state_dict(), tmp / "optimizer.pt")
    state = {
        "step": step,
        "sampler": asdict(sampler.state),
        "python_rng": _jsonable(random.getstate()),
        "torch_rng": torch.get_rng_state().tolist(),
        **extra,
    }
    (tmp / "state.json").write_text(json.dumps(state))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_json_atomic(run_dir / CHECKPOINTS / LATEST, {"step": step, "path": final.name})
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (``latest.json``, else the highest complete step)."""
    root = run_dir / CHECKPOINTS
    latest = read_json(root / LATEST)
    if latest and (root / latest["path"] / "state.json").is_file():
        return root / latest["path"]
    done = sorted(p for p in root.glob("step_*") if (p / "state.json").is_file())
    return done[-1] if done else None


#: Files of the base model a served checkpoint needs besides its weights.
MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def export_model(
    run_dir: Path, step: int | None, base_model: Path, out_dir: Path
) -> tuple[int, Path]:
    """``out_dir/step_<N>/``: the base model's config and tokenizer files with the weights of the
    checkpoint after step N (None: the newest); (N, that folder). Linked, not copied, where the
    file system allows; a folder already made for N is reused."""
    from swerl.errors import UserError

    if step is None:
        latest = latest_checkpoint(run_dir)
        if latest is None:
            raise UserError(f"{run_dir} has no complete checkpoint under {CHECKPOINTS}/")
        step = int(json.loads((latest / "state.json").read_text())["step"])
    source = checkpoint_dir(run_dir, step)
    if not (source / "state.json").is_file():
        have = sorted(p.name for p in (run_dir / CHECKPOINTS).glob("step_*"))
        raise UserError(
            f"no complete checkpoint for step {step} in {run_dir / CHECKPOINTS} "
            f"(there are: {', '.join(have) or 'none'})"
        )
    final = out_dir / source.name
    if (final / "model.safetensors").is_file():
        return step, final
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in MODEL_FILES:
        if (base_model / name).is_file():
            shutil.copy2(base_model / name, tmp / name)
    if not (tmp / "config.json").is_file():
        raise UserError(
            f"{base_model} (model.path) has no config.json to serve the checkpoint with"
        )
    try:
        os.link(source / "model.safetensors", tmp / "model.safetensors")
    except OSError:
        shutil.copy2(source / "model.safetensors", tmp / "model.safetensors")
    os.replace(tmp, final)
    return step, final


def load_checkpoint(path: Path, policy: Policy, sampler: TaskSampler) -> dict[str, Any]:
    """Restore weights, optimizer, sampler and RNG; returns the checkpoint's state.json."""
    import torch

    state: dict[str, Any] = json.loads((path / "state.json").read_text())
    policy.load_weights(path / "model.safetensors")
    policy.optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    sampler.state = SamplerState(**state["sampler"])
    random.setstate(_tuples(state["python_rng"]))
    torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    return state


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value
