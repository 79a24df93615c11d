"""SwerlConfig → Hydra overrides for verl 0.9.1 (``main_ppo`` and ``fully_async_main``).

Shared by the fsdp and veomni engines; each adds its own engine block (:func:`fsdp_overrides`,
the veomni package's own). ``tests/test_verl_compose.py`` composes the result against verl's own
Hydra config, so a key verl renamed or removed fails a test instead of a run. Keys verl's yaml
does not declare would need a ``+`` prefix; today none does.

Nothing here imports verl: ``swerl plan`` must stay fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.plan import PlanContext

#: verl's registry name and class of the agent loop swerl registers (issue #4 adds the class).
AGENT_LOOP_NAME = "swerl_agent"
AGENT_LOOP_TARGET = "swerl_engine_fsdp.agent_loop.SwerlAgentLoop"

#: GSPO clip ratios from verl's examples/gspo_trainer (sequence-level ratios sit close to 1).


def value(v: Any) -> str:
    """A Python value as Hydra override syntax."""
    if isinstance(v, bool):
        return "True" if v else "False"
    if v is None:
        return "null"
    if isinstance(v, list | tuple):
        return "[" + ",".join(value(x) for x in v) + "]"
    return str(v)


def kv(pairs: Iterable[tuple[str, Any]]) -> list[str]:
    return [f"{k}={value(v)}" for k, v in pairs]


def override_key(override: str) -> str:
    """The config key an override sets (``+a.b=1`` → ``a.b``)."""
    return override.split("=", 1)[0].lstrip("+~")


def override_value(overrides: Iterable[str], key: str) -> str | None:
    """The value the last override setting ``key`` gives it (stripped), or None if none does."""
    value = None
    for override in overrides:
        name, eq, rest = override.partition("=")
        if eq and override_key(name) == key:
            value = rest.strip()
    return value


def merge(*groups: Iterable[str]) -> list[str]:
    """Concatenate override groups; a later value for a key replaces the earlier one in place,
    so the command line names each key once (Hydra would otherwise apply both, silently)."""
    out: dict[str, str] = {}
    for group in groups:
        for override in group:
            out[override_key(override)] = override
    return list(out.values())


def data_files(ctx: PlanContext) -> tuple[str, str]:
    data = ctx.run_dir / "data"
    return str(data / "train.parquet"), str(data / "val.parquet")


def agent_loop_path(ctx: PlanContext) -> str:
    return str(ctx.run_dir / "agent_loop.yaml")


def agent_loop_yaml() -> str:
    """verl's agent-loop registration file: one entry, swerl's loop."""
    return f"- name: {AGENT_LOOP_NAME}\n  _target_: {AGENT_LOOP_TARGET}\n"


def algorithm_overrides(config: SwerlConfig) -> list[str]:
    """Advantage estimator, policy loss and its clip ratios, KL loss."""
    algo = config.algorithm
    actor = "actor_rollout_ref.actor"
    pairs: list[tuple[str, Any]] = []
    if algo.name == "ppo":
        pairs.append(("algorithm.adv_estimator", "gae"))
    else:  # grpo and gspo share group-relative advantages; gspo changes the ratio and the loss
        pairs.append(("algorithm.adv_estimator", "grpo"))
    low, high = algo.clip_ratios
    if algo.name == "gspo":
        pairs += [
            (f"{actor}.policy_loss.loss_mode", "gspo"),
            (f"{actor}.loss_agg_mode", algo.loss_agg_mode),
            (f"{actor}.clip_ratio_c", 10.0),
        ]
    pairs += [
        (f"{actor}.clip_ratio_low", low),
        (f"{actor}.clip_ratio_high", high),
        (f"{actor}.use_kl_loss", algo.kl_coef > 0),
    ]
    if algo.kl_coef > 0:
        pairs.append((f"{actor}.kl_loss_coef", algo.kl_coef))
    return kv(pairs)


def common_overrides(
    config: SwerlConfig,
    ctx: PlanContext,
    *,
    gradient_checkpointing: bool,
    use_dynamic_bsz: bool,
    ppo_max_token_len_per_gpu: int | None,
    agent_num_workers: int,
) -> list[str]:
    """Data, model, actor batches, rollout (vLLM), agent loop and trainer: engine-independent."""
    algo, roll, model = config.algorithm, config.rollout, config.model
    train, val = data_files(ctx)
    ar = "actor_rollout_ref"
    pairs: list[tuple[str, Any]] = [
        ("data.train_files", train),
        ("data.val_files", val),
        ("data.train_batch_size", algo.train_batch_size),
        ("data.max_prompt_length", roll.max_prompt_length),
        ("data.max_response_length", roll.max_response_length),
        ("data.seed", config.run.seed),
        (f"{ar}.model.path", ctx.resolve(model.path)),
        (f"{ar}.model.trust_remote_code", model.trust_remote_code),
        # Needed by sequence parallelism and by veomni's router replay; cheaper anyway.
        (f"{ar}.model.use_remove_padding", True),
        (f"{ar}.model.enable_gradient_checkpointing", gradient_checkpointing),
        (f"{ar}.actor.optim.lr", algo.lr),
        (f"{ar}.actor.ppo_mini_batch_size", algo.mini_batch_size),
        (f"{ar}.actor.ppo_micro_batch_size_per_gpu", algo.micro_batch_size_per_gpu),
        (f"{ar}.actor.use_dynamic_bsz", use_dynamic_bsz),
        # verl's validate_config wants the recompute micro-batches too (old logprobs, reference).
        (f"{ar}.rollout.log_prob_micro_batch_size_per_gpu", algo.micro_batch_size_per_gpu),
        (f"{ar}.ref.log_prob_micro_batch_size_per_gpu", algo.micro_batch_size_per_gpu),
    ]
    if ppo_max_token_len_per_gpu is not None:
        pairs.append((f"{ar}.actor.ppo_max_token_len_per_gpu", ppo_max_token_len_per_gpu))
    rollout = f"{ar}.rollout"
    pairs += [
        (f"{rollout}.name", "vllm"),
        (f"{rollout}.tensor_model_parallel_size", roll.tensor_parallel_size),
        (f"{rollout}.gpu_memory_utilization", roll.gpu_memory_utilization),
        (f"{rollout}.n", algo.n_resp),
        (f"{rollout}.max_model_len", roll.model_len),
        (f"{rollout}.dtype", model.dtype),
        (f"{rollout}.temperature", roll.temperature),
        (f"{rollout}.top_p", roll.top_p),
        (f"{rollout}.seed", config.run.seed),
        # The agent loop returns the sampled logprobs; rollout correction needs them.
        (f"{rollout}.calculate_log_probs", True),
        (f"{rollout}.agent.default_agent_loop", AGENT_LOOP_NAME),
        (f"{rollout}.agent.agent_loop_config_path", agent_loop_path(ctx)),
        (f"{rollout}.agent.num_workers", agent_num_workers),
    ]
    wandb = config.logging.wandb
    # "file": verl's FileLogger writes every step's metrics to $VERL_FILE_LOGGER_PATH (launch.py).
    logger = ["console", "file"] + (["wandb"] if wandb.enabled else [])
    pairs += [
        ("trainer.logger", logger),
        ("trainer.project_name", wandb.project),
        ("trainer.experiment_name", ctx.run_id),
        ("trainer.n_gpus_per_node", config.trainer.n_gpus_per_node),
        ("trainer.nnodes", config.trainer.nnodes),
        ("trainer.save_freq", algo.save_freq),
        # No held-out validation: reward comes from the task's tests during training.
        ("trainer.test_freq", -1),
        ("trainer.val_before_train", False),
        ("trainer.total_training_steps", algo.total_steps),
        ("trainer.default_local_dir", ctx.run_dir / "checkpoints"),
        ("trainer.resume_mode", "auto"),
    ]
    return kv(pairs)


def critic_overrides(config: SwerlConfig, ctx: PlanContext) -> list[str]:
    """PPO's value model: the policy's weights, the same micro batch. verl enables the critic
    itself when the advantage estimator is ``gae``."""
    if config.algorithm.name != "ppo":
        return []
    return kv(
        [
            ("critic.model.path", ctx.resolve(config.model.path)),
            ("critic.model.trust_remote_code", config.model.trust_remote_code),
            ("critic.model.use_remove_padding", True),
            ("critic.ppo_micro_batch_size_per_gpu", config.algorithm.micro_batch_size_per_gpu),
        ]
    )


def fsdp_overrides(
    config: SwerlConfig, *, strategy: str, param_offload: bool, optimizer_offload: bool
) -> list[str]:
    """verl's default engine (``model_engine=dp``): FSDP strategy, offload, Ulysses SP.

    ``actor.ulysses_sequence_parallel_size`` is deprecated in 0.9.1; the engine block's key is
    the live one, and ref and critic do not inherit it from there, so each gets it explicitly.
    """
    sp = config.trainer.sequence_parallel_size
    ar = "actor_rollout_ref"
    pairs: list[tuple[str, Any]] = [
        (f"{ar}.actor.strategy", strategy),
        (f"{ar}.actor.fsdp_config.param_offload", param_offload),
        (f"{ar}.actor.fsdp_config.optimizer_offload", optimizer_offload),
        (f"{ar}.actor.fsdp_config.ulysses_sequence_parallel_size", sp),
        (f"{ar}.ref.fsdp_config.param_offload", param_offload),
        (f"{ar}.ref.fsdp_config.ulysses_sequence_parallel_size", sp),
    ]
    if config.model.dtype in ("bfloat16", "float16"):  # FSDP mixed precision has no fp32 mode
        pairs.append((f"{ar}.actor.fsdp_config.dtype", config.model.dtype))
    if config.algorithm.name == "ppo":
        pairs += [
            ("critic.strategy", strategy),
            ("critic.fsdp.ulysses_sequence_parallel_size", sp),
        ]
    return kv(pairs)


def sync_overrides() -> list[str]:
    """``main_ppo`` V1 trainer, synchronous: generate a batch, then update, then sync weights."""
    return kv([("trainer.v1.trainer_mode", "sync")])


def fully_async_overrides(config: SwerlConfig) -> list[str]:
    """``fully_async_main``: a rollout pool and a training pool, streamed through a queue.

    verl asserts ``hybrid_engine=False``, ``train_batch_size=0`` and ``gen_batch_size=1``.
    A trainer step consumes ``ppo_mini_batch_size × require_batches`` prompts, so the rollouter
    must produce that many per step for ``total_steps`` steps.
    """
    fa, algo = config.fully_async, config.algorithm
    prompts = algo.total_steps * algo.mini_batch_size * fa.require_batches
    return kv(
        [
            ("async_training.staleness_threshold", fa.staleness_threshold),
            ("async_training.trigger_parameter_sync_step", fa.trigger_parameter_sync_step),
            ("async_training.partial_rollout", fa.partial_rollout),
            ("async_training.require_batches", fa.require_batches),
            ("rollout.nnodes", fa.rollout_nnodes),
            ("rollout.n_gpus_per_node", fa.rollout_n_gpus_per_node),
            ("rollout.n", algo.n_resp),
            ("rollout.total_rollout_steps", prompts),
            ("actor_rollout_ref.hybrid_engine", False),
            ("data.train_batch_size", 0),
            ("data.gen_batch_size", 1),
            # Steps bound the run, not epochs: every epoch holds at least one task.
            ("trainer.total_epochs", prompts),
        ]
    )


def filter_overrides(config: SwerlConfig, ctx: PlanContext) -> list[str]:
    """Each selected reward filter's own overrides, in the configured order."""
    out: list[str] = []
    for f in ctx.filters:
        out += f.verl_overrides(config)
    return out


BYPASS_KEY = "algorithm.rollout_correction.bypass_mode"


def bypass_mode(config: SwerlConfig, overrides: Iterable[str]) -> bool:
    """verl's effective ``rollout_correction.bypass_mode``: on in ``fully_async_ppo_trainer``,
    off in ``ppo_trainer``, unless an override (a reward filter's, say) sets it."""
    value = override_value(overrides, BYPASS_KEY)
    return config.mode == "fully_async" if value is None else value.lower() == "true"


def epochs_override(config: SwerlConfig) -> list[str]:
    """Steps bound a sync run, not epochs (verl stops at whichever comes first)."""
    return kv([("trainer.total_epochs", config.algorithm.total_steps)])
