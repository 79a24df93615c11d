"""The trajectory filter's group stage on verl 0.9.1: a custom V1 sampler (ReplayBuffer).

verl's agent loop sees one trial at a time, so swerl's (``swerl_engine_fsdp.agent_loop``) applies
only the per-class policies there: a dropped trial returns ``[]``, a masked one keeps its rows
with a zero ``response_mask``. It also writes what was decided about each training trial into
its prompt's TransferQueue tag (``swerl_trial/<session>``: reward, dropped, train,
in_group_stats, the filter's metrics for it) before verl marks the prompt's group finished.

This sampler is the first place that sees a whole group before advantages. verl's trainer
builds it from ``trainer.v1.sampler.custom_sampler.{path,name}`` (the filter's plan sets them,
with the group rules in ``trainer.v1.sampler.sampler_kwargs``) and asks it for each step's
batch. On every poll, each group that became terminal is judged once:

* **Group rules** (:func:`~swerl_filter_trajectory.component.group_verdict`, the same function
  the local engine runs): a group with fewer than ``min_valid_per_group`` trials that reached
  the batch and count in its statistics, or (``drop_uniform_groups``) whose counted rewards are
  all equal, is evicted through verl's own failed-group path: its rows leave TransferQueue and
  verl submits a fresh prompt in its place (``data.gen_batch_size=1`` makes that exact).
* **Masked trials** keep their rows, but verl's GRPO (``compute_grpo_outcome_advantage``) groups
  rows by the ``uid`` field and counts every row's reward, whatever its mask. Each masked trial's
  rows get a ``uid`` of their own (``<uid>-masked-<session>``): a one-row group, whose advantage
  is ``reward × response_mask = 0``, and the group's mean and std are its other trials'.
* **Metrics**: ``sample`` adds the ``trajectory_filter/*`` metrics of the trials behind the
  batch it returns (the sampled groups and the groups evicted meanwhile) to the metrics verl
  logs for the step.

Imported by verl's trainer only (it needs verl and TransferQueue); nothing else imports it.
"""

from __future__ import annotations

import logging
from typing import Any

import transfer_queue as tq
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

from swerl_filter_trajectory.component import TrajectoryFilterOptions
from swerl_filter_trajectory.verl_groups import (
    GroupJudgement,
    judge_group,
    judgement_metrics,
    session_of,
)

log = logging.getLogger("swerl.trajectory_filter")

#: The options this sampler reads from ``trainer.v1.sampler.sampler_kwargs``.
SAMPLER_OPTIONS = ("min_valid_per_group", "drop_uniform_groups")


class TrajectoryReplayBuffer(ReplayBuffer):
    """verl's synchronous V1 ReplayBuffer plus the trajectory filter's group stage.

    Set by the trajectory filter's plan as ``trainer.v1.sampler.custom_sampler`` (``sync``
    trainer mode); its options arrive as ``trainer.v1.sampler.sampler_kwargs``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        given = dict(self.sampler_kwargs or {})
        self.options = TrajectoryFilterOptions.model_validate(
            {k: given[k] for k in SAMPLER_OPTIONS if k in given}
        )
        #: partition -> uid -> judgement, for the terminal groups judged and not yet reported.
        self.judged: dict[str, dict[str, GroupJudgement]] = {}

    def _terminal_eviction_reasons(
        self, global_steps: int, partition_id: str
    ) -> tuple[set[str], set[str], set[str], Any]:
        """verl's reasons, plus the groups the group rules drop, in the failed-group slot: verl
        then clears them and (sync mode) refills exactly that many prompts."""
        stale, dapo, failed, dapo_counts = super()._terminal_eviction_reasons(
            global_steps, partition_id
        )
        if partition_id == "val":
            return stale, dapo, failed, dapo_counts
        return stale, dapo, failed | self.judge_terminal_groups(partition_id), dapo_counts

    def judge_terminal_groups(self, partition_id: str) -> set[str]:
        """Judge every group that became terminal since the last poll (once each); regroup the
        kept groups' masked trials. Returns the uids of the groups to evict."""
        judged = self.judged.setdefault(partition_id, {})
        terminal = self.finished_keys[partition_id] | self.failure_keys[partition_id]
        new = terminal - judged.keys()
        if new:
            tags = (tq.kv_list() or {}).get(partition_id, {})
            keys_of: dict[str, list[str]] = {uid: [] for uid in new}
            for key in self.partitions[partition_id]:
                uid = key.split("_")[0]
                if uid in keys_of:
                    keys_of[uid].append(key)
            for uid in sorted(new):
                judgement, masked = judge_group(uid, tags.get(uid, {}), keys_of[uid], self.options)
                if masked:
                    judgement.regrouped = self.regroup(partition_id, uid, masked)
                judged[uid] = judgement
                if judgement.dropped:
                    log.info("group %s dropped (%s)", uid, judgement.dropped)
        return {uid for uid in terminal if judged[uid].dropped is not None}

    def regroup(self, partition_id: str, uid: str, masked: dict[int, list[str]]) -> list[str]:
        """Give each masked session's rows a ``uid`` of their own, so that verl's GRPO leaves
        their rewards out of the group's mean and std (their mask is zero: no loss)."""
        from verl.utils.tensordict_utils import list_of_dict_to_tensordict

        keys = [k for session in sorted(masked) for k in masked[session]]
        fields = [{"uid": f"{uid}-masked-{session_of(k)}"} for k in keys]
        tq.kv_batch_put(
            keys=keys, partition_id=partition_id, fields=list_of_dict_to_tensordict(fields)
        )
        return keys

    def sample(self, global_steps: int, partition_id: str, batch_size: int) -> tuple[Any, dict]:
        """verl's sample, plus the ``trajectory_filter/*`` metrics of the trials behind it."""
        batch, metrics = super().sample(global_steps, partition_id, batch_size)
        if partition_id == "val":
            return batch, metrics
        judged = self.judged.setdefault(partition_id, {})
        sampled = {key.split("_")[0] for key in batch.keys}
        report = [j for uid, j in judged.items() if uid in sampled or j.dropped is not None]
        for j in report:
            judged.pop(j.uid, None)
        if report:
            metrics.update(judgement_metrics(report))
        return batch, metrics
