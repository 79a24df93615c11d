"""The core's preflight checks: the config against the model, the machine and the task set.

Every check reads and never writes: no files, no processes left behind, no network beyond
binding a loopback socket for a moment. Each one is a function ``check(ctx)`` that adds rows to
the report; a check that crashes becomes a failed row of its own, so the others still run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from swerl.preflight.checks import components, host, layout, model, tasks
from swerl.preflight.checks.context import Context

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.plugins import PluginManager
    from swerl.preflight.report import Report

__all__ = ["CHECKS", "Context", "run_all"]

#: In the order they appear in the report: what the run is, then where it runs, then what it needs.
CHECKS: tuple[Callable[[Context], None], ...] = (
    model.check_model,
    model.check_tensor_parallel,
    model.check_sequence_parallel,
    model.check_lengths,
    layout.check_gpu_layout,
    layout.check_gpus_visible,
    layout.check_batch_sizes,
    layout.check_staleness,
    host.check_ports,
    host.check_disk,
    host.check_wandb,
    tasks.check_tasks,
    components.check_components,
)


def run_all(
    config: SwerlConfig,
    report: Report,
    *,
    pm: PluginManager | None = None,
    gpu_count: Callable[[], tuple[int, str]] | None = None,
) -> None:
    """Run every core check against ``config``, adding rows to ``report``.

    ``pm`` defaults to the process-wide plugin manager (it says which engine class is selected);
    ``gpu_count`` replaces the ``nvidia-smi`` probe (tests, or a caller that already knows).
    """
    ctx = Context.build(config, report, pm=pm, gpu_count=gpu_count)
    for check in CHECKS:
        try:
            check(ctx)
        except Exception as exc:  # one broken check must not hide the others
            name = check.__name__.removeprefix("check_").replace("_", " ")
            report.fail(
                name,
                f"the check crashed: {type(exc).__name__}: {exc}",
                "report this to the swerl maintainers (swerl-core)",
            )
