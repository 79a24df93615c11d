"""Reward filters in the local training loop (``Trainer.train``) on the tiny model.

Without filters the step is exactly what it was before filters existed; an infra-failed trial
changes neither the advantages of its group nor the update; a masked trial stays in the batch
with no loss; is-token's weights reach the loss; a KL alarm with ``pause_on_alarm`` checkpoints
and stops the loop with phase ``paused``.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from swerl.config.load import parse_config
from swerl.filtering import FilterBatch
from swerl.plugins import PluginManager
from swerl.testing import need
from swerl.trajectories import SampleRecord
from swerl_engine_local import algo as A
from swerl_engine_local.loop import Trainer, _advantages, _select
from swerl_engine_local.policy import Policy, make_batch

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "models" / "tiny-qwen2"


@pytest.fixture(scope="module")
def pm() -> PluginManager:
    return PluginManager(env={}).load()


@pytest.fixture(scope="module")
def model() -> Path:
    need((MODEL / "config.json").is_file(), "models/tiny-qwen2 is missing: run `make setup`")
    return MODEL


def trainer(pm, tmp_path: Path, monkeypatch, filters: list[Any], **algorithm: Any) -> Trainer:
    config = {
        "run": {"output_dir": str(tmp_path / "runs")},
        "model": {"path": str(MODEL), "dtype": "float32"},
        "algorithm": {"train_batch_size": 2, "n_resp": 3, "lr": 1e-2, **algorithm},
        "trainer": {"n_gpus_per_node": 0},
        "tasks": {"path": str(ROOT / "tasks")},
        "scaffold": {"name": "claude-code"},
        "sandbox": {"name": "docker"},
        "engine": {"name": "local"},
        "filters": filters,
    }
    loaded = parse_config(yaml.safe_dump(config), env={}, pm=pm)
    monkeypatch.setenv(loaded.config.proxy.master_key_env, "sk-test")
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(loaded, pm, run_dir)


def rec(trial: str, task: str, reward: float | None, cause: str | None = None, *, seed: int,
        length: int = 6) -> SampleRecord:  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    response = torch.randint(5, 4000, (length,), generator=g).tolist()
    return SampleRecord(
        run_id="r",
        trial_id=trial,
        task=task,
        sample_index=0,
        num_samples=1,
        reward=reward,
        failure_cause=cause,
        failure_detail="",
        prompt_ids=torch.randint(5, 4000, (5,), generator=g).tolist(),
        response_ids=response,
        loss_mask=[1, 1, 0, 1, 1, 1][:length],
        logprobs=(-torch.rand(length, generator=g) * 5).tolist(),
        exactness=1.0,
    )


def clean_records() -> list[SampleRecord]:
    return [
        rec("a1", "A", 1.0, seed=1),
        rec("a2", "A", 0.0, seed=2),
        rec("a3", "A", 1.0, seed=3),
        rec("b1", "B", 0.0, seed=4),
        rec("b2", "B", 1.0, seed=5),
        rec("b3", "B", 0.0, seed=6),
        rec("box", "B", None, "sandbox_error", seed=7),  # no reward: never trained on
    ]


def infra() -> SampleRecord:
    """A trial whose model endpoint failed; the verifier still scored what was left: 0."""
    return rec("inf", "A", 0.0, "policy_error", seed=8)


def params(policy: Policy) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in policy.model.named_parameters()}


def trained(t: Trainer, records: list[SampleRecord]) -> tuple[dict[str, float], dict]:
    torch.manual_seed(0)
    policy = Policy(MODEL, lr=t.config.algorithm.lr)
    metrics = t.train(policy, records)
    return metrics, params(policy)


def same_params(a: dict, b: dict, atol: float = 0.0) -> None:
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


# --- the step before filters existed ------------------------------------------------------------


def legacy_train(t: Trainer, policy: Policy, records: list[SampleRecord]) -> dict[str, float]:
    """``Trainer.train`` as it was before reward filters (commit cf35488), verbatim."""
    cfg = t.config.algorithm
    trials: dict[str, SampleRecord] = {}
    for r in records:
        trials.setdefault(r.trial_id, r)
    scored = [t for t in trials.values() if t.reward is not None]
    if not scored:
        return {"train/skipped": 1.0}
    rewards = torch.tensor([float(t.reward or 0.0) for t in scored])
    adv = A.group_advantages(rewards, [t.task for t in scored])
    by_trial = {t.trial_id: float(a) for t, a in zip(scored, adv, strict=True)}
    samples = [r for r in records if r.response_ids and r.trial_id in by_trial]
    if not samples:
        return {"train/skipped": 1.0}
    batch = make_batch(samples)
    advantages = A.token_advantages(
        torch.tensor([by_trial[s.trial_id] for s in samples]), batch.mask
    )
    with torch.no_grad():
        old = policy.logprobs(batch)
    metrics = A.kl_metrics(old, batch.rollout_logprobs, batch.mask)
    gap = (old - batch.rollout_logprobs).abs() * batch.mask
    metrics["rollout_corr/max_abs_diff"] = float(gap.max())
    mini = cfg.ppo_mini_batch_size or cfg.train_batch_size
    per_mini = max(1, round(len(samples) * mini / cfg.train_batch_size))
    losses, norms, extra = [], [], Counter[str]()
    order = list(range(len(samples)))
    for start in range(0, len(order), per_mini):
        idx = torch.tensor(order[start : start + per_mini])
        sub = _select(batch, idx)
        logprob = policy.logprobs(sub)
        loss, m = A.policy_loss(
            logprob,
            old[idx],
            advantages[idx],
            sub.mask,
            kind="gspo" if cfg.name == "gspo" else "ppo",
            clip_low=cfg.clip_ratios[0],
            clip_high=cfg.clip_ratios[1],
            agg=cfg.loss_agg_mode,
        )
        norms.append(policy.step(loss))
        losses.append(float(loss))
        extra.update(m)
    n = len(losses)
    metrics.update({k: v / n for k, v in extra.items()})
    metrics.update(
        {
            "actor/loss": statistics.fmean(losses),
            "actor/grad_norm": statistics.fmean(norms),
            "actor/updates": float(n),
            "train/samples": float(len(samples)),
        }
    )
    return metrics


@pytest.mark.parametrize("algorithm", [{}, {"ppo_mini_batch_size": 1, "name": "gspo"}])
def test_without_filters_the_step_is_exactly_what_it_was(pm, model, tmp_path, monkeypatch,
                                                         algorithm):  # fmt: skip
    t = trainer(pm, tmp_path, monkeypatch, [], **algorithm)
    records = [*clean_records(), infra()]
    got, got_params = trained(t, records)
    torch.manual_seed(0)
    policy = Policy(MODEL, lr=t.config.algorithm.lr)
    want = legacy_train(t, policy, records)
    assert got == want
    same_params(got_params, params(policy))
    assert t.train(policy, [rec("x", "A", None, "sandbox_error", seed=1)]) == {"train/skipped": 1.0}


# --- an infra failure ---------------------------------------------------------------------------


def test_advantages_of_a_group_with_one_infra_failure_are_over_the_rest(pm, tmp_path,
                                                                        monkeypatch):  # fmt: skip
    t = trainer(pm, tmp_path, monkeypatch, ["trajectory"])
    records = [rec("a1", "A", 1.0, seed=1), rec("a2", "A", 0.0, seed=2), infra()]
    batch = FilterBatch.from_records(records)
    t._filters()[0].filter_batch(batch)
    adv = _advantages(batch.live())
    # over a1, a2 only: mean 0.5, unbiased std 1/sqrt(2)
    want = 0.5 / (2**-0.5 + 1e-6)
    assert adv == pytest.approx({"a1": want, "a2": -want}, abs=1e-6)
    # counted as a reward of 0 it would have been: mean 1/3, std 1/sqrt(3)
    counted = _advantages(FilterBatch.from_records(records).live())
    assert counted["a1"] == pytest.approx((2 / 3) / (3**-0.5 + 1e-6), abs=1e-6)


@pytest.mark.parametrize("policy", ["drop", "mask"])
def test_an_infra_failure_changes_neither_the_others_advantages_nor_the_update(
    pm, model, tmp_path, monkeypatch, policy
):
    filters = [{"name": "trajectory", "options": {"infra_failure": policy}}]
    with_filter = trainer(pm, tmp_path, monkeypatch, filters)
    m, after = trained(with_filter, [*clean_records(), infra()])
    assert m["trajectory_filter/infra_failure"] == 2.0  # inf and box
    assert m["trajectory_filter/infra_failed_rate"] == pytest.approx(2 / 8)
    assert m["train/samples"] == (7.0 if policy == "mask" else 6.0)
    # the same step without the failed trial at all
    plain = trainer(pm, tmp_path / "plain", monkeypatch, [])
    m0, want = trained(plain, clean_records())
    same_params(after, want, atol=1e-6)
    for key in ("actor/loss", "actor/grad_norm", "rollout_corr/kl", "rollout_corr/k3_kl"):
        assert m[key] == pytest.approx(m0[key], rel=1e-5, abs=1e-7), key
    # without the filter the failure counts as a reward of 0 and the update differs
    m1, _ = trained(plain, [*clean_records(), infra()])
    assert abs(m1["actor/grad_norm"] - m0["actor/grad_norm"]) > 1e-3


def test_a_masked_trial_stays_in_the_batch_with_a_zero_mask(pm, model, tmp_path, monkeypatch):
    filters = [{"name": "trajectory", "options": {"infra_failure": "mask"}}]
    t = trainer(pm, tmp_path, monkeypatch, filters)
    seen: list[Any] = []
    real = A.policy_loss

    def spy(logprob, old, advantages, mask, **kw):
        seen.append((mask.clone(), advantages.clone(), kw.get("is_weights")))
        return real(logprob, old, advantages, mask, **kw)

    monkeypatch.setattr(A, "policy_loss", spy)
    records = [*clean_records(), infra()]
    trained(t, records)
    ((mask, adv, weights),) = seen
    samples = [r for r in records if r.reward is not None]
    assert mask.shape[0] == len(samples) == 7
    row = [s.trial_id for s in samples].index("inf")
    assert mask[row].sum() == 0 and adv[row].abs().sum() == 0
    assert all(mask[i].sum() == 5 for i in range(7) if i != row)
    assert weights is None  # no stage-2 filter


def test_is_token_weights_reach_the_loss(pm, model, tmp_path, monkeypatch):
    filters = ["trajectory", {"name": "is-token", "options": {"threshold": 1.5}}]
    t = trainer(pm, tmp_path, monkeypatch, filters)
    seen: list[Any] = []
    real = A.policy_loss

    def spy(logprob, old, advantages, mask, **kw):
        seen.append((old.clone(), mask.clone(), kw["is_weights"]))
        return real(logprob, old, advantages, mask, **kw)

    monkeypatch.setattr(A, "policy_loss", spy)
    records = clean_records()
    m, _ = trained(t, records)
    ((old, mask, weights),) = seen
    rollout = make_batch([r for r in records if r.reward is not None]).rollout_logprobs
    want = torch.exp(old - rollout).clamp(max=1.5) * mask
    torch.testing.assert_close(weights, want, atol=1e-6, rtol=0)
    for key in ("rollout_corr/rollout_is_mean", "rollout_corr/rollout_is_eff_sample_size",
                "trajectory_filter/invalid_ratio", "is_token/kl_alarm"):  # fmt: skip
        assert key in m, key
    assert m["rollout_corr/kl"] == pytest.approx(
        A.kl_metrics(old, rollout, mask)["rollout_corr/kl"]
    )


# --- the KL alarm pauses the run ----------------------------------------------------------------


def test_kl_alarm_with_pause_checkpoints_and_stops(pm, model, tmp_path, monkeypatch):
    filters = [{"name": "is-token", "options": {"kl_alarm_steps": 2, "pause_on_alarm": True}}]
    t = trainer(pm, tmp_path, monkeypatch, filters, total_steps=5, save_freq=0)
    steps: list[int] = []

    def rollout(step: int, tasks: list[Path]) -> list[SampleRecord]:
        steps.append(step)
        # rollout logprobs far from the model's: rollout_corr/kl is large every step
        return clean_records()

    monkeypatch.setattr(t, "rollout", rollout)
    monkeypatch.setattr(t, "_sync", lambda policy: {})
    t.run()
    assert steps == [0, 1]
    status = json.loads((t.run_dir / "status.json").read_text())
    assert status["phase"] == "paused" and status["step"] == 1
    assert "KL ALARM" in status["message"] and "swerl run --resume" in status["message"]
    assert (t.run_dir / "checkpoints/step_000001/state.json").is_file()
    assert not (t.run_dir / "checkpoints/step_000000").exists()  # save_freq 0
    rows = [json.loads(x) for x in (t.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["is_token/kl_alarm"] for r in rows] == [0.0, 1.0]
