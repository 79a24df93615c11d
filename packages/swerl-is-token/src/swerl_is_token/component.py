"""The is-token RewardFilter: its options, and what works today."""

from __future__ import annotations

from swerl.components import ComponentOptions, RewardFilter


class TokenISOptions(ComponentOptions):
    """Options of the is-token rewardfilter (`<kind>.options`)."""


class TokenIS(RewardFilter):
    name = "is-token"
    summary = "token-level importance-sampling correction (rollout vs trainer logprobs)"
    Options = TokenISOptions
    ready = frozenset({"plan"})
    pending = "applying the correction in the local engine arrives with the reward-filters issue (#5)"
