"""The core's own plugin (entry point ``core``): it loads through the same path as any other.

It contributes the config-level preflight checks (model, topology, batches, lengths, ports, disk,
wandb, fully-async staleness, the task set); components add their own through the same hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swerl import hookimpl

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report


@hookimpl
def swerl_preflight_checks(config: SwerlConfig, report: Report) -> None:
    from swerl.preflight import checks

    checks.run_all(config, report)
