"""The fsdp Engine: verl 0.9.1 ``main_ppo`` (or ``fully_async_main``) on FSDP, dense models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from swerl.components import Engine
from swerl_engine_fsdp.options import VerlEngineOptions

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.plan import PlanContext, ProcessSpec


class FsdpEngineOptions(VerlEngineOptions):
    """Options of the fsdp engine (`engine.options`)."""

    strategy: Literal["fsdp", "fsdp2"] = Field(
        "fsdp", description="verl's FSDP implementation: `fsdp` (FSDP1) or `fsdp2`."
    )


class FsdpEngine(Engine):
    name = "fsdp"
    summary = "verl 0.9.1 main_ppo on FSDP (dense models, GPU)"
    Options = FsdpEngineOptions
    ready = frozenset({"plan"})
    pending = (
        "training needs swerl's verl agent loop and gateway (issues #3, #4); today it can only plan"
    )
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
