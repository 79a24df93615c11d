"""The group stage the verl sampler runs, from prompt tags and trajectory keys (no verl here),
and the filter's verl plan."""

from __future__ import annotations

from typing import Any

import pytest

from swerl.config.schema import SwerlConfig
from swerl_filter_trajectory.component import TrajectoryFilter, TrajectoryFilterOptions
from swerl_filter_trajectory.verl_groups import TRIAL_TAG, judge_group, judgement_metrics


def tag(reward: float | None, cls: str = "valid", *, dropped: bool = False,
        train: bool = True, by_filter: bool = False) -> dict[str, Any]:  # fmt: skip
    """A trial's tag as swerl's agent loop writes it."""
    metrics = {f"trajectory_filter/{cls}": 1.0}
    metrics["trajectory_filter/dropped_trials"] = float(by_filter)
    return {"reward": reward, "dropped": dropped, "train": train, "in_group_stats": train,
            "metrics": metrics}  # fmt: skip


def prompt(*trials: dict[str, Any]) -> dict[str, Any]:
    return {"is_prompt": True, "status": "finished"} | {
        f"{TRIAL_TAG}{i}": t for i, t in enumerate(trials)
    }


def keys(uid: str, sessions: list[int], segments: int = 1) -> list[str]:
    return [f"{uid}_{s}_{i}" for s in sessions for i in range(segments)]


OPTS = TrajectoryFilterOptions(min_valid_per_group=2)


def test_a_group_keeps_its_valid_trials_and_lists_masked_rows():
    tags = prompt(
        tag(1.0), tag(0.0), tag(1.0, "agent_failure", train=False),
        tag(0.0, "infra_failure", dropped=True, by_filter=True),
    )  # fmt: skip
    j, masked = judge_group("u", tags, keys("u", [0, 1]) + keys("u", [2], segments=2), OPTS)
    assert j.dropped is None
    assert masked == {2: ["u_2_0", "u_2_1"]}  # every segment of the masked session
    assert (j.dropped_trials, j.masked_trials) == (1, 1)
    assert j.counts == {"valid": 2, "infra_failure": 1, "agent_failure": 1,
                        "fidelity_failure": 0, "truncated": 0}  # fmt: skip


def test_too_few_counted_trials_drop_the_group():
    # a masked trial does not count; one valid trial is below 2
    tags = prompt(tag(1.0), tag(0.0, "agent_failure", train=False),
                  tag(None, "infra_failure", dropped=True))  # fmt: skip
    j, masked = judge_group("u", tags, keys("u", [0, 1]), OPTS)
    assert j.dropped == "too_few_valid" and masked == {}
    assert j.dropped_trials == 2  # the group's two trials with rows
    m = judgement_metrics([j])
    assert m["trajectory_filter/dropped_groups"] == 1.0
    assert m["trajectory_filter/infra_failed_rate"] == pytest.approx(1 / 3)
    assert m["trajectory_filter/masked_trials"] == 0.0


def test_a_tagged_trial_without_rows_is_out_and_rows_without_a_tag_count():
    # session 1's tag says kept, but none of its rows reached TransferQueue: it does not count
    tags = prompt(tag(1.0), tag(0.0))
    j, _ = judge_group("u", tags, keys("u", [0]), OPTS)
    assert j.dropped == "too_few_valid"
    # session 2 has rows and no tag: counted valid, in the statistics
    j, _ = judge_group("u", prompt(tag(1.0)), keys("u", [0, 2]), OPTS)
    assert j.dropped is None and j.counts["valid"] == 2


def test_uniform_rewards_drop_the_group_only_when_asked():
    tags = prompt(tag(1.0), tag(1.0), tag(0.0, "infra_failure", dropped=True))
    k = keys("u", [0, 1])
    assert judge_group("u", tags, k, OPTS)[0].dropped is None
    uniform = TrajectoryFilterOptions(min_valid_per_group=2, drop_uniform_groups=True)
    assert judge_group("u", tags, k, uniform)[0].dropped == "uniform_rewards"


def test_metrics_add_up_over_groups():
    a, _ = judge_group("a", prompt(tag(1.0), tag(0.0)), keys("a", [0, 1]), OPTS)
    b, _ = judge_group("b", prompt(tag(1.0), tag(0.0, "truncated")), keys("b", [0, 1]), OPTS)
    m = judgement_metrics([a, b])
    assert m["trajectory_filter/valid"] == 3.0 and m["trajectory_filter/truncated"] == 1.0
    assert m["trajectory_filter/invalid_ratio"] == pytest.approx(1 / 4)
    assert m["trajectory_filter/dropped_groups"] == 0.0


def cfg(mode: str = "sync") -> SwerlConfig:
    base = {"model": {"path": "m"}, "tasks": {"path": "t"}, "mode": mode}
    return SwerlConfig.model_validate(base)


def test_verl_plan_sets_the_sampler_and_its_options_in_sync_mode_only():
    f = TrajectoryFilter(TrajectoryFilterOptions(min_valid_per_group=3, drop_uniform_groups=True))
    assert f.verl_overrides(cfg()) == [
        "trainer.v1.sampler.custom_sampler.path=pkg://swerl_filter_trajectory.verl_sampler",
        "trainer.v1.sampler.custom_sampler.name=TrajectoryReplayBuffer",
        "+trainer.v1.sampler.sampler_kwargs.min_valid_per_group=3",
        "+trainer.v1.sampler.sampler_kwargs.drop_uniform_groups=True",
        "data.gen_batch_size=1",
    ]
    assert f.verl_overrides(cfg("fully_async")) == []
