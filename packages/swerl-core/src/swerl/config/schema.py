"""The schema of ``config.yaml``. Every field is described; unknown keys are errors.

Components (scaffold, sandbox, engine, filters) are chosen by name; each one's options live in its
own namespace (``<kind>.options``) and are validated by the component's own model after the
plugins load (see ``load.py``). The config reference in ``docs/`` is generated from this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RunSection(Section):
    """Where a run's files land and how it is named."""

    name: str = Field("swerl", description="Run name; the run id is `<name>-<timestamp>`.")
    output_dir: Path = Field(
        Path("runs"),
        description="Parent folder of `runs/<run_id>/` (resolved config, logs, metrics, "
        "trajectories, trials, checkpoints).",
    )
    seed: int = Field(0, description="Seed for task sampling and the engine.")


class ModelSection(Section):
    """The policy model."""

    path: str = Field(
        description="Local folder of the policy model (Hugging Face layout with `config.json`)."
    )
    served_name: str = Field(
        "policy", description="Model name the policy server and the proxy expose."
    )
    dtype: Literal["bfloat16", "float16", "float32"] = Field(
        "bfloat16",
        description="Weights dtype for rollout and training (`float32` for exactness tests).",
    )
    trust_remote_code: bool = Field(
        False, description="Allow custom model code from the model folder."
    )


class RolloutSection(Section):
    """Generation: the policy server's layout and the sampling limits."""

    tensor_parallel_size: int = Field(
        1, ge=1, description="vLLM tensor-parallel size (TP) per replica."
    )
    data_parallel_size: int = Field(
        1,
        ge=1,
        description="Number of vLLM replicas (DP) on the rollout GPUs. verl starts one replica "
        "per tensor_parallel_size GPUs of them, so DP × TP should equal their count (preflight "
        "warns when it does not).",
    )
    gpu_memory_utilization: float = Field(
        0.6, gt=0, le=1, description="Fraction of GPU memory vLLM may take."
    )
    max_prompt_length: int = Field(
        8192, ge=1, description="Longest prompt (tokens) a turn may send, observations included."
    )
    max_response_length: int = Field(
        4096, ge=1, description="Most tokens the policy may generate in one trajectory."
    )
    max_model_len: int | None = Field(
        None, ge=1, description="vLLM `max_model_len`; default prompt + response lengths."
    )
    temperature: float = Field(1.0, ge=0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling threshold.")
    max_concurrent_samples: int = Field(
        8, ge=1, description="Trials run at the same time (each is one sandbox + one agent)."
    )
    max_turns: int = Field(30, ge=1, description="Most model calls per trial.")

    @property
    def model_len(self) -> int:
        return self.max_model_len or self.max_prompt_length + self.max_response_length


#: Default (low, high) clip ratios: PPO-clip per token, GSPO per sequence (its paper's values).
PPO_CLIP = (0.2, 0.2)
GSPO_CLIP = (3e-4, 4e-4)


class AlgorithmSection(Section):
    """The RL objective and batch sizes (verl's definitions)."""

    name: Literal["grpo", "gspo", "ppo"] = Field(
        "grpo",
        description="`grpo` (group advantages, PPO-clip), `gspo` (sequence-level ratio), "
        "`ppo` (critic).",
    )
    train_batch_size: int = Field(
        8, ge=1, description="Tasks per step (env `TRAIN_BSZ` overrides)."
    )
    n_resp: int = Field(
        4, ge=1, description="Samples per task (group size; env `N_RESP` overrides)."
    )
    ppo_mini_batch_size: int | None = Field(
        None, ge=1, description="Tasks per optimizer step, as in verl; default `train_batch_size`."
    )
    micro_batch_size_per_gpu: int = Field(
        1, ge=1, description="Samples per forward/backward on one GPU."
    )
    lr: float = Field(1e-6, gt=0, description="Actor learning rate.")
    kl_coef: float = Field(
        0.0, ge=0, description="KL-loss coefficient against the reference (0: off)."
    )
    clip_ratio_low: float | None = Field(
        None, gt=0, description="Lower clip; default by algorithm."
    )
    clip_ratio_high: float | None = Field(
        None, gt=0, description="Upper clip; default by algorithm."
    )
    total_steps: int = Field(100, ge=1, description="Training steps.")
    save_freq: int = Field(10, description="Checkpoint every N steps (-1: only at the end).", ge=-1)

    @property
    def mini_batch_size(self) -> int:
        return self.ppo_mini_batch_size or self.train_batch_size

    @property
    def clip_ratios(self) -> tuple[float, float]:
        """(low, high): the configured clips, else the algorithm's defaults (GSPO clips the
        sequence-level ratio, so its defaults are four orders of magnitude tighter)."""
        low, high = GSPO_CLIP if self.name == "gspo" else PPO_CLIP
        return (self.clip_ratio_low or low, self.clip_ratio_high or high)

    @property
    def loss_agg_mode(self) -> str:
        """verl's loss aggregation for this algorithm (GSPO: the mean of per-sequence means)."""
        return "seq-mean-token-mean" if self.name == "gspo" else "token-mean"

    @model_validator(mode="after")
    def mini_batch_fits(self) -> AlgorithmSection:
        if self.mini_batch_size > self.train_batch_size:
            raise ValueError(
                f"ppo_mini_batch_size ({self.mini_batch_size}) is larger than train_batch_size "
                f"({self.train_batch_size})"
            )
        return self


class TrainerSection(Section):
    """The training pool (verl's `trainer.*`)."""

    nnodes: int = Field(1, ge=1, description="Nodes in the training pool.")
    n_gpus_per_node: int = Field(8, ge=0, description="GPUs per node (0 for the CPU engine).")
    sequence_parallel_size: int = Field(
        1, ge=1, description="Ulysses sequence-parallel size (must divide the attention heads)."
    )

    @property
    def world_size(self) -> int:
        return self.nnodes * max(self.n_gpus_per_node, 1)


class FullyAsyncSection(Section):
    """Fully-async layout: separate rollout and training pools (verl `async_training.*`)."""

    staleness_threshold: float = Field(
        0.1, ge=0, description="Fraction of stale samples allowed per training batch."
    )
    trigger_parameter_sync_step: int = Field(
        4, ge=1, description="Optimizer steps between weight syncs to the rollout pool."
    )
    partial_rollout: bool = Field(
        True, description="Resume in-flight trajectories across weight updates."
    )
    rollout_nnodes: int = Field(1, ge=1, description="Nodes in the rollout pool.")
    rollout_n_gpus_per_node: int = Field(8, ge=1, description="GPUs per rollout node.")
    require_batches: int = Field(
        1, ge=1, description="Mini-batches the trainer waits for per step."
    )


class PortsSection(Section):
    """Loopback ports the run binds."""

    proxy: int = Field(
        8002, ge=1, le=65535, description="LiteLLM proxy (the agents' model endpoint)."
    )
    gateway: int = Field(8003, ge=1, le=65535, description="swerl gateway (token capture).")
    policy: int = Field(8004, ge=1, le=65535, description="Policy server (vLLM) on the CPU path.")

    @model_validator(mode="after")
    def distinct(self) -> PortsSection:
        ports = {"proxy": self.proxy, "gateway": self.gateway, "policy": self.policy}
        if len(set(ports.values())) != len(ports):
            raise ValueError(f"ports must differ: {ports}")
        return self


class ProxySection(Section):
    """The LiteLLM proxy in front of the gateway."""

    master_key_env: str = Field(
        "LITELLM_MASTER_KEY",
        description="Env var holding the proxy's master key (never written to disk or logs).",
    )


class TasksSection(Section):
    """The Harbor task set."""

    path: Path = Field(description="Folder of Harbor task folders, or one task folder.")
    include: list[str] = Field(
        default_factory=list, description="Glob patterns of task names to use (default all)."
    )
    exclude: list[str] = Field(
        default_factory=list, description="Glob patterns of task names to skip."
    )


class ComponentRef(Section):
    """A component chosen by name, with its options in its own namespace."""

    name: str = Field(description="Registered component name (`swerl plugins` lists them).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="The component's options (its own schema)."
    )


class WandbSection(Section):
    """Weights & Biases logging."""

    enabled: bool = Field(False, description="Log to wandb (offline unless a key is set).")
    project: str = Field("swerl", description="wandb project.")
    entity: str | None = Field(None, description="wandb entity (team or user).")


class LoggingSection(Section):
    """Where metrics go."""

    console: bool = Field(True, description="Print per-step metrics.")
    wandb: WandbSection = Field(default_factory=WandbSection, description="wandb settings.")


class EnvironmentSection(Section):
    """The Python environment that runs the stack."""

    venv_path: Path = Field(Path(".venv"), description="Training-stack virtual environment.")


class SwerlConfig(Section):
    """One run of swerl."""

    mode: Literal["sync", "fully_async"] = Field(
        "sync",
        description="`sync`: one loop on one host; `fully_async`: rollout and training pools "
        "on Ray.",
    )
    run: RunSection = Field(default_factory=RunSection, description="Naming and output folder.")
    model: ModelSection = Field(description="The policy model.")
    rollout: RolloutSection = Field(default_factory=RolloutSection, description="Generation.")
    algorithm: AlgorithmSection = Field(
        default_factory=AlgorithmSection, description="Objective and batches."
    )
    trainer: TrainerSection = Field(default_factory=TrainerSection, description="Training pool.")
    fully_async: FullyAsyncSection = Field(
        default_factory=FullyAsyncSection, description="Used when `mode: fully_async`."
    )
    tasks: TasksSection = Field(description="The Harbor task set.")
    scaffold: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="claude-code"), description="The agent scaffold."
    )
    sandbox: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="docker"), description="The sandbox backend."
    )
    engine: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="fsdp"), description="The training engine."
    )
    filters: list[ComponentRef] = Field(
        default_factory=list, description="Reward filters, in the order they run."
    )
    ports: PortsSection = Field(default_factory=PortsSection, description="Loopback ports.")
    proxy: ProxySection = Field(default_factory=ProxySection, description="LiteLLM proxy.")
    logging: LoggingSection = Field(default_factory=LoggingSection, description="Metrics sinks.")
    environment: EnvironmentSection = Field(
        default_factory=EnvironmentSection, description="Python environment."
    )

    @model_validator(mode="before")
    @classmethod
    def filters_by_name(cls, data: Any) -> Any:
        """Allow `filters: [trajectory, is-token]` as a short form of `{name: ...}`."""
        if isinstance(data, dict) and isinstance(data.get("filters"), list):
            data = dict(data)
            data["filters"] = [{"name": f} if isinstance(f, str) else f for f in data["filters"]]
        return data

    @model_validator(mode="after")
    def filters_unique(self) -> SwerlConfig:
        names = [f.name for f in self.filters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"filters listed more than once: {', '.join(dupes)}")
        return self

    @property
    def rollout_gpus(self) -> int:
        """The GPUs vLLM runs on: the trainer's in sync mode (colocated), the rollout pool's in
        fully-async. verl fills them with replicas of ``rollout.tensor_parallel_size`` GPUs."""
        if self.mode == "fully_async":
            return self.fully_async.rollout_nnodes * self.fully_async.rollout_n_gpus_per_node
        return self.trainer.nnodes * self.trainer.n_gpus_per_node

    def components(self) -> list[tuple[str, str, ComponentRef]]:
        """(kind, key path, ref) for every selected component."""
        refs = [
            ("scaffold", "scaffold", self.scaffold),
            ("sandbox", "sandbox", self.sandbox),
            ("engine", "engine", self.engine),
        ]
        refs += [("filter", f"filters.{i}", f) for i, f in enumerate(self.filters)]
        return refs
