"""The local engine's RL math: hand-computed cases, and agreement with verl 0.9.1's own functions
(``verl.trainer.ppo.core_algos`` and ``rollout_corr_helper``) on random ragged batches."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from swerl_engine_local.algo import (
    AGG_MODES,
    POLICY_LOSS_KINDS,
    agg_loss,
    group_advantages,
    kl_metrics,
    kl_penalty,
    policy_loss,
    token_advantages,
)

TOL = 1e-6
CLIP_LOW, CLIP_HIGH, CLIP_C = 0.2, 0.28, 3.0
PG_METRICS = ("actor/pg_clipfrac", "actor/ppo_kl", "actor/pg_clipfrac_lower")
KL_METRICS = ("rollout_corr/kl", "rollout_corr/k3_kl")


def close(a: Any, b: Any, atol: float = TOL) -> None:
    """|a - b| <= atol elementwise (tensors, floats or nested lists)."""
    torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b), atol=atol, rtol=0)


# --- hand-computed cases ------------------------------------------------------------------------


def test_two_member_group_gets_plus_minus_one_over_sqrt2():
    adv = group_advantages(torch.tensor([1.0, 0.0]), ["g", "g"])
    # unbiased std of [1, 0] is 1/sqrt(2); (1 - 0.5) / (1/sqrt(2) + 1e-6)
    expected = 0.5 / (1 / math.sqrt(2) + 1e-6)
    close(adv, torch.tensor([expected, -expected]))
    close(adv, torch.tensor([1 / math.sqrt(2), -1 / math.sqrt(2)]), atol=1e-5)


def test_without_std_normalisation_advantage_is_reward_minus_group_mean():
    adv = group_advantages(
        torch.tensor([1.0, 0.0, 0.0, 3.0]), ["a", "a", "b", "b"], norm_by_std=False
    )
    close(adv, torch.tensor([0.5, -0.5, -1.5, 1.5]))


def test_singleton_group_keeps_its_reward_and_equal_group_gets_zero():
    rewards = torch.tensor([0.7, 1.0, 1.0, 1.0])
    adv = group_advantages(rewards, ["alone", "same", "same", "same"])
    close(adv, torch.tensor([0.7 / (1 + 1e-6), 0.0, 0.0, 0.0]))
    close(group_advantages(rewards, ["alone", "same", "same", "same"], norm_by_std=False)[0], 0.7)


def test_token_advantages_spread_over_valid_tokens_only():
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    close(token_advantages(torch.tensor([2.0, -1.0]), mask), [[2.0, 2.0, 0.0], [-1.0, 0.0, 0.0]])


def test_group_advantages_reject_mismatched_ids():
    with pytest.raises(ValueError, match="group ids"):
        group_advantages(torch.tensor([1.0, 0.0]), ["g"])


def test_agg_modes_by_hand():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0], [7.0, 7.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # row 3 is empty
    close(agg_loss(loss, mask, "token-mean"), 10 / 4)
    close(agg_loss(loss, mask, "seq-mean-token-sum"), (6 + 4) / 2)
    close(agg_loss(loss, mask, "seq-mean-token-mean"), (2 + 4) / 2)
    # a micro-batch's share of a larger mini-batch
    close(agg_loss(loss, mask, "token-mean", num_tokens=20), 10 / 20)
    close(agg_loss(loss, mask, "seq-mean-token-mean", num_seqs=6), (2 + 4) / 6)
    # nothing to count: 0, not NaN
    for mode in AGG_MODES:
        close(agg_loss(loss, torch.zeros_like(mask), mode), 0.0)
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        agg_loss(loss, mask, "token-sum")


def one_token(log_ratio: float, adv: float, kind: Any = "ppo") -> tuple[torch.Tensor, dict]:
    old = torch.tensor([[-1.0]])
    return policy_loss(
        old + log_ratio,
        old,
        torch.tensor([[adv]]),
        torch.ones(1, 1),
        kind=kind,
        clip_low=0.2,
        clip_high=0.2,
        clip_c=3.0,
    )


def test_ppo_clip_cases_by_hand():
    # A > 0, ratio 1.5 above 1 + 0.2: clipped to -1.2
    loss, m = one_token(math.log(1.5), 1.0)
    close(loss, -1.2)
    assert m["actor/pg_clipfrac"] == 1.0 and m["actor/pg_clipfrac_lower"] == 0.0
    close(m["actor/ppo_kl"], -math.log(1.5))
    # A > 0, ratio 1.1 inside the band: -1.1, not clipped
    loss, m = one_token(math.log(1.1), 1.0)
    close(loss, -1.1)
    assert m["actor/pg_clipfrac"] == 0.0
    # A < 0, ratio 0.5 below 1 - 0.2: the pessimistic term is the clipped 0.8
    loss, m = one_token(math.log(0.5), -1.0)
    close(loss, 0.8)
    assert m["actor/pg_clipfrac"] == 1.0 and m["actor/pg_clipfrac_lower"] == 0.0
    # A < 0, ratio 5: unclipped 5 is the max, then dual clip caps it at clip_c * |A| = 3
    loss, m = one_token(math.log(5.0), -1.0)
    close(loss, 3.0)
    assert m["actor/pg_clipfrac"] == 0.0 and m["actor/pg_clipfrac_lower"] == 1.0


def test_ppo_gradient_vanishes_where_clipped():
    old = torch.tensor([[-1.0, -1.0]])
    logprob = (old + torch.tensor([[math.log(1.5), math.log(1.1)]])).requires_grad_()
    loss, _ = policy_loss(
        logprob, old, torch.ones(1, 2), torch.ones(1, 2), kind="ppo", clip_low=0.2, clip_high=0.2
    )
    loss.backward()
    assert logprob.grad is not None
    close(logprob.grad, [[0.0, -1.1 / 2]])  # d(-A r)/dlogprob = -A r, token-mean over 2


def test_gspo_uses_the_sequence_geometric_mean_ratio():
    old = torch.tensor([[-1.0, -2.0, -3.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    logprob = (old + torch.tensor([[0.2, 0.0, 5.0]])).requires_grad_()  # padding ignored
    adv = torch.ones(1, 3)
    loss, m = policy_loss(
        logprob, old, adv, mask, kind="gspo", clip_low=0.2, clip_high=0.2, agg="token-mean"
    )
    s = math.exp(0.1)  # inside [0.8, 1.2]
    close(loss, -s)
    assert m["actor/pg_clipfrac"] == 0.0 and m["actor/pg_clipfrac_lower"] == 0.0
    close(m["actor/ppo_kl"], -0.1)
    loss.backward()
    assert logprob.grad is not None
    close(logprob.grad, [[-s / 2, -s / 2, 0.0]])  # each token's own logprob carries s
    # a tighter band clips s = exp(0.1) to 1.05 (and no gradient flows)
    loss, m = policy_loss(
        logprob.detach(), old, adv, mask, kind="gspo", clip_low=0.05, clip_high=0.05
    )
    close(loss, -1.05)
    assert m["actor/pg_clipfrac"] == 1.0


def test_is_weights_scale_the_per_token_loss():
    old = torch.tensor([[-1.0, -1.0]])
    args = (old + 0.05, old, torch.ones(1, 2), torch.ones(1, 2))
    base, _ = policy_loss(*args, kind="ppo", clip_low=0.2, clip_high=0.2)
    w = torch.tensor([[2.0, 0.0]])
    weighted, _ = policy_loss(*args, kind="ppo", clip_low=0.2, clip_high=0.2, is_weights=w)
    close(weighted, base)  # 2 * x + 0 * x over 2 tokens equals the unweighted mean


def test_padding_values_never_leak_in():
    old = torch.tensor([[-1.0, float("nan")], [-0.5, float("inf")]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    adv = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    kind: Any
    for kind in POLICY_LOSS_KINDS:
        for agg in AGG_MODES:
            logprob = (old + 0.1).requires_grad_()
            loss, m = policy_loss(
                logprob, old, adv, mask, kind=kind, clip_low=0.2, clip_high=0.2, agg=agg
            )
            loss.backward()
            assert logprob.grad is not None
            assert torch.isfinite(loss), (kind, agg)
            assert all(math.isfinite(v) for v in m.values()), (kind, agg, m)
            assert torch.isfinite(logprob.grad).all(), (kind, agg)
    assert all(math.isfinite(v) for v in kl_metrics(old, old + 0.1, mask).values())


def test_policy_loss_rejects_bad_arguments():
    x = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="clip_c"):
        policy_loss(x, x, x, x + 1, kind="ppo", clip_low=0.2, clip_high=0.2, clip_c=1.0)
    unknown: Any = "grpo"
    with pytest.raises(ValueError, match="unknown policy loss"):
        policy_loss(x, x, x, x + 1, kind=unknown, clip_low=0.2, clip_high=0.2)


def test_kl_metrics_by_hand():
    logprob = torch.tensor([[-1.0, -2.0, -9.0]])
    rollout = torch.tensor([[-1.5, -2.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    m = kl_metrics(logprob, rollout, mask)
    close(m["rollout_corr/kl"], (-0.5 + 0.0) / 2)
    close(m["rollout_corr/k3_kl"], (math.exp(0.5) - 0.5 - 1) / 2)


# --- agreement with verl ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def verl() -> SimpleNamespace:
    """verl 0.9.1's functions, imported once (the import takes ~15-25 s). verl is in the dev and
    CI environment, so a failed import is an error here, not a skip."""
    from verl.trainer.ppo import core_algos, rollout_corr_helper
    from verl.workers.config import ActorConfig

    return SimpleNamespace(core_algos=core_algos, rch=rollout_corr_helper, ActorConfig=ActorConfig)


# group sizes: 4 random, 3 all-equal, 1 singleton, 2 binary, 5 random (one with an empty response)
GROUPS = {"a": 4, "same": 3, "alone": 1, "pair": 2, "e": 5}
LENGTH = 12


def random_batch(seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    ids = [gid for gid, n in GROUPS.items() for _ in range(n)]
    batch = len(ids)
    rewards = torch.rand(batch, generator=g)
    rewards[[i for i, gid in enumerate(ids) if gid == "same"]] = 1.0
    pair = [i for i, gid in enumerate(ids) if gid == "pair"]
    rewards[pair] = torch.tensor([1.0, 0.0])
    lengths = torch.randint(1, LENGTH + 1, (batch,), generator=g)
    lengths[-1] = 0  # a fully masked response
    mask = (torch.arange(LENGTH).unsqueeze(0) < lengths.unsqueeze(1)).float()
    old = -3 * torch.rand(batch, LENGTH, generator=g)
    drift = 0.3 * torch.randn(batch, LENGTH, generator=g)
    # a few big moves so that the dual clip (ratio > clip_c with A < 0) fires too
    big = torch.rand(batch, LENGTH, generator=g) < 0.1
    drift = torch.where(big, 1.5 + torch.rand(batch, LENGTH, generator=g), drift)
    rollout = old + 0.2 * torch.randn(batch, LENGTH, generator=g)
    is_weights = 0.5 + torch.rand(batch, LENGTH, generator=g)
    return {
        "ids": ids,
        "rewards": rewards,
        "mask": mask,
        "old": old,
        "logprob": old + drift,
        "rollout": rollout,
        "is_weights": is_weights,
    }


SEEDS = (0, 1, 2)


@pytest.mark.slow
@pytest.mark.parametrize("norm_by_std", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_advantages_match_verl_grpo(verl, seed, norm_by_std):
    b = random_batch(seed)
    mask = b["mask"]
    # verl takes token-level rewards and sums them: put each reward on the last valid token
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    token_rewards = torch.zeros_like(mask)
    token_rewards[torch.arange(len(last)), last] = b["rewards"]
    want, returns = verl.core_algos.compute_grpo_outcome_advantage(
        token_level_rewards=token_rewards,
        response_mask=mask,
        index=np.array(b["ids"], dtype=object),
        norm_adv_by_std_in_grpo=norm_by_std,
    )
    adv = group_advantages(b["rewards"], b["ids"], norm_by_std=norm_by_std)
    close(token_advantages(adv, mask), want)
    close(returns, want)
    # the per-sample values too, on the rows that have a token to carry them
    rows = mask.sum(-1) > 0
    close(adv[rows], want[rows, 0])


def verl_actor_config(verl, agg: str, global_info: dict[str, Any] | None) -> Any:
    cfg = verl.ActorConfig(
        strategy="fsdp",
        rollout_n=1,
        ppo_micro_batch_size_per_gpu=1,
        clip_ratio_low=CLIP_LOW,
        clip_ratio_high=CLIP_HIGH,
        clip_ratio_c=CLIP_C,
        loss_agg_mode=agg,
    )
    cfg.global_batch_info.update(global_info or {})
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("global_norm", [False, True], ids=["local-norm", "minibatch-norm"])
@pytest.mark.parametrize("with_is", [False, True], ids=["no-is", "is"])
@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize("kind", ["ppo", "gspo"])
@pytest.mark.parametrize("seed", SEEDS)
def test_policy_loss_matches_verl(verl, seed, kind, agg, with_is, global_norm):
    b = random_batch(seed)
    mask = b["mask"]
    adv = token_advantages(group_advantages(b["rewards"], b["ids"]), mask)
    is_weights = b["is_weights"] if with_is else None
    # as a micro-batch of a mini-batch twice its size (verl's dp_size=1 global batch info)
    num_tokens = int(mask.sum()) * 2 if global_norm else None
    num_seqs = len(b["ids"]) * 2 if global_norm else None
    info = (
        {"dp_size": 1, "batch_num_tokens": num_tokens, "global_batch_size": num_seqs}
        if global_norm
        else None
    )
    verl_fn = {
        "ppo": verl.core_algos.compute_policy_loss_vanilla,
        "gspo": verl.core_algos.compute_policy_loss_gspo,
    }[kind]

    theirs_lp = b["logprob"].clone().requires_grad_()
    want, want_m = verl_fn(
        old_log_prob=b["old"],
        log_prob=theirs_lp,
        advantages=adv,
        response_mask=mask.bool(),  # verl's ppo_loss hands the mask over as bool
        loss_agg_mode=agg,
        config=verl_actor_config(verl, agg, info),
        rollout_is_weights=is_weights,
    )
    want.backward()

    ours_lp = b["logprob"].clone().requires_grad_()
    got, got_m = policy_loss(
        ours_lp,
        b["old"],
        adv,
        mask,
        kind=kind,
        clip_low=CLIP_LOW,
        clip_high=CLIP_HIGH,
        clip_c=CLIP_C,
        agg=agg,
        is_weights=is_weights,
        num_tokens=num_tokens,
        num_seqs=num_seqs,
    )
    got.backward()

    close(got, want)
    assert ours_lp.grad is not None and theirs_lp.grad is not None
    close(ours_lp.grad, theirs_lp.grad)
    assert set(got_m) == set(PG_METRICS) <= set(want_m)
    for key in PG_METRICS:
        close(got_m[key], want_m[key])
    if kind == "ppo" and seed == 0 and not with_is:
        # the random batch does exercise both clips
        assert got_m["actor/pg_clipfrac"] > 0 and got_m["actor/pg_clipfrac_lower"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_kl_metrics_match_verl_rollout_corr(verl, seed):
    b = random_batch(seed)
    want = verl.rch.compute_rollout_corr_metrics_from_logprobs(
        log_prob=b["logprob"], rollout_log_prob=b["rollout"], response_mask=b["mask"]
    )
    got = kl_metrics(b["logprob"], b["rollout"], b["mask"])
    assert set(got) == set(KL_METRICS)
    for key in KL_METRICS:
        close(got[key], want[key])


def test_kl_penalty_by_hand():
    lp = torch.tensor([-1.0, -2.0, -0.5, -30.0])
    ref = torch.tensor([-1.0, -1.0, -1.5, -0.5])
    # d = ref - lp = 0, 1, -1, 29.5 (clamped to 20); k3 = exp(d) - d - 1, capped at 10
    k3 = [0.0, math.e - 2.0, math.exp(-1.0), 10.0]
    close(kl_penalty(lp, ref), k3)
    close(kl_penalty(lp, ref, "k1"), lp - ref)
    close(kl_penalty(lp, ref, "k2"), 0.5 * (lp - ref) ** 2)
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_penalty(lp, ref, "full")


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["low_var_kl", "k1", "k2"])
def test_kl_penalty_matches_verl(verl, seed, kind):
    b = random_batch(seed)
    g = torch.Generator().manual_seed(seed)
    ref = b["old"] + 2.0 * torch.randn(b["old"].shape, generator=g)
    close(kl_penalty(b["logprob"], ref, kind), verl.core_algos.kl_penalty(b["logprob"], ref, kind))
