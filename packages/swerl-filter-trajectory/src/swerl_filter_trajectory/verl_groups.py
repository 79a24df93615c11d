"""The trajectory filter's group stage over verl's prompt groups, without verl: what
:mod:`swerl_filter_trajectory.verl_sampler` decides for one group from its prompt's TransferQueue
tag and its trajectory keys, and the metrics over the groups behind a batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from swerl.filtering import TrialItem
from swerl_filter_trajectory.component import (
    CLASSES,
    METRIC,
    VALID,
    TrajectoryFilterOptions,
    group_verdict,
    step_metrics,
)

log = logging.getLogger("swerl.trajectory_filter")

#: Prompt-tag keys the agent loop writes, one per session (``swerl_engine_fsdp.agent_loop``).
TRIAL_TAG = "swerl_trial/"


@dataclass
class GroupJudgement:
    """What the sampler decided about one prompt group, and the counts for its metrics."""

    uid: str
    #: Why the group was evicted (``too_few_valid``, ``uniform_rewards``), None when kept.
    dropped: str | None
    counts: dict[str, int] = field(default_factory=dict)
    dropped_trials: int = 0
    masked_trials: int = 0
    #: Trajectory keys whose ``uid`` field was given a group of its own.
    regrouped: list[str] = field(default_factory=list)


def session_of(key: str) -> int:
    """The session of a trajectory key ``{uid}_{session}_{index}``."""
    return int(key.rsplit("_", 2)[1])


def judge_group(
    uid: str, prompt_tag: dict[str, Any], keys: list[str], opts: TrajectoryFilterOptions
) -> tuple[GroupJudgement, dict[int, list[str]]]:
    """Apply the group rules to one terminal group from its prompt's tag and its trajectory keys.

    Returns the judgement and, for a kept group, the keys of each masked session. A session with
    rows but no tag (its trial's tag was never written) counts as valid and in the statistics.
    """
    tagged = {
        int(k[len(TRIAL_TAG) :]): v
        for k, v in prompt_tag.items()
        if k.startswith(TRIAL_TAG) and isinstance(v, dict)
    }
    rows: dict[int, list[str]] = {}
    for key in keys:
        rows.setdefault(session_of(key), []).append(key)
    items: list[TrialItem] = []
    counts = dict.fromkeys((VALID, *CLASSES), 0)
    dropped_trials = 0
    for session in sorted(tagged.keys() | rows.keys()):
        tag = tagged.get(session)
        if tag is None:
            log.warning("group %s session %d: rows but no swerl tag; counted valid", uid, session)
            tag = {"reward": None, "dropped": False, "train": True, "in_group_stats": True}
            counts[VALID] += 1
        metrics = tag.get("metrics") or {}
        for cls in counts:
            counts[cls] += int(metrics.get(f"{METRIC}{cls}", 0))
        dropped_trials += int(metrics.get(f"{METRIC}dropped_trials", 0))
        items.append(
            TrialItem(
                trial_id=str(session),
                group=uid,
                reward=tag.get("reward"),
                # a trial whose rows never reached TransferQueue is out, whatever the filter said
                dropped=bool(tag.get("dropped")) or session not in rows,
                train=bool(tag.get("train", True)),
                in_group_stats=bool(tag.get("in_group_stats", True)),
            )
        )
    verdict = group_verdict(items, opts)
    live = [i for i in items if not i.dropped]
    judgement = GroupJudgement(uid, verdict, counts, dropped_trials)
    masked: dict[int, list[str]] = {}
    if verdict is not None:
        judgement.dropped_trials += len(live)
    else:
        for item in live:
            if not item.train:
                masked[int(item.trial_id)] = rows[int(item.trial_id)]
        judgement.masked_trials = len(masked)
    return judgement, masked


def judgement_metrics(judgements: list[GroupJudgement]) -> dict[str, float]:
    """The ``trajectory_filter/*`` metrics over the trials of these groups."""
    counts = dict.fromkeys((VALID, *CLASSES), 0)
    for j in judgements:
        for cls, n in j.counts.items():
            counts[cls] += n
    return step_metrics(
        counts,
        dropped_trials=sum(j.dropped_trials for j in judgements),
        masked_trials=sum(j.masked_trials for j in judgements),
        dropped_groups=sum(j.dropped is not None for j in judgements),
    )
