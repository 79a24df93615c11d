"""The update moves the policy the way the rewards say, per task group: a contextual bandit on the
tiny model through ``Trainer.train``.

Two tasks with different prompts; two candidate responses. On task A response X is right, on task
B response Y is. Each step records both responses for both tasks (the current policy's logprobs as
the rollout's, as after an exact weight sync) and trains. The preference for the rewarded response
must grow on both tasks, in opposite directions, so a flipped sign, advantages mixed across groups
or a loss on the wrong positions fails the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from swerl.config.load import parse_config
from swerl.plugins import PluginManager
from swerl.testing import need
from swerl.trajectories import SampleRecord
from swerl_engine_local.loop import Trainer
from swerl_engine_local.policy import Policy, make_batch

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "models" / "tiny-qwen2"
PROMPTS = {"A": [11, 12, 13, 14, 15, 16], "B": [21, 22, 23, 24, 25, 26]}
RESPONSES = {"X": [101, 102, 103, 104], "Y": [201, 202, 203, 204]}
RIGHT = {"A": "X", "B": "Y"}


@pytest.fixture(scope="module")
def pm() -> PluginManager:
    return PluginManager(env={}).load()


def make_trainer(
    pm: PluginManager, tmp_path: Path, monkeypatch, name: str, kl_coef: float = 0.0
) -> Trainer:
    config = {
        "run": {"output_dir": str(tmp_path / "runs")},
        "model": {"path": str(MODEL), "dtype": "float32"},
        "algorithm": {
            "name": name,
            "train_batch_size": 2,
            "n_resp": 4,
            "lr": 1e-3,
            "kl_coef": kl_coef,
        },
        "trainer": {"n_gpus_per_node": 0},
        "tasks": {"path": str(ROOT / "tasks")},
        "scaffold": {"name": "claude-code"},
        "sandbox": {"name": "docker"},
        "engine": {"name": "local"},
    }
    loaded = parse_config(yaml.safe_dump(config), env={}, pm=pm)
    monkeypatch.setenv(loaded.config.proxy.master_key_env, "sk-test")
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(loaded, pm, run_dir)


def record(step: int, task: str, i: int, answer: str, logprobs: list[float]) -> SampleRecord:
    return SampleRecord(
        run_id="r",
        trial_id=f"{step}-{task}-{i}",
        task=task,
        sample_index=i,
        num_samples=1,
        reward=1.0 if RIGHT[task] == answer else 0.0,
        failure_cause=None,
        failure_detail="",
        prompt_ids=PROMPTS[task],
        response_ids=RESPONSES[answer],
        loss_mask=[1] * len(RESPONSES[answer]),
        logprobs=logprobs,
        exactness=1.0,
    )


def logprobs(policy: Policy, task: str, answer: str) -> list[float]:
    probe = record(0, task, 0, answer, [0.0] * len(RESPONSES[answer]))
    with torch.no_grad():
        return policy.logprobs(make_batch([probe]))[0].tolist()


def preference(policy: Policy, task: str) -> float:
    """log p(X | task) - log p(Y | task)."""
    return sum(logprobs(policy, task, "X")) - sum(logprobs(policy, task, "Y"))


def train_bandit(trainer: Trainer, policy: Policy, steps: int = 3) -> list[dict[str, float]]:
    out = []
    for step in range(steps):
        records = [
            record(step, task, i, answer, logprobs(policy, task, answer))
            for task in PROMPTS
            for i, answer in enumerate(["X", "Y", "X", "Y"])
        ]
        metrics = trainer.train(policy, records, step)
        assert metrics["actor/updates"] == 1.0
        assert abs(metrics["rollout_corr/kl"]) < 1e-6  # same weights, same logprobs
        out.append(metrics)
    return out


@pytest.mark.parametrize("algorithm", ["grpo", "gspo"])
def test_each_task_learns_its_own_rewarded_response(pm, tmp_path, monkeypatch, algorithm):
    need((MODEL / "config.json").is_file(), "models/tiny-qwen2 is missing: run `make setup`")
    torch.manual_seed(0)
    trainer = make_trainer(pm, tmp_path, monkeypatch, algorithm)
    policy = Policy(MODEL, lr=1e-3)
    start = {t: preference(policy, t) for t in PROMPTS}
    metrics = train_bandit(trainer, policy)
    assert not any("actor/kl_loss" in m for m in metrics)  # kl_coef 0: no reference, no term
    end = {t: preference(policy, t) for t in PROMPTS}
    # A should come to prefer X (preference up), B to prefer Y (preference down), each by a
    # clear margin: 3 AdamW steps at lr 1e-3 move a random tiny model's log-odds by several nats.
    assert end["A"] - start["A"] > 1.0, (start, end)
    assert start["B"] - end["B"] > 1.0, (start, end)


def test_the_kl_loss_holds_the_policy_near_its_starting_weights(pm, tmp_path, monkeypatch):
    """``algorithm.kl_coef``: verl's k3 KL loss against the starting weights. At the first step
    the policy is the reference (KL 0); afterwards the KL term is positive, and a large
    coefficient keeps the preferences much closer to where they started."""
    need((MODEL / "config.json").is_file(), "models/tiny-qwen2 is missing: run `make setup`")
    moved = {}
    for coef in (0.0, 50.0):
        torch.manual_seed(0)
        trainer = make_trainer(pm, tmp_path / str(coef), monkeypatch, "grpo", kl_coef=coef)
        policy = Policy(MODEL, lr=1e-3, reference=coef > 0)
        start = {t: preference(policy, t) for t in PROMPTS}
        metrics = train_bandit(trainer, policy, steps=4)
        moved[coef] = sum(abs(preference(policy, t) - start[t]) for t in PROMPTS)
        if coef:
            assert metrics[0]["actor/kl_loss"] == 0.0
            assert all(m["actor/kl_loss"] > 0 for m in metrics[1:])
    assert moved[50.0] < 0.5 * moved[0.0], moved
