"""Entry point: registers the trajectory RewardFilter component."""

from __future__ import annotations

from swerl import hookimpl
from swerl.components import Register


@hookimpl
def swerl_register_filters(register: Register) -> None:
    from swerl_filter_trajectory.component import TrajectoryFilter

    register(TrajectoryFilter)
