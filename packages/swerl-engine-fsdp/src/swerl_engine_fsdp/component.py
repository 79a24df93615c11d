"""The fsdp Engine: verl 0.9.1 ``main_ppo`` (or ``fully_async_main``) on FSDP, dense models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from swerl.components import Engine
from swerl_engine_fsdp.options import VerlEngineOptions

if TYPE_CHECKING:
    from pathlib import Path

    from swerl.config.load import LoadedConfig
    from swerl.config.schema import SwerlConfig
    from swerl.plan import PlanContext, ProcessSpec


class FsdpEngineOptions(VerlEngineOptions):
    """Options of the fsdp engine (`engine.options`)."""

    strategy: Literal["fsdp", "fsdp2"] = Field(
        "fsdp", description="verl's FSDP implementation: `fsdp` (FSDP1) or `fsdp2`."
    )


class VerlEngine(Engine):
    """What the verl engines (fsdp, veomni) share besides the plan: the proxy's route to each
    agent-loop worker's gateway and the task parquet verl reads."""

    options: VerlEngineOptions

    def proxy_routes(self, config: SwerlConfig) -> list[dict[str, Any]]:
        """One model name per extra agent-loop worker (``routing.py``)."""
        from swerl_engine_fsdp.routing import worker_model_list

        return worker_model_list(config, self.options.agent_num_workers)

    def prepare(self, loaded: LoadedConfig, ctx: PlanContext) -> None:
        """verl's train/val parquet, one row per task (``taskdata.py``)."""
        from swerl_engine_fsdp.taskdata import build_data_files

        build_data_files(loaded, ctx)

    def collect_metrics(self, run_dir: Path) -> int:
        """verl's per-step metrics file(s) into ``metrics.jsonl`` (``metrics.py``)."""
        from swerl_engine_fsdp.metrics import collect

        return collect(run_dir)


class FsdpEngine(VerlEngine):
    name = "fsdp"
    summary = "verl 0.9.1 main_ppo on FSDP (dense models, GPU)"
    Options = FsdpEngineOptions
    ready = frozenset({"plan", "train"})
    options: FsdpEngineOptions

    def plan(self, config: SwerlConfig, ctx: PlanContext | None = None) -> list[ProcessSpec]:
        """One process: the verl driver, which starts vLLM and the trainer workers on Ray."""
        from swerl.plan import PlanContext
        from swerl_engine_fsdp import overrides as ov
        from swerl_engine_fsdp.launch import verl_process

        self.require("plan")
        ctx = ctx or PlanContext.default(config)
        o = self.options
        engine = ov.fsdp_overrides(
            config,
            strategy=o.strategy,
            param_offload=o.param_offload,
            optimizer_offload=o.optimizer_offload,
        )
        return [verl_process(config, ctx, o, engine)]
