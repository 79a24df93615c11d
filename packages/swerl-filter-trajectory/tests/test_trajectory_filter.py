"""trajectory filter options and preflight checks, through the real plugin manager."""

from __future__ import annotations

import pytest

from swerl.config.load import ConfigError
from swerl.preflight import Status
from swerl_filter_trajectory.component import TrajectoryFilterOptions


def traj(**options):
    return {"name": "trajectory", "options": options}


def rows(report):
    return [(c.status, c.detail, c.fix) for c in report.checks if c.name == "trajectory filter"]


# --- options ------------------------------------------------------------------------------------


def test_bad_options_name_their_key_path(load, cfg):
    text = cfg(
        filters=["stub", traj(infra_failure="keep", truncated="ignore", min_valid_per_group=0)]
    )
    with pytest.raises(ConfigError) as info:
        load(text)
    issues = {i.path: i.message for i in info.value.issues}
    assert set(issues) == {
        "filters.1.options.infra_failure",
        "filters.1.options.truncated",
        "filters.1.options.min_valid_per_group",
    }
    assert "infra failures never count as reward 0" in issues["filters.1.options.infra_failure"]
    assert "'drop', 'mask' or 'keep'" in issues["filters.1.options.truncated"]


@pytest.mark.parametrize("policy", ["drop", "mask"])
def test_infra_failures_may_be_dropped_or_masked(policy):
    assert TrajectoryFilterOptions(infra_failure=policy).infra_failure == policy


def test_short_form_selects_the_defaults(load, cfg):
    opts = load(cfg(filters=["trajectory"])).options["filters.0"]
    assert isinstance(opts, TrajectoryFilterOptions)
    assert opts.policies() == {
        "infra_failure": "drop",
        "agent_failure": "keep",
        "fidelity_failure": "drop",
        "truncated": "keep",
    }
    assert (opts.min_valid_per_group, opts.drop_uniform_groups) == (2, False)


@pytest.mark.parametrize("capability", ["apply", "plan"])
def test_applies_and_plans(pm, capability):
    pm.get("filter", "trajectory").cls.require(capability)


# --- preflight ----------------------------------------------------------------------------------


def test_checks_only_run_when_listed(check, cfg):
    assert rows(check(cfg(filters=["stub"]))) == []


def test_summary_of_what_the_filter_does(check, cfg):
    text = cfg(filters=[traj(truncated="mask", drop_uniform_groups=True)])
    assert rows(check(text)) == [
        (
            Status.PASS,
            "drop: infra_failure, fidelity_failure; mask: truncated; keep: agent_failure; "
            "groups with < 2 valid are dropped; groups with equal rewards are dropped",
            "",
        )
    ]


def test_group_minimum_above_the_group_size_fails(check, cfg):
    text = cfg(filters=["stub", traj(min_valid_per_group=5)], algorithm={"n_resp": 4})
    ((status, detail, fix),) = rows(check(text))
    assert status is Status.FAIL
    assert "filters.1.options.min_valid_per_group 5 is more than algorithm.n_resp 4" in detail
    assert fix == "set filters.1.options.min_valid_per_group to at most 4"


def test_keeping_fidelity_failures_warns(check, cfg):
    text = cfg(filters=[traj(fidelity_failure="keep", min_valid_per_group=9)])
    found = rows(check(text))
    assert [s for s, _, _ in found] == [Status.FAIL, Status.WARN]
    assert "tokens that were not the ones sampled" in found[1][1]


def test_fully_async_warns_that_the_group_stage_does_not_run(check, cfg):
    ((status, detail, fix),) = rows(check(cfg(filters=[traj()], mode="fully_async")))
    assert status is Status.WARN
    assert "group rules" in detail and "trajectory_filter/* metrics" in detail
    assert fix.startswith("use mode: sync")
