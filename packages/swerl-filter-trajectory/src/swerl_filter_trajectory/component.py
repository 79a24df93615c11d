"""The trajectory RewardFilter: its options, and what works today."""

from __future__ import annotations

from swerl.components import ComponentOptions, RewardFilter


class TrajectoryFilterOptions(ComponentOptions):
    """Options of the trajectory rewardfilter (`<kind>.options`)."""


class TrajectoryFilter(RewardFilter):
    name = "trajectory"
    summary = "drop or mask invalid trajectories; infra failures never count as reward 0"
    Options = TrajectoryFilterOptions
    ready = frozenset()
    pending = "trajectory filtering arrives with the reward-filters issue (#5)"
