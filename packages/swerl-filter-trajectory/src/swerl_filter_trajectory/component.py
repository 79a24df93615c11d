"""The trajectory RewardFilter: its options, and what works today.

Each scored trajectory falls into one class: valid, infra failure (the sandbox or the model
endpoint broke, so the reward says nothing about the policy), agent failure (the agent ran and
failed: a real reward), token-fidelity failure (the trained tokens would not be the sampled ones)
or truncated (it hit a length or turn limit). Each invalid class gets a policy:

- ``drop``: removed before advantages are computed; its group is smaller.
- ``mask``: stays in the batch, so batch shapes do not change, but its loss mask is zero and its
  reward is left out of its group's statistics.
- ``keep``: trained on as it is.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from swerl.components import ComponentOptions, RewardFilter

Policy = Literal["drop", "mask", "keep"]
CLASSES = ("infra_failure", "agent_failure", "fidelity_failure", "truncated")


class TrajectoryFilterOptions(ComponentOptions):
    """Options of the trajectory filter (`filters[i].options`)."""

    infra_failure: Policy = Field(
        "drop",
        description="Sandbox, verifier or model-endpoint failures: `drop` or `mask`; never `keep`, "
        "because an infra failure must not count as reward 0.",
    )
    agent_failure: Policy = Field(
        "keep", description="The agent ran and failed (crashed, gave up): its reward is real."
    )
    fidelity_failure: Policy = Field(
        "drop",
        description="Trajectories whose trained tokens would differ from the sampled ones "
        "(re-tokenized text, missing logprobs).",
    )
    truncated: Policy = Field(
        "keep",
        description="Trajectories cut by `rollout.max_response_length` or `rollout.max_turns`; "
        "the verifier still scored what the agent left behind.",
    )
    min_valid_per_group: int = Field(
        2,
        ge=1,
        description="A group (the samples of one task) with fewer trajectories left after "
        "filtering is dropped whole: a group-relative advantage needs at least two.",
    )
    drop_uniform_groups: bool = Field(
        False,
        description="Drop groups whose remaining rewards are all equal (their advantages are zero "
        "under GRPO, so they only cost compute).",
    )

    @field_validator("infra_failure")
    @classmethod
    def infra_failures_never_count(cls, value: str) -> str:
        if value == "keep":
            raise ValueError(
                "infra failures never count as reward 0: use 'drop' (remove them) or 'mask' "
                "(keep the batch shape, no gradient)"
            )
        return value

    def policies(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in CLASSES}


class TrajectoryFilter(RewardFilter):
    name = "trajectory"
    summary = "drop or mask invalid trajectories; infra failures never count as reward 0"
    Options = TrajectoryFilterOptions
    ready = frozenset[str]()
    pending = "trajectory filtering arrives with the reward-filters issue (#5)"
