"""The veomni Engine: verl 0.9.1 with ``model_engine=veomni`` for MoE models, router replay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from swerl_engine_fsdp.component import VerlEngine
from swerl_engine_fsdp.options import VerlEngineOptions

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.plan import PlanContext, ProcessSpec


class VeomniEngineOptions(VerlEngineOptions):
    """Options of the veomni engine (`engine.options`)."""

    router_replay: Literal["R3", "R2", "disabled"] = Field(
        "R3",
        description="MoE router replay. `R3`: train on the experts the rollout chose "
        "(needs vLLM >= 0.22); `R2`: record routes while recomputing old logprobs and replay "
        "them in the update (not with mode fully_async, which skips that recompute); "
        "`disabled`: route afresh.",
    )
    moe_implementation: Literal["fused_triton", "fused_quack", "eager"] = Field(
        "fused_triton",
        description="veomni's MoE experts kernels (actor and reference). `fused_triton`: "
        "veomni's default, bf16/fp16 only; `fused_quack`: SM90+, needs the quack package; "
        "`eager`: plain PyTorch, any dtype (what an fp32 actor needs). verl's own default, "
        "`fused`, means quack on an H100/H200.",
    )
    expert_parallel_size: int = Field(1, ge=1, description="Expert-parallel size of the trainer.")
    fsdp_size: int = Field(
        -1, description="FSDP group size inside the trainer (-1: all the trainer's GPUs)."
    )


def veomni_overrides(config: SwerlConfig, o: VeomniEngineOptions) -> list[str]:
    """``model_engine=veomni`` and its ``actor.veomni`` block; Ulysses SP lives there too.

    verl requires ``use_remove_padding=True`` for veomni router replay; the shared overrides
    always set it.
    """
    from swerl_engine_fsdp.overrides import kv

    sp = config.trainer.sequence_parallel_size
    block = "actor_rollout_ref.actor.veomni"
    pairs: list[tuple[str, Any]] = [
        ("model_engine", "veomni"),
        (f"{block}.param_offload", o.param_offload),
        (f"{block}.optimizer_offload", o.optimizer_offload),
        (f"{block}.fsdp_size", o.fsdp_size),
        (f"{block}.ulysses_parallel_size", sp),
        (f"{block}.expert_parallel_size", o.expert_parallel_size),
        (f"{block}.router_replay.mode", o.router_replay),
        (f"{block}.moe_implementation", o.moe_implementation),
        ("actor_rollout_ref.ref.veomni.moe_implementation", o.moe_implementation),
        # R3 replays the rollout's routes, so vLLM must return them.
        ("actor_rollout_ref.rollout.enable_rollout_routing_replay", o.router_replay == "R3"),
    ]
    if config.algorithm.name == "ppo":
        pairs += [
            ("critic.veomni.ulysses_parallel_size", sp),
            ("critic.veomni.expert_parallel_size", o.expert_parallel_size),
        ]
    return kv(pairs)


class VeomniEngine(VerlEngine):
    name = "veomni"
    summary = "verl 0.9.1 with model_engine=veomni (MoE, router replay, GPU)"
    Options = VeomniEngineOptions
    ready = frozenset({"plan", "train"})
    options: VeomniEngineOptions

    def plan(self, config: SwerlConfig, ctx: PlanContext | None = None) -> list[ProcessSpec]:
        """One process: the verl driver with the veomni engine."""
        from swerl.plan import PlanContext
        from swerl_engine_fsdp.launch import verl_process

        self.require("plan")
        ctx = ctx or PlanContext.default(config)
        return [verl_process(config, ctx, self.options, veomni_overrides(config, self.options))]
