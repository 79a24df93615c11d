"""The trajectory RewardFilter: its options, the classes and the per-class policies.

Each trajectory (trial) falls into one class: valid, infra failure (the sandbox or the model
endpoint broke, so the reward says nothing about the policy), agent failure (the agent ran and
failed: a real reward), token-fidelity failure (the trained tokens would not be the sampled ones)
or truncated (it hit a length or turn limit); :func:`classify` says which. Each invalid class
gets a policy:

- ``drop``: removed before advantages are computed; its group is smaller.
- ``mask``: stays in the batch, so batch shapes do not change, but its loss mask is zero and its
  reward is left out of its group's statistics.
- ``keep``: trained on as it is.

Then a group (the trials of one task) with fewer than ``min_valid_per_group`` trials whose
reward still counts is dropped whole, and with ``drop_uniform_groups`` so is a group whose
counted rewards are all equal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from swerl.components import ComponentOptions, RewardFilter

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.filtering import FilterBatch, TrialItem

Policy = Literal["drop", "mask", "keep"]
CLASSES = ("infra_failure", "agent_failure", "fidelity_failure", "truncated")
VALID = "valid"
METRIC = "trajectory_filter/"
#: The verl V1 sampler that runs the group stage (``trainer.v1.sampler.custom_sampler``).
SAMPLER_MODULE = "swerl_filter_trajectory.verl_sampler"
SAMPLER_CLASS = "TrajectoryReplayBuffer"

#: Failure causes (swerl.rollout, the sandbox) that say nothing about the policy: the sandbox,
#: Harbor, the verifier, the orchestration or the model endpoint broke, the trial was cancelled,
#: or the gateway could not render the agent's request.
INFRA_CAUSES = frozenset(
    {
        "sandbox_error",
        "verifier_error",
        "harbor_error",
        "rollout_error",
        "cancelled",
        "model_error",
        "policy_error",
        "malformed_request",
    }
)
#: Failure causes where the agent ran and failed: its reward is real.
AGENT_CAUSES = frozenset({"agent_error", "agent_timeout", "context_overflow"})
#: How an agent reports that it stopped at its turn limit (claude-code's result subtype).
TURN_LIMIT_SUBTYPES = frozenset({"error_max_turns"})


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
        description="A group (the trials of one task) with fewer trials whose reward still "
        "counts after filtering (not masked, not dropped) is dropped whole: a group-relative "
        "advantage needs at least two.",
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
    ready = frozenset({"apply", "plan"})

    def verl_overrides(self, config: SwerlConfig) -> list[str]:
        """verl 0.9.1 V1 (``sync`` mode): the group stage runs in this package's custom sampler
        (:mod:`swerl_filter_trajectory.verl_sampler`), which evicts a dropped group through
        verl's failed-group path; ``data.gen_batch_size=1`` lets verl refill exactly that many
        prompts. The per-class policies run in swerl's agent loop and need no override.
        ``fully_async`` (verl's legacy fully-async trainer has no V1 sampler): none."""
        if config.mode != "sync":
            return []
        opts = self.options
        assert isinstance(opts, TrajectoryFilterOptions)
        sampler = "trainer.v1.sampler"
        kwargs = f"+{sampler}.sampler_kwargs"  # an empty dict in verl's yaml: new keys need +
        return [
            f"{sampler}.custom_sampler.path=pkg://{SAMPLER_MODULE}",
            f"{sampler}.custom_sampler.name={SAMPLER_CLASS}",
            f"{kwargs}.min_valid_per_group={opts.min_valid_per_group}",
            f"{kwargs}.drop_uniform_groups={opts.drop_uniform_groups}",
            "data.gen_batch_size=1",
        ]

    def filter_batch(self, batch: FilterBatch) -> dict[str, float]:
        """Classify every trial and apply the per-class policies, then (on whole groups) the
        group rules. On verl's agent loop the batch is one trial (``whole_groups=False``): the
        group rules then run in :mod:`swerl_filter_trajectory.verl_sampler`."""
        opts = self.options
        assert isinstance(opts, TrajectoryFilterOptions)
        dropped_before = {i.trial_id for i in batch.items if i.dropped}
        counts = dict.fromkeys((VALID, *CLASSES), 0)
        for item in batch.items:
            counts[judge(item, opts, max_response_length=batch.max_response_length)] += 1
        dropped_groups = drop_groups(batch.groups().values(), opts) if batch.whole_groups else 0
        return step_metrics(
            counts,
            dropped_trials=sum(i.dropped and i.trial_id not in dropped_before for i in batch.items),
            masked_trials=sum(not i.dropped and not i.train for i in batch.items),
            dropped_groups=dropped_groups,
        )


def judge(
    item: TrialItem, opts: TrajectoryFilterOptions, *, max_response_length: int | None = None
) -> str:
    """Classify one trial and apply its class's policy to it (drop, mask or keep); its class.

    Both engines call this per trial: the local loop over the step's trials, verl's agent loop
    as each trial finishes.
    """
    cls = classify(item, max_response_length=max_response_length)
    if item.dropped or cls == VALID:
        return cls
    policy = opts.policies()[cls]
    if policy == "drop":
        item.drop()
    elif policy == "mask":
        item.mask()
    return cls


def drop_groups(groups: Iterable[list[TrialItem]], opts: TrajectoryFilterOptions) -> int:
    """The group rules over the live trials of each group: a group with fewer than
    ``min_valid_per_group`` trials whose reward counts, or (``drop_uniform_groups``) whose
    counted rewards are all equal, is dropped whole. Returns how many groups were dropped."""
    dropped = 0
    for members in groups:
        if group_verdict(members, opts) is not None:
            dropped += 1
            for item in members:
                item.drop()
    return dropped


def group_verdict(members: list[TrialItem], opts: TrajectoryFilterOptions) -> str | None:
    """Why a group's live trials must be dropped (``too_few_valid``, ``uniform_rewards``), or
    None to keep it."""
    counted = [i for i in members if not i.dropped and i.in_group_stats]
    if len(counted) < opts.min_valid_per_group:
        return "too_few_valid"
    if opts.drop_uniform_groups and len({i.reward for i in counted}) <= 1:
        return "uniform_rewards"
    return None


def step_metrics(
    counts: dict[str, int], *, dropped_trials: int, masked_trials: int, dropped_groups: int
) -> dict[str, float]:
    """The ``trajectory_filter/*`` metrics of a step from its trials' classes and decisions."""
    n = sum(counts.values())
    metrics = {f"{METRIC}{cls}": float(counts.get(cls, 0)) for cls in (VALID, *CLASSES)}
    metrics.update(
        {
            f"{METRIC}invalid_ratio": (n - counts.get(VALID, 0)) / n if n else 0.0,
            f"{METRIC}infra_failed_rate": counts.get("infra_failure", 0) / n if n else 0.0,
            f"{METRIC}dropped_groups": float(dropped_groups),
            f"{METRIC}dropped_trials": float(dropped_trials),
            f"{METRIC}masked_trials": float(masked_trials),
        }
    )
    return metrics


def classify(item: TrialItem, *, max_response_length: int | None = None) -> str:
    """The class of one trial; the first rule that matches wins.

    1. ``infra_failure``: it has no reward, or a failure cause that is not an agent's
       (:data:`INFRA_CAUSES`, and any cause this module does not know).
    2. ``fidelity_failure``: no sampled token was recorded, a sample's logprobs or loss mask do
       not line up with its response ids, or a sample's exactness is below 1 (a trained id is
       not the sampled one).
    3. ``agent_failure``: its failure cause is in :data:`AGENT_CAUSES`.
    4. ``truncated``: the agent stopped at its turn limit (``rollout.max_turns``), or a sample's
       response is longer than ``max_response_length``.
    5. ``valid``: everything else.
    """
    head = item.head
    cause = head.failure_cause
    if item.reward is None or (cause is not None and cause not in AGENT_CAUSES):
        return "infra_failure"
    samples = [r for r in item.records if r.response_ids]
    if not any(sum(r.loss_mask) for r in samples):
        return "fidelity_failure"
    for r in samples:
        n = len(r.response_ids)
        if len(r.logprobs) != n or len(r.loss_mask) != n:
            return "fidelity_failure"
        if r.exactness is not None and r.exactness < 1.0:
            return "fidelity_failure"
    if cause in AGENT_CAUSES:
        return "agent_failure"
    result = head.agent.get("result") if isinstance(head.agent, dict) else None
    if isinstance(result, dict) and result.get("subtype") in TURN_LIMIT_SUBTYPES:
        return "truncated"
    if max_response_length is not None and any(
        len(r.response_ids) > max_response_length for r in samples
    ):
        return "truncated"
    return VALID
