"""The verl process of a run: entry point, environment, files, and the Ray layout notes.

``USE_NEW_VERL=1`` runs verl from a source checkout instead of the installed wheel: the checkout
(``$SWERL_VERL_PATH``, default ``repos/checkouts/verl``) goes first on ``PYTHONPATH`` for the verl
process only. See ``repos/README.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from swerl.errors import UserError
from swerl_engine_fsdp import overrides as ov

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.plan import PlanContext, ProcessSpec
    from swerl_engine_fsdp.options import VerlEngineOptions

VERL_VERSION = "0.9.1"
DEFAULT_CHECKOUT = Path("repos/checkouts/verl")
MAIN_PPO = "verl.trainer.main_ppo"
FULLY_ASYNC_MAIN = "verl.experimental.fully_async_policy.fully_async_main"
RAY_PORT = 6379


def rollout_replicas(config: SwerlConfig) -> int:
    """The vLLM replicas verl starts: one per ``tensor_parallel_size`` GPUs of the rollout's GPUs
    (the trainer's in sync mode, the rollout pool's in fully-async); verl does not read
    ``rollout.data_parallel_size`` (preflight's ``gpu layout`` warns when it disagrees)."""
    return max(config.rollout_gpus // config.rollout.tensor_parallel_size, 1)


def use_new_verl(env: Mapping[str, str]) -> bool:
    return env.get("USE_NEW_VERL", "").strip().lower() in ("1", "true", "yes", "on")


def verl_checkout(env: Mapping[str, str], base_dir: Path) -> Path:
    """Where the verl source checkout should be (it may be missing)."""
    raw = env.get("SWERL_VERL_PATH") or str(DEFAULT_CHECKOUT)
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base_dir / path


def checkout_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable verl checkout, or None."""
    if not path.is_dir():
        return f"there is no verl checkout at {path}"
    if not (path / "verl" / "__init__.py").is_file():
        return f"{path} is not a verl source checkout (no verl/__init__.py in it)"
    return None


def checkout_fix(path: Path) -> str:
    return (
        f"clone it: git clone https://github.com/verl-project/verl {path} (repos/README.md), "
        "set SWERL_VERL_PATH to an existing checkout, or unset USE_NEW_VERL"
    )


def metrics_path(ctx: PlanContext, now: float | None = None) -> Path:
    """Where verl's FileLogger writes this launch's per-step metrics (one JSON line per step).

    One file per launch: verl opens it for writing, so a resumed run's launch must not reuse
    the first launch's file.
    """
    from swerl.plan import time_stamp

    return ctx.run_dir / "logs" / f"verl_metrics_{time_stamp(now)}.jsonl"


def verl_env(config: SwerlConfig, ctx: PlanContext) -> dict[str, str]:
    """Variables the verl process gets on top of the launcher's environment."""
    from swerl.plan import env_ref

    env = {"SWERL_RUN_DIR": str(ctx.run_dir), "VERL_FILE_LOGGER_PATH": str(metrics_path(ctx))}
    if use_new_verl(ctx.env):
        path = verl_checkout(ctx.env, ctx.base_dir)
        problem = checkout_problem(path)
        if problem:
            raise UserError(f"USE_NEW_VERL=1 but {problem}. Fix: {checkout_fix(path)}.")
        inherited = ctx.env.get("PYTHONPATH")
        env["PYTHONPATH"] = f"{path}:{inherited}" if inherited else str(path)
    wandb = config.logging.wandb
    if wandb.enabled:
        if ctx.env.get("WANDB_API_KEY"):
            env["WANDB_API_KEY"] = env_ref("WANDB_API_KEY")
        else:
            env["WANDB_MODE"] = "offline"
        if wandb.entity:
            env["WANDB_ENTITY"] = wandb.entity
    return env


def entry_module(config: SwerlConfig) -> str:
    return FULLY_ASYNC_MAIN if config.mode == "fully_async" else MAIN_PPO


def mode_overrides(config: SwerlConfig) -> list[str]:
    if config.mode == "fully_async":
        return ov.fully_async_overrides(config)
    return ov.sync_overrides() + ov.epochs_override(config)


def ray_note(config: SwerlConfig) -> str:
    """How to bring up the Ray cluster a multi-node run joins (not started by swerl)."""
    nodes = config.trainer.nnodes + (
        config.fully_async.rollout_nnodes if config.mode == "fully_async" else 0
    )
    if nodes <= 1:
        return "verl starts a local Ray instance on this host."
    return (
        f"needs a Ray cluster of {nodes} nodes before it starts: on this (head) node "
        f"`ray start --head --port={RAY_PORT}`, on each of the other {nodes - 1} "
        f"`ray start --address=<head-ip>:{RAY_PORT}`, all from the same environment. "
        "The proxy binds 127.0.0.1 on this host only; trials on other nodes need their own "
        "(issue #4)."
    )


def verl_process(
    config: SwerlConfig,
    ctx: PlanContext,
    options: VerlEngineOptions,
    engine_overrides: list[str],
) -> ProcessSpec:
    """The one verl driver process: ``python -m <entry> <overrides>``.

    Order: the engine selection, shared keys, the algorithm, the engine block, the mode, the
    reward filters, then the ``overrides`` option; a later value for a key replaces an earlier
    one.
    """
    from swerl.plan import ProcessSpec

    common = ov.common_overrides(
        config,
        ctx,
        gradient_checkpointing=options.gradient_checkpointing,
        use_dynamic_bsz=options.use_dynamic_bsz,
        ppo_max_token_len_per_gpu=options.ppo_max_token_len_per_gpu,
        agent_num_workers=options.agent_num_workers,
    )
    overrides = ov.merge(
        common,
        ov.algorithm_overrides(config),
        engine_overrides,
        ov.critic_overrides(config, ctx),
        mode_overrides(config),
        ov.filter_overrides(config, ctx),
        options.overrides,
    )
    train, val = ov.data_files(ctx)
    checkout = ""
    if use_new_verl(ctx.env):
        checkout = f" verl runs from the checkout at {verl_checkout(ctx.env, ctx.base_dir)}."
    return ProcessSpec(
        name="verl-fully-async" if config.mode == "fully_async" else "verl-trainer",
        argv=[ctx.venv_bin(config, "python"), "-m", entry_module(config), *overrides],
        env=verl_env(config, ctx),
        cwd=str(ctx.base_dir),
        files={ov.agent_loop_path(ctx): ov.agent_loop_yaml()},
        generated={
            train: f"one row per task under {ctx.resolve(config.tasks.path)} "
            "(agent_name swerl_agent), built at launch",
            val: "the same rows; unused while trainer.test_freq=-1 (verl requires the file)",
        },
        note=(
            f"verl {VERL_VERSION} starts vLLM ({rollout_replicas(config)} replica(s) of "
            f"TP {config.rollout.tensor_parallel_size}) and the agent-loop workers. "
            f"Each agent-loop worker ({ov.AGENT_LOOP_TARGET}) hosts a swerl gateway from "
            f":{config.ports.gateway} on. {ray_note(config)}{checkout}"
        ),
    )
