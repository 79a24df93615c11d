"""The trainer's parts on the tiny model: logprobs, weights, checkpoints, the task sampler."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from swerl.testing import need
from swerl_engine_local.checkpoint import (
    TaskSampler,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from swerl_engine_local.policy import Policy, make_batch

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "models" / "tiny-qwen2"


@dataclass
class Sample:
    prompt_ids: list[int]
    response_ids: list[int]
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.loss_mask = self.loss_mask or [1] * len(self.response_ids)
        self.logprobs = self.logprobs or [0.0] * len(self.response_ids)


@pytest.fixture(scope="module")
def model_path() -> Path:
    need((MODEL / "config.json").is_file(), "models/tiny-qwen2 is missing: run `make setup`")
    return MODEL


def samples() -> list[Sample]:
    rng = random.Random(0)
    return [
        Sample(
            [rng.randrange(5, 4000) for _ in range(p)], [rng.randrange(5, 4000) for _ in range(r)]
        )
        for p, r in [(7, 5), (3, 9), (12, 1)]
    ]


def reference_logprobs(policy: Policy, s: Sample) -> list[float]:
    """One unpadded forward per sample, computed independently of make_batch."""
    ids = torch.tensor([s.prompt_ids + s.response_ids])
    with torch.no_grad():
        logits = policy.model(input_ids=ids).logits[0].float()
    lps = torch.log_softmax(logits, -1)
    start = len(s.prompt_ids)
    return [float(lps[start + j - 1, t]) for j, t in enumerate(s.response_ids)]


def test_padded_batch_logprobs_equal_one_forward_per_sample(model_path: Path) -> None:
    policy = Policy(model_path, lr=1e-3)
    batch = make_batch(samples())
    with torch.no_grad():
        got = policy.logprobs(batch)
    assert got.shape == (3, 9)
    for i, s in enumerate(samples()):
        want = reference_logprobs(policy, s)
        r = len(s.response_ids)
        assert got[i, :r].tolist() == pytest.approx(want, abs=1e-5)
        assert got[i, r:].abs().sum() == 0  # padding positions are zero
        assert batch.mask[i].sum() == r


def test_step_changes_weights_and_save_load_round_trips(model_path: Path, tmp_path: Path) -> None:
    policy = Policy(model_path, lr=1e-2)
    batch = make_batch(samples())
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    loss = -(policy.logprobs(batch) * batch.mask).sum() / batch.mask.sum()
    norm = policy.step(loss)
    assert norm > 0
    changed = [k for k, v in policy.state_dict().items() if not torch.equal(v, before[k])]
    assert "lm_head.weight" in changed and len(changed) > 5
    path = policy.save_weights(tmp_path / "w")
    assert path.name == "model.safetensors" and not list((tmp_path / "w").glob(".*tmp"))
    other = Policy(model_path, lr=1e-2)
    other.load_weights(path)
    for k, v in other.state_dict().items():
        assert torch.equal(v, policy.state_dict()[k]), k


def test_sampler_covers_every_task_once_per_epoch_and_is_seeded() -> None:
    tasks = [Path(f"t{i}") for i in range(5)]
    a = TaskSampler(tasks, seed=3)
    drawn = [a.next(2) for _ in range(5)]  # 10 = two epochs
    flat = [t for b in drawn for t in b]
    assert sorted(flat[:5]) == sorted(tasks) and sorted(flat[5:]) == sorted(tasks)

    def draw(seed: int) -> list[Path]:
        sampler = TaskSampler(tasks, seed=seed)
        return [t for _ in range(5) for t in sampler.next(2)]

    assert flat == draw(3)
    assert flat != draw(4)


def test_checkpoint_restores_weights_optimizer_sampler_and_rng(
    model_path: Path, tmp_path: Path
) -> None:
    tasks = [Path(f"t{i}") for i in range(5)]
    policy = Policy(model_path, lr=1e-2)
    sampler = TaskSampler(tasks, seed=1)
    batch = make_batch(samples())

    def train_step(p: Policy) -> None:
        p.step(-(p.logprobs(batch) * batch.mask).sum() / batch.mask.sum())

    train_step(policy)
    sampler.next(3)
    random.seed(11)
    torch.manual_seed(11)
    path = save_checkpoint(tmp_path, 4, policy, sampler, {"note": "x"})
    assert path.name == "step_000004" and latest_checkpoint(tmp_path) == path
    # What the run does next, uninterrupted...
    want_tasks = sampler.next(3)
    want_rand = (random.random(), torch.rand(2).tolist())
    train_step(policy)
    want_weights = policy.state_dict()

    # ... equals what a fresh process does after loading the checkpoint.
    fresh = Policy(model_path, lr=1e-2)
    fresh_sampler = TaskSampler(tasks, seed=1)
    state = load_checkpoint(path, fresh, fresh_sampler)
    assert state["step"] == 4 and state["note"] == "x"
    assert fresh_sampler.next(3) == want_tasks
    assert (random.random(), torch.rand(2).tolist()) == want_rand
    train_step(fresh)  # equal only if AdamW's moments were restored too
    for k, v in fresh.state_dict().items():
        assert torch.allclose(v, want_weights[k], atol=1e-7), k


def test_a_half_written_checkpoint_is_ignored(model_path: Path, tmp_path: Path) -> None:
    policy = Policy(model_path, lr=1e-2)
    sampler = TaskSampler([Path("a")], seed=0)
    good = save_checkpoint(tmp_path, 1, policy, sampler, {})
    # A kill during the next save leaves only the hidden temp folder.
    (tmp_path / "checkpoints" / ".step_000002.tmp").mkdir()
    (tmp_path / "checkpoints" / ".step_000002.tmp" / "model.safetensors").write_bytes(b"x")
    assert latest_checkpoint(tmp_path) == good
    (tmp_path / "checkpoints" / "latest.json").unlink()
    assert latest_checkpoint(tmp_path) == good
