"""Entry point ``trajectory``: registers the trajectory filter and its preflight checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swerl import hookimpl
from swerl.components import Register

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report


@hookimpl
def swerl_register_filters(register: Register) -> None:
    from swerl_filter_trajectory.component import TrajectoryFilter

    register(TrajectoryFilter)


@hookimpl
def swerl_preflight_checks(config: SwerlConfig, report: Report) -> None:
    if not any(ref.name == "trajectory" for ref in config.filters):
        return
    from swerl_filter_trajectory.checks import run_checks

    run_checks(config, report)
