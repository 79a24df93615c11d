"""Truncated importance-sampling weights, rejection masks and mismatch metrics, in plain torch.

The same math as verl 0.9.1's ``verl.trainer.ppo.rollout_corr_helper`` (decoupled mode,
``rollout_is_batch_normalize=False``), with verl's metric names, so that a local run and a verl
run report the same numbers for the same tensors (``tests/test_is_token.py`` compares them).
Inputs are ``[batch, resp_len]``: ``old`` the trainer's logprobs, ``rollout`` the inference
engine's, ``mask`` 1 on the tokens that count.

* weight: token level ``min(exp(clamp(old - rollout, ±20)), C)``; sequence level
  ``min(exp(clamp(Σ_t (old - rollout), ±20)), C)`` on every token of the sequence; 0 where the
  mask is 0; detached.
* rejection (optional): a token (token level) or a whole sequence (sequence level, on the
  geometric mean of its ratios) whose ratio ``exp(old - rollout)`` is outside ``[lo, hi]`` leaves
  the mask. verl computes this with its k1 statistic ``rollout - old`` and the band ``[1/hi,
  1/lo]``; so does this module, to agree with it at the boundaries too.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

#: verl clamps log-ratios to ±20 before exp().
SAFETY_BOUND = 20.0
PREFIX = "rollout_corr/"


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    import torch

    kept = torch.where(mask.bool(), values, torch.zeros_like(values)) * mask
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    count = mask.sum() if dim is None else mask.sum(dim=dim)
    return masked_sum(values, mask, dim) / (count + 1e-8)


def is_weights(
    old: Tensor, rollout: Tensor, mask: Tensor, *, level: str, threshold: float
) -> tuple[Tensor, dict[str, float]]:
    """Truncated IS weights ``[batch, len]`` (detached) and verl's ``rollout_is_*`` metrics."""
    import torch

    log_ratio = old - rollout
    if level == "token":
        for_metrics = log_ratio
        raw = torch.exp(log_ratio.clamp(-SAFETY_BOUND, SAFETY_BOUND))
    elif level == "sequence":
        for_metrics = masked_sum(log_ratio, mask, dim=-1).unsqueeze(-1)
        raw = torch.exp(for_metrics.clamp(-SAFETY_BOUND, SAFETY_BOUND)).expand_as(log_ratio)
    else:
        raise ValueError(f"level must be 'token' or 'sequence', got {level!r}")
    raw = raw * mask
    weights = raw.clamp(max=threshold)
    metrics = _is_metrics(weights, raw, for_metrics, mask, level=level, threshold=threshold)
    return weights.detach(), metrics


def _is_metrics(
    weights: Tensor, raw: Tensor, for_metrics: Tensor, mask: Tensor, *, level: str, threshold: float
) -> dict[str, float]:
    import torch

    lower = 1.0 / threshold
    m: dict[str, float] = {}
    if level == "sequence":
        log_hi = torch.log(torch.tensor(threshold))
        log_lo = torch.log(torch.tensor(lower))
        m["rollout_is_max"] = torch.exp(for_metrics.max().clamp(max=SAFETY_BOUND)).item()
        m["rollout_is_min"] = torch.exp(for_metrics.min()).item()
        m["rollout_is_mean"] = masked_mean(weights, mask).item()
        m["rollout_is_ratio_fraction_high"] = (for_metrics > log_hi).float().mean().item()
        m["rollout_is_ratio_fraction_low"] = (for_metrics < log_lo).float().mean().item()
    else:
        m["rollout_is_mean"] = masked_mean(weights, mask).item()
        m["rollout_is_ratio_fraction_high"] = masked_mean((raw > threshold).float(), mask).item()
        m["rollout_is_ratio_fraction_low"] = masked_mean((raw < lower).float(), mask).item()
        valid = mask.bool()
        m["rollout_is_max"] = weights.masked_fill(~valid, float("-inf")).max().item()
        m["rollout_is_min"] = weights.masked_fill(~valid, float("inf")).min().item()
    clamped = weights.clamp(min=0.0, max=threshold)
    mean = masked_mean(clamped, mask)
    if mask.sum() > 1:
        var = masked_mean(clamped.square(), mask) - mean.square()
        m["rollout_is_std"] = torch.sqrt(var.clamp(min=0.0)).item()
    else:
        m["rollout_is_std"] = 0.0
    normalized = clamped / (mean + 1e-8)
    m["rollout_is_eff_sample_size"] = 1.0 / masked_mean(normalized.square(), mask).item()
    seq = masked_mean(weights, mask, dim=-1)
    m["rollout_is_seq_mean"] = seq.mean().item()
    m["rollout_is_seq_std"] = seq.std().item() if seq.numel() > 1 else 0.0
    m["rollout_is_seq_max"] = seq.max().item()
    m["rollout_is_seq_min"] = seq.min().item()
    m["rollout_is_seq_max_deviation"] = (seq - 1.0).abs().max().item()
    raw_seq = masked_mean(raw, mask, dim=-1)
    m["rollout_is_seq_fraction_high"] = (raw_seq > threshold).float().mean().item()
    m["rollout_is_seq_fraction_low"] = (raw_seq < lower).float().mean().item()
    return m


def rejection_mask(
    old: Tensor, rollout: Tensor, mask: Tensor, *, level: str, band: tuple[float, float]
) -> tuple[Tensor, dict[str, float]]:
    """``mask`` with the tokens (or sequences) whose ratio is outside ``band`` set to 0, and
    verl's ``rollout_rs_*`` masked fractions (option ``token_k1`` or ``seq_mean_k1``)."""
    lo, hi = band
    # verl's k1 statistic and band: rollout - old within [log(1/hi), log(1/lo)].
    k1 = -(old - rollout).clamp(-SAFETY_BOUND, SAFETY_BOUND)
    lower_log, upper_log = math.log(float(1 / hi)), math.log(float(1 / lo))
    if level == "token":
        option = "token_k1"
        keep = (k1 >= lower_log) & (k1 <= upper_log)
    elif level == "sequence":
        option = "seq_mean_k1"
        stat = masked_mean(k1, mask, dim=-1)
        keep = ((stat >= lower_log) & (stat <= upper_log)).unsqueeze(-1).expand_as(mask.bool())
    else:
        raise ValueError(f"level must be 'token' or 'sequence', got {level!r}")
    keep_f = keep.to(old.dtype)
    valid = mask.bool()
    masked_fraction = masked_mean(1 - keep_f, mask).item()
    seq_valid = mask.sum(dim=-1) > 0
    seq_rejected = ((~keep) & valid).any(dim=-1)
    n_valid = seq_valid.float().sum()
    seq_fraction = (
        ((seq_rejected.float() * seq_valid.float()).sum() / n_valid).item() if n_valid > 0 else 0.0
    )
    metrics = {
        f"rollout_rs_{option}_masked_fraction": masked_fraction,
        f"rollout_rs_{option}_seq_masked_fraction": seq_fraction,
        "rollout_rs_masked_fraction": masked_fraction,
        "rollout_rs_seq_masked_fraction": seq_rejected.float().mean().item(),
    }
    return (mask * keep_f).to(mask.dtype), metrics


def offpolicy_metrics(old: Tensor, rollout: Tensor, mask: Tensor) -> dict[str, float]:
    """verl's mismatch diagnostics: ``kl``, ``k3_kl``, perplexities, ``chi2_token/seq``."""
    import torch

    m: dict[str, float] = {}
    mean_old = masked_mean(old, mask, dim=-1)
    m["training_ppl"] = torch.exp(-mean_old).mean().item()
    m["training_log_ppl"] = (-mean_old).mean().item()
    m["kl"] = masked_mean(rollout - old, mask).item()
    log_ratio = old - rollout
    m["k3_kl"] = masked_mean(torch.exp(log_ratio) - log_ratio - 1, mask).item()
    mean_rollout = masked_mean(rollout, mask, dim=-1)
    m["rollout_ppl"] = torch.exp(-mean_rollout).mean().item()
    m["rollout_log_ppl"] = (-mean_rollout).mean().item()
    diff = mean_rollout - mean_old
    m["log_ppl_diff"] = diff.mean().item()
    m["log_ppl_abs_diff"] = diff.abs().mean().item()
    m["log_ppl_diff_max"] = diff.max().item()
    m["log_ppl_diff_min"] = diff.min().item()
    m["ppl_ratio"] = torch.exp(diff).mean().item()
    rho = torch.exp(log_ratio.clamp(-SAFETY_BOUND, SAFETY_BOUND))
    m["chi2_token"] = (masked_mean(rho.square(), mask) - 1.0).item()
    seq_sum = masked_sum(log_ratio, mask, dim=-1).clamp(-SAFETY_BOUND, SAFETY_BOUND)
    m["chi2_seq"] = (torch.exp(2.0 * seq_sum).mean() - 1.0).item()
    return m


def correct(
    old: Tensor,
    rollout: Tensor,
    mask: Tensor,
    *,
    level: str,
    threshold: float,
    band: tuple[float, float] | None = None,
) -> tuple[Tensor | None, Tensor, dict[str, float]]:
    """Weights, the mask after rejection, and every metric (``rollout_corr/`` names).

    With no valid token there is nothing to weigh or measure: ``(None, mask, {})``.
    """
    import torch

    if not bool(mask.bool().any()):
        return None, mask, {}
    with torch.no_grad():
        weights, metrics = is_weights(old, rollout, mask, level=level, threshold=threshold)
        new_mask = mask
        if band is not None:
            new_mask, rs = rejection_mask(old, rollout, mask, level=level, band=band)
            metrics.update(rs)
        metrics.update(offpolicy_metrics(old, rollout, mask))
    return weights, new_mask, {PREFIX + k: v for k, v in metrics.items()}
