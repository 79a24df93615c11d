"""Entry point: registers the local Engine component and its preflight checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from swerl import hookimpl
from swerl.components import Register

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report


@hookimpl
def swerl_register_engines(register: Register) -> None:
    from swerl_engine_local.component import LocalEngine

    register(LocalEngine)


@hookimpl
def swerl_preflight_checks(config: SwerlConfig, report: Report) -> None:
    """Only when the config selects this engine."""
    if config.engine.name != "local":
        return
    from swerl_engine_local.checks import check_algorithm, check_mode, check_policy_env
    from swerl_engine_local.component import LocalEngineOptions

    options = report.options("engine")
    if not isinstance(options, LocalEngineOptions):
        options = LocalEngineOptions.model_validate(config.engine.options)
    check_policy_env(options, report, Path.cwd())
    check_algorithm(config, report)
    check_mode(config, report)
