"""Entry point: registers the fsdp Engine component and its preflight checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swerl import hookimpl
from swerl.components import Register

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report


@hookimpl
def swerl_register_engines(register: Register) -> None:
    from swerl_engine_fsdp.component import FsdpEngine

    register(FsdpEngine)


@hookimpl
def swerl_preflight_checks(config: SwerlConfig, report: Report) -> None:
    """Only when the config selects this engine: verl and vLLM versions, GPUs."""
    if config.engine.name != "fsdp":
        return
    from swerl_engine_fsdp import checks

    checks.check_gpu_engine(config, report)
    checks.check_verl(report)
    checks.check_vllm(report)
