"""The reward filter `length`: drops or masks trajectories that sampled more than `max_tokens`.

A trajectory is one trial: its sampled tokens are the loss-mask-1 tokens of all its samples
(observations the agent read do not count). It runs in stage 1, before advantages: a dropped
trial leaves the batch; a masked one stays with no loss and out of its group's statistics.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from swerl.components import ComponentOptions, RewardFilter
from swerl.filtering import FilterBatch, TrialItem


class LengthFilterOptions(ComponentOptions):
    """Options of the length filter (`filters[].options`)."""

    max_tokens: int = Field(
        4096, ge=1, description="Most tokens a trajectory may sample (all its samples together)."
    )
    action: Literal["drop", "mask"] = Field(
        "drop",
        description="What happens to a longer trajectory: drop (out of the batch) or mask (in "
        "the batch with no loss, out of its group's statistics).",
    )


def sampled_tokens(trial: TrialItem) -> int:
    """Tokens the trial's agent sampled: the loss-mask-1 tokens of all its samples."""
    return sum(record.trained_tokens for record in trial.records)


class LengthFilter(RewardFilter):
    name = "length"  # what a config selects: `filters: [length]`
    summary = "drop or mask trajectories that sampled more than max_tokens"
    Options = LengthFilterOptions
    ready = frozenset({"apply"})
    pending = "no verl mapping yet: with the verl engines it adds nothing to the plan"

    def filter_batch(self, batch: FilterBatch) -> dict[str, float]:
        assert isinstance(self.options, LengthFilterOptions)
        live = batch.live()
        over = [trial for trial in live if sampled_tokens(trial) > self.options.max_tokens]
        for trial in over:
            if self.options.action == "drop":
                trial.drop()
            else:
                trial.mask()
        return {
            "length_filter/over_limit": float(len(over)),
            "length_filter/over_limit_ratio": len(over) / len(live) if live else 0.0,
            "length_filter/max_sampled_tokens": float(max(map(sampled_tokens, live), default=0)),
        }
