"""The is-token RewardFilter: its options, its verl overrides, the correction and the KL alarm.

The policy that sampled a token (the rollout server) and the policy the trainer recomputes
(``old``) differ a little: different kernels, bf16 and, in async modes, stale weights. Each
token's loss is reweighted by ``min(exp(old - rollout), C)`` (detached). With ``rejection``,
tokens whose ratio ``exp(old - rollout)`` falls outside a band are masked out. On verl engines
this maps onto ``algorithm.rollout_correction.*`` (verl 0.9.1); in the local engine
:meth:`TokenIS.token_weights` computes the same (:mod:`swerl_is_token.correction`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from swerl.components import ComponentOptions, RewardFilter

if TYPE_CHECKING:
    import torch

    from swerl.config.schema import SwerlConfig

log = logging.getLogger("swerl.is_token")

VERL_PREFIX = "algorithm.rollout_correction"
#: verl's ratio-band rejection mode for each level.
REJECTION_MODE = {"token": "token_k1", "sequence": "seq_mean_k1"}


class TokenISOptions(ComponentOptions):
    """Options of the is-token filter (`filters[i].options`)."""

    level: Literal["token", "sequence"] = Field(
        "token",
        description="`token`: one weight per token (the setting for long responses); `sequence`: "
        "one weight per trajectory, the product of its token ratios.",
    )
    threshold: float = Field(
        2.0, gt=1, description="C: weights are truncated at C (`min(ratio, C)`); must be > 1."
    )
    rejection: tuple[float, float] | None = Field(
        None,
        description='Band `[lo, hi]` (a `"lo_hi"` string or two numbers) on the ratio '
        "`exp(old - rollout)` (per token; the geometric mean at sequence level); tokens outside "
        "it are masked out. null: no rejection.",
    )
    kl_alarm_threshold: float = Field(
        1e-2,
        gt=0,
        description="Alarm when `rollout_corr/kl` stays above this (healthy runs show ≈3e-4).",
    )
    kl_alarm_steps: int = Field(
        3, ge=1, description="Consecutive steps above `kl_alarm_threshold` before the alarm."
    )
    pause_on_alarm: bool = Field(
        False, description="Pause the run (checkpoint, then stop) when the alarm fires."
    )

    @field_validator("rejection", mode="before")
    @classmethod
    def parse_band(cls, value: Any) -> Any:
        if isinstance(value, str):
            lo, sep, hi = value.partition("_")
            try:
                return (float(lo), float(hi)) if sep else value
            except ValueError:
                return value
        return value

    @field_validator("rejection")
    @classmethod
    def band_contains_one(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not (0 < value[0] < 1 < value[1]):
            raise ValueError(
                f"band [{value[0]:g}, {value[1]:g}] must satisfy 0 < lo < 1 < hi (a token sampled "
                "by the same policy has ratio 1 and must pass), e.g. '0.5_2.0'"
            )
        return value


def _hydra_float(value: float) -> str:
    """Shortest text that reads back as the same float."""
    return repr(float(value))


class TokenIS(RewardFilter):
    name = "is-token"
    summary = "token-level importance-sampling correction (rollout vs trainer logprobs)"
    Options = TokenISOptions
    ready = frozenset({"apply", "plan"})

    def __init__(self, options: TokenISOptions | None = None) -> None:
        super().__init__(options)
        #: Consecutive steps with ``rollout_corr/kl`` above the alarm threshold.
        self.kl_streak = 0

    def token_weights(
        self, old_logprob: torch.Tensor, rollout_logprob: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor, dict[str, float]]:
        """Truncated IS weights, the mask after rejection, verl's ``rollout_corr/*`` metrics,
        and the KL alarm (``is_token/kl_streak``, ``is_token/kl_alarm``)."""
        from swerl_is_token.correction import correct

        opts = self.options
        assert isinstance(opts, TokenISOptions)
        weights, new_mask, metrics = correct(
            old_logprob,
            rollout_logprob,
            mask,
            level=opts.level,
            threshold=opts.threshold,
            band=opts.rejection,
        )
        if "rollout_corr/kl" in metrics:
            self.watch_kl(metrics["rollout_corr/kl"])
        metrics["is_token/kl_streak"] = float(self.kl_streak)
        metrics["is_token/kl_alarm"] = float(self.kl_streak >= opts.kl_alarm_steps)
        return weights, new_mask, metrics

    def watch_kl(self, kl: float) -> None:
        """Count consecutive steps above the threshold; at ``kl_alarm_steps`` warn loudly (and
        with ``pause_on_alarm`` ask the loop to checkpoint and stop)."""
        opts = self.options
        assert isinstance(opts, TokenISOptions)
        self.kl_streak = self.kl_streak + 1 if kl > opts.kl_alarm_threshold else 0
        if self.kl_streak < opts.kl_alarm_steps:
            return
        what = (
            f"KL ALARM: rollout_corr/kl = {kl:.3g} has been above {opts.kl_alarm_threshold:g} "
            f"for {self.kl_streak} consecutive steps: the rollout policy and the trainer disagree "
            "(stale or mismatched weights, a broken weight sync, or a dtype/kernel gap)"
        )
        if opts.pause_on_alarm:
            self.pause_reason = what
            what += "; pausing the run (pause_on_alarm): a checkpoint is written, then it stops"
        banner = "!" * 100
        log.warning("\n%s\n%s\n%s", banner, what, banner)

    def verl_overrides(self, config: SwerlConfig) -> list[str]:
        """verl 0.9.1 ``algorithm.rollout_correction.*`` overrides for these options.

        Decoupled mode (``bypass_mode=False``): the trainer recomputes ``old`` log-probs, and the
        weights correct for the gap between them and the rollout's.
        """
        opts = self.options
        assert isinstance(opts, TokenISOptions)
        out = [
            f"{VERL_PREFIX}.rollout_is={opts.level}",
            f"{VERL_PREFIX}.rollout_is_threshold={_hydra_float(opts.threshold)}",
            f"{VERL_PREFIX}.bypass_mode=False",
        ]
        if opts.rejection is not None:
            lo, hi = opts.rejection
            # verl's k1 rejection tests its band against -log_ratio = log(rollout/old), the
            # inverse of the IS weight; invert the band so that it applies to exp(old - rollout).
            band = f"{_hydra_float(1 / hi)}_{_hydra_float(1 / lo)}"
            out += [
                f"{VERL_PREFIX}.rollout_rs={REJECTION_MODE[opts.level]}",
                f"{VERL_PREFIX}.rollout_rs_threshold='{band}'",
            ]
        return out
