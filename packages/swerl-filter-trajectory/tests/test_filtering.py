"""The trajectory filter on hand-built batches: classes, policies, group rules and metrics."""

from __future__ import annotations

from typing import Any

import pytest

from swerl.filtering import FilterBatch
from swerl.trajectories import SampleRecord
from swerl_filter_trajectory.component import (
    AGENT_CAUSES,
    INFRA_CAUSES,
    TrajectoryFilter,
    TrajectoryFilterOptions,
    classify,
)


def rec(trial: str, task: str = "t", reward: float | None = 1.0, cause: str | None = None,
        **fields: Any) -> SampleRecord:  # fmt: skip
    base: dict[str, Any] = {
        "prompt_ids": [1, 2],
        "response_ids": [3, 4, 5],
        "loss_mask": [1, 0, 1],
        "logprobs": [-0.5, 0.0, -0.25],
        "exactness": 1.0,
    }
    base.update(fields)
    return SampleRecord(
        run_id="r",
        trial_id=trial,
        task=task,
        sample_index=0,
        num_samples=1,
        reward=reward,
        failure_cause=cause,
        failure_detail="",
        **base,
    )


def run(records: list[SampleRecord], max_response_length: int | None = None, **options: Any):
    batch = FilterBatch.from_records(records, max_response_length=max_response_length)
    metrics = TrajectoryFilter(TrajectoryFilterOptions(**options)).filter_batch(batch)
    flags = {i.trial_id: (i.dropped, i.train, i.in_group_stats) for i in batch.items}
    return flags, metrics


def cls_of(*records: SampleRecord, max_response_length: int | None = None) -> str:
    (item,) = FilterBatch.from_records(records).items
    return classify(item, max_response_length=max_response_length)


KEPT, MASKED, DROPPED = (False, True, True), (False, False, False), (True, True, True)


# --- classes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cause", [*sorted(INFRA_CAUSES), "something_new"])
def test_infra_causes_with_or_without_a_reward(cause):
    assert cls_of(rec("a", cause=cause, reward=0.0)) == "infra_failure"
    assert cls_of(rec("a", cause=cause, reward=None)) == "infra_failure"


def test_no_reward_is_an_infra_failure_whatever_the_cause():
    assert cls_of(rec("a", reward=None)) == "infra_failure"
    assert cls_of(rec("a", reward=None, cause="agent_error")) == "infra_failure"


@pytest.mark.parametrize("cause", sorted(AGENT_CAUSES))
def test_agent_causes(cause):
    assert cls_of(rec("a", cause=cause, reward=0.0)) == "agent_failure"


@pytest.mark.parametrize(
    "fields",
    [
        {"exactness": 0.9},  # a trained id is not the sampled one
        {"logprobs": [-0.5, 0.0]},  # logprobs do not line up
        {"loss_mask": [1, 1]},
        {"response_ids": [], "loss_mask": [], "logprobs": [], "exactness": None},  # no tokens
        {"loss_mask": [0, 0, 0]},  # nothing sampled
    ],
)
def test_fidelity_failures(fields):
    assert cls_of(rec("a", **fields)) == "fidelity_failure"


def test_fidelity_wins_over_agent_failure_and_one_bad_segment_is_enough():
    assert cls_of(rec("a", cause="agent_error", reward=0.0, exactness=0.5)) == "fidelity_failure"
    second = rec("a", exactness=0.75)
    second.sample_index = 1
    assert cls_of(rec("a"), second) == "fidelity_failure"


def test_truncated_at_the_turn_limit_or_past_the_response_length():
    at_limit = rec("a", agent={"result": {"subtype": "error_max_turns", "num_turns": 6}})
    assert cls_of(at_limit) == "truncated"
    assert cls_of(rec("a"), max_response_length=2) == "truncated"
    assert cls_of(rec("a"), max_response_length=3) == "valid"
    assert cls_of(rec("a", agent={"result": {"subtype": "success"}})) == "valid"
    # an agent failure at the turn limit is an agent failure
    timed_out = rec("a", cause="agent_timeout", reward=0.0, agent=at_limit.agent)
    assert cls_of(timed_out) == "agent_failure"


# --- policies and groups ------------------------------------------------------------------------


def test_defaults_drop_infra_and_fidelity_keep_agent_and_truncated():
    flags, m = run(
        [
            rec("v1", "A", 1.0),
            rec("v2", "A", 0.0),
            rec("inf", "A", 0.0, "policy_error"),  # a reward of 0 that measures nothing
            rec("box", "A", None, "sandbox_error"),
            rec("ag", "A", 0.0, "agent_error"),
            rec("fid", "A", 1.0, exactness=0.5),
            rec("cut", "A", 1.0, agent={"result": {"subtype": "error_max_turns"}}),
        ]
    )
    assert flags == {
        "v1": KEPT,
        "v2": KEPT,
        "inf": DROPPED,
        "box": DROPPED,  # no reward: dropped before any filter
        "ag": KEPT,
        "fid": DROPPED,
        "cut": KEPT,
    }
    assert m == {
        "trajectory_filter/valid": 2.0,
        "trajectory_filter/infra_failure": 2.0,
        "trajectory_filter/agent_failure": 1.0,
        "trajectory_filter/fidelity_failure": 1.0,
        "trajectory_filter/truncated": 1.0,
        "trajectory_filter/invalid_ratio": 5 / 7,
        "trajectory_filter/infra_failed_rate": 2 / 7,
        "trajectory_filter/dropped_groups": 0.0,
        "trajectory_filter/dropped_trials": 2.0,  # inf and fid; box was dropped already
        "trajectory_filter/masked_trials": 0.0,
    }


def test_mask_keeps_the_trial_in_the_batch_without_loss_or_statistics():
    records = [rec("v1", "A", 1.0), rec("v2", "A", 0.0), rec("inf", "A", 0.0, "model_error")]
    masked, m = run(records, infra_failure="mask")
    assert masked == {"v1": KEPT, "v2": KEPT, "inf": MASKED}
    assert m["trajectory_filter/masked_trials"] == 1.0
    assert m["trajectory_filter/dropped_trials"] == 0.0
    dropped, _ = run(records, infra_failure="drop")
    assert dropped["inf"] == DROPPED


def test_a_trial_without_reward_stays_dropped_even_when_its_class_is_masked():
    flags, _ = run(
        [rec("v1", "A", 1.0), rec("v2", "A", 0.0), rec("box", "A", None, "sandbox_error")],
        infra_failure="mask",
    )
    assert flags["box"] == DROPPED


def test_group_with_too_few_counted_trials_is_dropped_whole():
    flags, m = run(
        [
            rec("a1", "A", 1.0),
            rec("a2", "A", 0.0, "policy_error"),
            rec("a3", "A", None, "sandbox_error"),
            rec("b1", "B", 1.0),
            rec("b2", "B", 0.0),
            rec("b3", "B", 0.0, "verifier_error"),
        ],
        infra_failure="mask",
    )
    # A: only a1 counts (a2 masked, a3 has no reward): 1 < 2, so a1 and a2 go too.
    assert flags == {
        "a1": DROPPED,
        "a2": (True, False, False),
        "a3": DROPPED,
        "b1": KEPT,
        "b2": KEPT,
        "b3": MASKED,
    }
    assert m["trajectory_filter/dropped_groups"] == 1.0
    assert m["trajectory_filter/infra_failed_rate"] == 3 / 6


def test_min_valid_one_keeps_a_lone_survivor():
    flags, m = run(
        [rec("a1", "A", 1.0), rec("a2", "A", None, "sandbox_error")], min_valid_per_group=1
    )
    assert flags["a1"] == KEPT and m["trajectory_filter/dropped_groups"] == 0.0


def test_uniform_groups_are_dropped_only_when_asked():
    records = [rec("a1", "A", 1.0), rec("a2", "A", 1.0), rec("b1", "B", 1.0), rec("b2", "B", 0.0)]
    flags, m = run(records, drop_uniform_groups=True)
    assert (flags["a1"], flags["a2"], flags["b1"]) == (DROPPED, DROPPED, KEPT)
    assert m["trajectory_filter/dropped_groups"] == 1.0
    flags, _ = run(records)
    assert all(f == KEPT for f in flags.values())


def test_uniformity_is_judged_on_the_counted_rewards_only():
    # the infra failure's 0 would make the group look mixed; without it both rewards are 1
    records = [rec("a1", "A", 1.0), rec("a2", "A", 1.0), rec("a3", "A", 0.0, "policy_error")]
    flags, _ = run(records, drop_uniform_groups=True)
    assert all(f[0] for f in flags.values())


def test_empty_batch():
    flags, m = run([])
    assert flags == {} and m["trajectory_filter/invalid_ratio"] == 0.0


# --- one trial at a time (verl's agent loop) ----------------------------------------------------


def test_a_partial_batch_gets_the_per_trial_policy_but_no_group_rule():
    """verl's agent loop hands one trial (whole_groups=False): a lone valid trial is below
    min_valid_per_group=2, yet only the group stage (the verl sampler) may drop its group."""
    opts = TrajectoryFilterOptions(truncated="mask", drop_uniform_groups=True)
    cases = {
        "ok": (rec("ok"), KEPT, "valid"),
        "box": (rec("box", cause="sandbox_error", reward=0.0), DROPPED, "infra_failure"),
        "cut": (
            rec("cut", response_ids=[3, 4, 5, 6], loss_mask=[1] * 4, logprobs=[-0.1] * 4),
            MASKED,
            "truncated",
        ),
    }
    for trial, (record, flags, cls) in cases.items():
        batch = FilterBatch.from_records([record], max_response_length=3, whole_groups=False)
        metrics = TrajectoryFilter(opts).filter_batch(batch)
        (item,) = batch.items
        assert (item.dropped, item.train, item.in_group_stats) == flags, trial
        assert metrics[f"trajectory_filter/{cls}"] == 1.0
        assert metrics["trajectory_filter/dropped_groups"] == 0.0
        assert metrics["trajectory_filter/invalid_ratio"] == (0.0 if cls == "valid" else 1.0)
    # the same lone valid trial in a whole batch: its group is too small and goes
    whole = FilterBatch.from_records([rec("ok")])
    metrics = TrajectoryFilter(opts).filter_batch(whole)
    assert whole.items[0].dropped and metrics["trajectory_filter/dropped_groups"] == 1.0
