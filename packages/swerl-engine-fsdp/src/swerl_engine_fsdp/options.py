"""Options every verl engine takes (fsdp, veomni): batching, memory, and an escape hatch."""

from __future__ import annotations

from pydantic import Field, field_validator

from swerl.components import ComponentOptions


class VerlEngineOptions(ComponentOptions):
    """Options shared by the verl engines (`engine.options`)."""

    param_offload: bool = Field(
        False, description="Offload parameters to CPU between steps (actor and reference)."
    )
    optimizer_offload: bool = Field(False, description="Offload optimizer state to CPU.")
    gradient_checkpointing: bool = Field(
        True, description="Recompute activations in the backward pass (long agent trajectories)."
    )
    use_dynamic_bsz: bool = Field(
        False,
        description="Pack micro-batches by token count instead of "
        "`algorithm.micro_batch_size_per_gpu` samples.",
    )
    ppo_max_token_len_per_gpu: int | None = Field(
        None, ge=1, description="Token budget per GPU micro-batch with `use_dynamic_bsz`."
    )
    agent_num_workers: int = Field(
        8, ge=1, description="verl agent-loop worker actors (each runs many trials concurrently)."
    )
    overrides: list[str] = Field(
        default_factory=list,
        description="Extra Hydra overrides for verl, applied last (`key=value`, `+key=value` "
        "for keys verl's config lacks). For what the config does not cover yet.",
    )

    @field_validator("overrides")
    @classmethod
    def look_like_overrides(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if "=" not in o or o.startswith("=")]
        if bad:
            raise ValueError(f"not Hydra overrides (need key=value): {bad}")
        return v
