"""Entry point: registers the veomni Engine component and its preflight checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swerl import hookimpl
from swerl.components import Register

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report


@hookimpl
def swerl_register_engines(register: Register) -> None:
    from swerl_engine_veomni.component import VeomniEngine

    register(VeomniEngine)


@hookimpl
def swerl_preflight_checks(config: SwerlConfig, report: Report) -> None:
    """Only when the config selects this engine: the verl checks, veomni, router replay, the
    MoE kernels."""
    if config.engine.name != "veomni":
        return
    from swerl_engine_fsdp import checks as verl_checks
    from swerl_engine_fsdp.overrides import bypass_mode
    from swerl_engine_veomni import checks
    from swerl_engine_veomni.component import VeomniEngineOptions

    verl_checks.check_gpu_engine(config, report)
    verl_checks.check_verl(report)
    vllm = verl_checks.check_vllm(report)
    checks.check_veomni_installed(report)
    options = report.options("engine")
    if not isinstance(options, VeomniEngineOptions):
        options = VeomniEngineOptions.model_validate(config.engine.options)
    bypass = bypass_mode(config, checks.planned_overrides(config, report, options))
    checks.check_router_replay(config, options, vllm, report, bypass)
    checks.check_moe_kernels(config, options, report)
