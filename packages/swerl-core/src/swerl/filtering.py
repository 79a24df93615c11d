"""What a training loop hands its reward filters, and what it does with their answers.

A step's reward filters (``filters:`` in the config) run in two stages, each in config order:

1. **Trials, before advantages:** :meth:`RewardFilter.filter_batch
   <swerl.components.RewardFilter.filter_batch>` gets a :class:`FilterBatch`, one
   :class:`TrialItem` per trial, and may set three flags on each item:

   * ``dropped``: the trial leaves the batch (no sample, no advantage, not in any statistic).
   * ``train``: ``False`` masks the trial: its samples stay in the batch (shapes do not change)
     with a zero loss mask.
   * ``in_group_stats``: ``False`` leaves its reward out of its group's mean and std.

   The loop then computes group advantages over the live items with ``in_group_stats`` and
   builds the batch from the live items' samples.

2. **Tokens, after the trainer's logprobs:** :meth:`RewardFilter.token_weights
   <swerl.components.RewardFilter.token_weights>` gets the trainer's (``old``) and the rollout's
   logprobs and the loss mask (``[batch, resp_len]``). It returns per-token weights (or
   ``None``), a loss mask and metrics. The loop multiplies the weights of all filters into the
   policy loss (``is_weights``) and keeps a token only where every filter's mask keeps it.

Both stages return metrics (``name -> float``), merged into the step's metrics. A filter that
wants the run to stop after the current step (an alarm) sets ``pause_reason``; the loop then
writes a checkpoint and stops with status phase ``paused``.

On verl engines the agent loop sees one trial at a time: it calls stage 1 on a batch of that one
trial with ``whole_groups=False``, so a filter applies its per-trial decisions there and leaves
rules that need a whole group to the place that sees whole groups (for the trajectory filter,
its verl sampler).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swerl.components import RewardFilter
    from swerl.trajectories import SampleRecord


@dataclass
class TrialItem:
    """One trial of a step: its samples, its reward and what the filters decided about it."""

    trial_id: str
    #: The group it is compared with for its advantage: its task.
    group: str
    #: The verifier's reward; ``None`` when there is none (the loop drops such trials first).
    reward: float | None
    #: The trial's samples (one per gateway segment; one record without tokens if it had none).
    records: list[SampleRecord] = field(default_factory=list)
    #: Removed from the batch: no sample, no advantage, no statistic.
    dropped: bool = False
    #: ``False``: masked. The samples stay in the batch with a zero loss mask.
    train: bool = True
    #: Whether its reward counts in its group's mean and std.
    in_group_stats: bool = True

    @property
    def head(self) -> SampleRecord:
        """The first record: the trial-level facts (cause, timings, agent) are on every one."""
        return self.records[0]

    def drop(self) -> None:
        self.dropped = True

    def mask(self) -> None:
        """Keep it in the batch, with no gradient and out of its group's statistics."""
        self.train = False
        self.in_group_stats = False


@dataclass
class FilterBatch:
    """The trials of one step, in the order they finished."""

    items: list[TrialItem]
    #: 0-based step the batch belongs to.
    step: int = 0
    #: ``rollout.max_response_length`` (a response longer than this was cut).
    max_response_length: int | None = None
    #: ``False``: the batch is not whole groups (verl's agent loop hands one trial as it
    #: finishes); rules that need every trial of a group must not run on it.
    whole_groups: bool = True

    @classmethod
    def from_records(
        cls,
        records: Iterable[SampleRecord],
        *,
        step: int = 0,
        max_response_length: int | None = None,
        whole_groups: bool = True,
    ) -> FilterBatch:
        """One item per trial (records grouped by ``trial_id``, first-seen order); a trial
        without a reward starts dropped, since nothing can be learned from it."""
        by_trial: dict[str, list[SampleRecord]] = {}
        for rec in records:
            by_trial.setdefault(rec.trial_id, []).append(rec)
        items = [
            TrialItem(
                trial_id=tid,
                group=recs[0].task,
                reward=recs[0].reward,
                records=recs,
                dropped=recs[0].reward is None,
            )
            for tid, recs in by_trial.items()
        ]
        return cls(
            items, step=step, max_response_length=max_response_length, whole_groups=whole_groups
        )

    def run_filters(self, filters: Sequence[RewardFilter]) -> dict[str, float]:
        """Stage 1: each filter's :meth:`~swerl.components.RewardFilter.filter_batch` on this
        batch, in config order; then a live trial without a reward neither trains nor counts in
        its group's statistics (nothing to learn from, or compare with). Returns the filters'
        metrics."""
        metrics: dict[str, float] = {}
        for f in filters:
            metrics.update(f.filter_batch(self))
        for item in self.live():
            if item.reward is None:
                item.train = item.in_group_stats = False
        return metrics

    def live(self) -> list[TrialItem]:
        """The items not dropped."""
        return [i for i in self.items if not i.dropped]

    def groups(self, *, live: bool = True) -> dict[str, list[TrialItem]]:
        """Items by group, groups in first-seen order (only live items unless ``live=False``)."""
        out: dict[str, list[TrialItem]] = {}
        for item in self.items:
            if live and item.dropped:
                continue
            out.setdefault(item.group, []).append(item)
        return out
