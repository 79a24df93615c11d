"""The length filter: its options, `swerl check`, and a training step's filter stage on real
records (swerl.testing's rollout: the real rollout and gateway code with a fake policy whose
replies the tests choose, a fake sandbox, scaffold and engine)."""

from __future__ import annotations

import pytest

from swerl.config.load import ConfigError
from swerl.testing import fake_policy, reply_ids

LONG, SHORT = reply_ids("x" * 30), reply_ids("ok")  # 31 and 3 sampled tokens (with the EOS)


def length(**options: object) -> list[dict[str, object]]:
    return [{"name": "length", "options": options}]


def test_the_entry_point_registers_the_filter(pm) -> None:
    reg = pm.get("filter", "length")
    assert reg.dist == "swerl-filter-length"
    assert reg.cls.is_ready("apply") and not reg.cls.is_ready("plan")


def test_options_are_validated(cfg, load) -> None:
    loaded = load(cfg(filters=length(max_tokens=16, action="mask")))
    assert loaded.options["filters.0"].model_dump() == {"max_tokens": 16, "action": "mask"}
    with pytest.raises(ConfigError) as err:
        load(cfg(filters=length(max_tokens=0, action="trim")))
    assert "filters.0.options.max_tokens" in str(err.value)
    assert "filters.0.options.action" in str(err.value)


def test_check_warns_about_a_limit_no_trial_reaches(cfg, check) -> None:
    rollout = {"max_turns": 2, "max_response_length": 100}
    (row,) = check(cfg(rollout=rollout, filters=length(max_tokens=200))).by_name("length filter")
    assert row.status == "warn" and "never fires" in row.detail
    (row,) = check(cfg(rollout=rollout, filters=length(max_tokens=50))).by_name("length filter")
    assert row.status == "pass"


def scripted(*replies: list[int]):
    policy = fake_policy()
    for ids in replies:
        policy.push(ids)
    return policy


def test_over_long_trajectories_are_dropped(rollout) -> None:
    result = rollout(n=4, policy=scripted(LONG, SHORT, LONG, SHORT), filters=length(max_tokens=10))
    long_ids = [r.trial_id for r in result.records if r.trained_tokens > 10]
    assert len(long_ids) == 2
    for item in result.step.batch.items:
        assert item.dropped == (item.trial_id in long_ids)
    assert {s.record.trial_id for s in result.step.samples}.isdisjoint(long_ids)
    assert result.metrics["length_filter/over_limit"] == 2.0
    assert result.metrics["length_filter/over_limit_ratio"] == 0.5
    assert result.metrics["length_filter/max_sampled_tokens"] == 31.0


def test_over_long_trajectories_can_be_masked_instead(rollout) -> None:
    result = rollout(
        n=2, policy=scripted(LONG, SHORT), filters=length(max_tokens=10, action="mask")
    )
    first, second = result.records
    samples = {s.record.trial_id: s for s in result.step.samples}
    assert not any(samples[first.trial_id].mask)  # in the batch, no loss
    assert samples[first.trial_id].advantage == 0.0
    assert any(samples[second.trial_id].mask)
    assert not result.step.item(first.trial_id).in_group_stats
    assert result.metrics["length_filter/over_limit"] == 1.0
