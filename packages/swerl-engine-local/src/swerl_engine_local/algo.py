"""The RL math of the local engine's training loop, in plain torch.

Every definition here is meant to equal its counterpart in verl 0.9.1
(``verl.trainer.ppo.core_algos`` and ``verl.trainer.ppo.rollout_corr_helper``), so that a run
on the local engine reports and optimises the same quantities as one on a verl engine. The
tests (``tests/test_algo.py``) compare each function against verl's own on random batches.

Conventions: per-token tensors have shape ``[batch, resp_len]`` (float32); ``mask`` is 1 (or
``True``) on the response tokens that count and 0 on padding and on tokens the policy did not
generate. Values under a 0 in the mask never reach a result, even when they are NaN or inf.

Two places where this module knowingly differs from verl, only in degenerate inputs:

* ``agg_loss`` with no valid token (or no valid sequence) returns 0, where verl divides 0 by 0
  and returns NaN.
* ``policy_loss`` raises ``ValueError`` for ``clip_c <= 1`` where verl asserts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch
from torch import Tensor

AggMode = Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"]
PolicyLossKind = Literal["ppo", "gspo"]

AGG_MODES: tuple[str, ...] = get_args(AggMode)
POLICY_LOSS_KINDS: tuple[str, ...] = get_args(PolicyLossKind)

# verl clamps the per-token log-ratio of the PPO loss to this range before exp().
_PPO_LOG_RATIO_BOUND = 20.0
# verl clamps the GSPO log sequence ratio from above at this value before exp().
_GSPO_LOG_RATIO_MAX = 10.0


# ---------------------------------------------------------------------------------------------
# masked reductions


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``values`` where ``mask`` is non-zero (over all elements, or along ``dim``).

    Values outside the mask are replaced by 0 first, so NaN or inf there cannot leak in.
    """
    kept = torch.where(mask.bool(), values, torch.zeros_like(values)) * mask
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` where ``mask`` is non-zero; 0 when the mask is empty.

    The denominator is ``mask.sum() + 1e-8``, as in verl's ``masked_mean``.
    """
    count = mask.sum() if dim is None else mask.sum(dim=dim)
    return masked_sum(values, mask, dim) / (count + 1e-8)


# ---------------------------------------------------------------------------------------------
# advantages


def group_advantages(
    rewards: Tensor,
    group_ids: Sequence[str],
    *,
    norm_by_std: bool = True,
    eps: float = 1e-6,
) -> Tensor:
    """GRPO outcome advantage of each sample: its reward against its group's.

    ``rewards`` is ``[batch]`` (one scalar per sample) and ``group_ids[i]`` names the group
    (the prompt) of sample ``i``. With ``norm_by_std`` the advantage is
    ``(r - mean_g) / (std_g + eps)``, else ``r - mean_g`` (Dr. GRPO). ``std_g`` is torch's
    unbiased (n - 1) standard deviation, like verl's ``compute_grpo_outcome_advantage``.

    As in verl, a group with a single sample gets mean 0 and std 1: its advantage is its raw
    reward (divided by ``1 + eps``), not 0. A group whose rewards are all equal gets 0.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-d [batch], got shape {tuple(rewards.shape)}")
    if len(group_ids) != rewards.shape[0]:
        raise ValueError(f"{len(group_ids)} group ids for {rewards.shape[0]} rewards")
    members: dict[str, list[int]] = {}
    for i, gid in enumerate(group_ids):
        members.setdefault(gid, []).append(i)
    with torch.no_grad():
        mean = torch.zeros_like(rewards)
        std = torch.ones_like(rewards)
        for idx in members.values():
            if len(idx) < 2:
                continue
            sel = torch.tensor(idx, dtype=torch.long, device=rewards.device)
            group = rewards[sel]
            mean[sel] = group.mean()
            std[sel] = group.std()
        if norm_by_std:
            return (rewards - mean) / (std + eps)
        return rewards - mean


def token_advantages(adv: Tensor, mask: Tensor) -> Tensor:
    """Spread per-sample advantages ``[batch]`` over the response tokens: ``[batch, len]``.

    Each valid token carries its sample's advantage and every masked token 0, which is what
    verl's ``compute_grpo_outcome_advantage`` returns (``scores.unsqueeze(-1) * mask``).
    """
    return adv.unsqueeze(-1) * mask


# ---------------------------------------------------------------------------------------------
# loss aggregation


def agg_loss(
    loss_mat: Tensor,
    mask: Tensor,
    mode: str = "token-mean",
    *,
    num_tokens: float | Tensor | None = None,
    num_seqs: float | Tensor | None = None,
) -> Tensor:
    """Reduce a per-token loss ``[batch, len]`` to a scalar, like verl's ``agg_loss``.

    Modes:

    * ``"token-mean"``: sum of the valid tokens' losses / number of valid tokens.
    * ``"seq-mean-token-sum"``: each sequence's summed loss, averaged over the sequences.
    * ``"seq-mean-token-mean"``: each sequence's mean loss, averaged over the sequences.

    The sequence means count only sequences with at least one valid token. By default the
    normaliser (tokens or sequences) is this batch's own. For gradient accumulation over
    micro-batches pass the whole mini-batch's ``num_tokens`` (token-mean) or ``num_seqs``
    (seq modes): each micro-batch's loss is then its share, and the summed gradient equals one
    computed on the whole mini-batch. This is verl's single-process semantics (``dp_size=1``
    with ``batch_num_tokens`` and ``global_batch_size``); with data parallelism verl also
    multiplies by ``dp_size`` to cancel the gradient all-reduce's average, which one process
    has no use for. Note that verl's trainer passes ``global_batch_size = ppo_mini_batch_size *
    rollout.n``, which also counts fully masked sequences, whereas the default here does not.

    A batch with nothing to count (no valid token, or no valid sequence) gives 0, not NaN.
    """
    if mode == "token-mean":
        total = masked_sum(loss_mat, mask)
        denom = mask.sum().clamp(min=1) if num_tokens is None else num_tokens
        return total / denom
    if mode in ("seq-mean-token-sum", "seq-mean-token-mean"):
        tokens_per_seq = mask.sum(dim=-1)
        seq_losses = masked_sum(loss_mat, mask, dim=-1)
        if mode == "seq-mean-token-mean":
            seq_losses = seq_losses / (tokens_per_seq + 1e-8)
        seq_valid = (tokens_per_seq > 0).to(loss_mat.dtype)
        denom = seq_valid.sum().clamp(min=1) if num_seqs is None else num_seqs
        return masked_sum(seq_losses, seq_valid) / denom
    raise ValueError(f"unknown loss aggregation mode {mode!r}; expected one of {AGG_MODES}")


# ---------------------------------------------------------------------------------------------
# policy losses


def policy_loss(
    logprob: Tensor,
    old_logprob: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    kind: PolicyLossKind,
    clip_low: float,
    clip_high: float,
    clip_c: float = 3.0,
    agg: str = "token-mean",
    is_weights: Tensor | None = None,
    num_tokens: float | Tensor | None = None,
    num_seqs: float | Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The clipped policy-gradient loss and its metrics.

    ``logprob`` is the current policy's (with grad), ``old_logprob`` the policy that the
    advantages were computed for, ``advantages`` per token ``[batch, len]``.

    * ``kind="ppo"``: verl's ``compute_policy_loss_vanilla``. Per token the ratio
      ``r = exp(clamp(logprob - old_logprob, -20, 20))`` and the loss
      ``max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))``; for ``A < 0`` this is further
      capped at ``-A clip_c`` (dual-clip PPO, ``clip_c > 1``).
    * ``kind="gspo"``: verl's ``compute_policy_loss_gspo``. The ratio is the sequence's
      geometric mean ``s = exp(mean_t(logprob - old_logprob))`` over its valid tokens, taken
      as a constant and carried per token as ``s * exp(logprob - stopgrad(logprob))`` (so
      the value is ``s`` and the gradient of a token's term flows through its own
      ``logprob``), its log clamped above at 10; the loss is
      ``max(-A s, -A clip(s, 1 - clip_low, 1 + clip_high))``, no dual clip.

    ``is_weights`` (rollout-correction importance weights, ``[batch, len]``) multiply the
    per-token loss before aggregation, as verl's ``rollout_is_weights`` do. ``agg``,
    ``num_tokens`` and ``num_seqs`` go to :func:`agg_loss`.

    Metrics (verl's names, means over the valid tokens):

    * ``actor/pg_clipfrac``: share of tokens where the clipped term was the larger one.
    * ``actor/ppo_kl``: mean of ``old_logprob - logprob`` (for ppo with the log-ratio clamped
      to ±20 as in the loss; for gspo unclamped, as verl does).
    * ``actor/pg_clipfrac_lower``: ppo: share of ``A < 0`` tokens capped by ``clip_c``;
      gspo: always 0.
    """
    if kind not in POLICY_LOSS_KINDS:
        raise ValueError(f"unknown policy loss {kind!r}; expected one of {POLICY_LOSS_KINDS}")
    log_ratio = logprob - old_logprob
    if kind == "ppo":
        if clip_c <= 1.0:
            raise ValueError(f"clip_c (dual-clip PPO's bound) must be > 1, got {clip_c}")
        log_ratio = log_ratio.clamp(-_PPO_LOG_RATIO_BOUND, _PPO_LOG_RATIO_BOUND)
        ratio = torch.exp(log_ratio)
        unclipped = -advantages * ratio
        clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
        pessimistic = torch.maximum(unclipped, clipped)
        cap = -advantages * clip_c
        losses = torch.where(advantages < 0, torch.minimum(cap, pessimistic), pessimistic)
        lower = (pessimistic > cap).float() * (advantages < 0).float()
        clipfrac_lower = masked_mean(lower, mask)
    else:
        seq_len = mask.sum(dim=-1).clamp(min=1)
        seq_log_ratio = masked_sum(log_ratio, mask, dim=-1) / seq_len
        tok_log_ratio = logprob - logprob.detach() + seq_log_ratio.detach().unsqueeze(-1)
        ratio = torch.exp(tok_log_ratio.clamp(max=_GSPO_LOG_RATIO_MAX))
        unclipped = -advantages * ratio
        clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
        losses = torch.maximum(unclipped, clipped)
        clipfrac_lower = torch.zeros((), device=logprob.device)
    clipfrac = masked_mean((clipped > unclipped).float(), mask)
    ppo_kl = masked_mean(-log_ratio, mask)

    if is_weights is not None:
        losses = losses * is_weights
    loss = agg_loss(losses, mask, agg, num_tokens=num_tokens, num_seqs=num_seqs)
    metrics = {
        "actor/pg_clipfrac": clipfrac.detach().item(),
        "actor/ppo_kl": ppo_kl.detach().item(),
        "actor/pg_clipfrac_lower": clipfrac_lower.detach().item(),
    }
    return loss, metrics


def kl_penalty(logprob: Tensor, ref_logprob: Tensor, kind: str = "low_var_kl") -> Tensor:
    """Per-token KL estimate of the policy against the reference, verl's ``kl_penalty``
    (forward value; J. Schulman's estimators):

    * ``"k1"`` / ``"kl"``: ``logprob - ref``;
    * ``"k2"`` / ``"mse"``: ``(logprob - ref)^2 / 2``;
    * ``"k3"`` / ``"low_var_kl"`` (verl's ``kl_loss_type`` default): with
      ``d = clamp(ref - logprob, -20, 20)``, ``exp(d) - d - 1`` clamped to ``[-10, 10]``.
    """
    if kind in ("kl", "k1"):
        return logprob - ref_logprob
    if kind in ("mse", "k2"):
        return 0.5 * (logprob - ref_logprob).square()
    if kind in ("low_var_kl", "k3"):
        d = torch.clamp(ref_logprob - logprob, min=-20, max=20)
        return torch.clamp(torch.exp(d) - d - 1, min=-10, max=10)
    raise ValueError(f"unknown KL estimator {kind!r}; expected k1, k2 or k3 (low_var_kl)")


# ---------------------------------------------------------------------------------------------
# rollout/training mismatch


def kl_metrics(logprob: Tensor, rollout_logprob: Tensor, mask: Tensor) -> dict[str, float]:
    """How far the rollout engine's log-probs are from the trainer's, over the valid tokens.

    Same definitions and names as verl's ``compute_rollout_corr_metrics_from_logprobs``
    (``logprob`` is the trainer's, ``rollout_logprob`` the inference engine's):

    * ``rollout_corr/kl``: mean of ``rollout_logprob - logprob`` (k1 estimate of
      KL(rollout || trainer) from rollout samples; can be negative).
    * ``rollout_corr/k3_kl``: mean of ``exp(d) - d - 1`` with ``d = logprob - rollout_logprob``
      (k3 estimate of the same KL; never negative).
    """
    with torch.no_grad():
        kl = masked_mean(rollout_logprob - logprob, mask)
        d = logprob - rollout_logprob
        k3 = masked_mean(torch.exp(d) - d - 1, mask)
    return {"rollout_corr/kl": kl.item(), "rollout_corr/k3_kl": k3.item()}
