"""Entry point ``k8s``: registers the k8s sandbox and its preflight checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swerl import hookimpl
from swerl.components import Register

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report


@hookimpl
def swerl_register_sandboxes(register: Register) -> None:
    from swerl_sandbox_k8s.component import K8sSandbox

    register(K8sSandbox)


@hookimpl
def swerl_preflight_checks(config: SwerlConfig, report: Report) -> None:
    if config.sandbox.name != "k8s":
        return
    from swerl_sandbox_k8s.checks import run_checks

    run_checks(config, report)
