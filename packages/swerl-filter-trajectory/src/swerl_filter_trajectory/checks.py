"""Preflight checks of the trajectory filter: settings that train on bad data or on nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swerl_filter_trajectory.component import TrajectoryFilterOptions

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report

NAME = "trajectory"


def _options(config: SwerlConfig, report: Report) -> tuple[str, TrajectoryFilterOptions] | None:
    """(key path, options) of this filter in the config, or None when it is not listed."""
    for i, ref in enumerate(config.filters):
        if ref.name == NAME:
            key = f"filters.{i}"
            opts = report.options(key)
            if not isinstance(opts, TrajectoryFilterOptions):
                opts = TrajectoryFilterOptions.model_validate(ref.options)
            return key, opts
    return None


def run_checks(config: SwerlConfig, report: Report) -> None:
    found = _options(config, report)
    if found is None:
        return
    key, opts = found
    name = "trajectory filter"
    by_policy: dict[str, list[str]] = {"drop": [], "mask": [], "keep": []}
    for cls, policy in opts.policies().items():
        by_policy[policy].append(cls)
    summary = "; ".join(f"{p}: {', '.join(c)}" for p, c in by_policy.items() if c)
    summary += f"; groups with < {opts.min_valid_per_group} valid are dropped"
    if opts.drop_uniform_groups:
        summary += "; groups with equal rewards are dropped"

    n_resp = config.algorithm.n_resp
    clean = True
    if opts.min_valid_per_group > n_resp:
        clean = False
        report.fail(
            name,
            f"{key}.options.min_valid_per_group {opts.min_valid_per_group} is more than "
            f"algorithm.n_resp {n_resp}: every group would be dropped",
            f"set {key}.options.min_valid_per_group to at most {n_resp}",
        )
    if opts.fidelity_failure == "keep":
        clean = False
        report.warn(
            name,
            f"{key}.options.fidelity_failure is keep: the update would train on tokens that "
            "were not the ones sampled",
            f"set {key}.options.fidelity_failure to drop (or mask)",
        )
    if config.mode == "fully_async":
        clean = False
        report.warn(
            name,
            "mode is fully_async: verl's fully-async trainer has no V1 sampler, so only the "
            "per-class drop/mask runs (in the agent loop); the group rules, keeping masked trials "
            "out of their group's mean and std, and the trajectory_filter/* metrics do not",
            "use mode: sync for the whole filter (docs/run-training/filters.md)",
        )
    if clean:
        report.passed(name, summary)
