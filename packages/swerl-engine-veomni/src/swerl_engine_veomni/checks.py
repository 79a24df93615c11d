"""Preflight checks of the veomni engine, on top of the verl ones it shares with fsdp."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, cast

from swerl_engine_fsdp import checks as verl_checks

if TYPE_CHECKING:
    from swerl.components import RewardFilter
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report
    from swerl_engine_veomni.component import VeomniEngineOptions

# veomni 0.1.12 pins datasets<=2.21, which would move the whole lock (verl uses datasets 5.x);
# installed without its dependencies it imports fine with verl's veomni engine (notes/verl.md §5).
INSTALL = "pip install --no-deps veomni==0.1.12"


def check_veomni_installed(report: Report) -> None:
    """``veomni`` importable (found, not imported: importing it pulls in torch). Missing, the run
    would fail minutes into verl's launch, so it fails here, as missing verl or vLLM does."""
    if importlib.util.find_spec("veomni") is None:
        report.fail(
            "veomni",
            "the veomni package is not installed: verl's veomni engine cannot start",
            f"{INSTALL} (veomni 0.1.12; see repos/manifest.toml)",
        )
    else:
        version = verl_checks.installed("veomni") or "unknown version"
        report.passed("veomni", f"veomni {version}")


def check_router_replay(
    config: SwerlConfig,
    options: VeomniEngineOptions,
    vllm: str | None,
    report: Report,
    bypass: bool,
) -> None:
    """R2 cannot run when verl skips the old-logprob recompute; R3 needs vLLM >= 0.22."""
    mode = options.router_replay
    name = "veomni router replay"
    if mode == "R2" and bypass:
        report.fail(
            name,
            "R2 records routes while recomputing old logprobs, but verl skips that recompute "
            f"here (algorithm.rollout_correction.bypass_mode=True, mode {config.mode})",
            "set engine.options.router_replay: R3 (or disabled), or select the is-token filter, "
            "which turns bypass mode off",
        )
    elif mode == "R3" and vllm is not None and verl_checks.version_tuple(vllm) < (0, 22):
        report.fail(
            name,
            f"R3 needs vLLM >= 0.22 to return the rollout's routes; vLLM {vllm} is installed",
            "uv sync --extra gpu (vLLM 0.24.0), or set engine.options.router_replay: R2",
        )
    elif mode == "R3":
        report.passed(name, "R3: trains on the experts the rollout chose (needs vLLM >= 0.22)")
    else:
        report.passed(name, mode)


def experts(config: SwerlConfig) -> int | None:
    """The policy's expert count from its config.json; None for a dense or unreadable model
    (an unreadable one is the model check's failure, not this one's)."""
    from swerl.preflight.checks.model_info import ModelConfigError, load_model_info

    try:
        return load_model_info(Path(config.model.path)).experts
    except ModelConfigError:
        return None


def mixed_precision(options: VeomniEngineOptions, role: str) -> bool:
    """verl's veomni default (True) unless an override sets ``<role>.veomni.mixed_precision``."""
    from swerl_engine_fsdp.overrides import override_value

    value = override_value(options.overrides, f"actor_rollout_ref.{role}.veomni.mixed_precision")
    return value is None or value.lower() not in ("false", "0")


def check_moe_kernels(config: SwerlConfig, options: VeomniEngineOptions, report: Report) -> None:
    """veomni's fused triton experts take bf16/fp16 only. veomni loads a model in fp32 and
    computes in bf16 through FSDP's mixed precision, but it turns FSDP on only for more than one
    trainer GPU (``parallel_state.fsdp_enabled``: fsdp_size > 1). So on one GPU those kernels stop
    the first forward (``AssertionError: torch.float32``, measured on an H100) unless mixed
    precision is off (the model is then loaded in bf16), for the actor and, with a KL loss, for
    the reference."""
    name = "veomni MoE kernels"
    gpus = config.trainer.nnodes * config.trainer.n_gpus_per_node
    n = experts(config)
    if n is None:
        report.skip(name, "dense model: no experts kernels")
        return
    roles = ["actor"] + (["ref"] if config.algorithm.kl_coef > 0 else [])
    fp32 = [role for role in roles if mixed_precision(options, role)]
    if options.moe_implementation == "fused_triton" and gpus == 1 and fp32:
        overrides = ", ".join(f"actor_rollout_ref.{r}.veomni.mixed_precision=False" for r in fp32)
        report.fail(
            name,
            f"{n} experts with moe_implementation fused_triton on 1 trainer GPU: veomni turns "
            "FSDP, and with it bf16 compute, on only above 1 GPU, so the "
            f"{' and '.join(fp32)} compute in fp32 and the triton experts kernels (bf16/fp16 "
            "only) stop the first forward",
            "set engine.options.moe_implementation: eager (fp32), add "
            f"{overrides} to engine.options.overrides (bf16 weights), or train on 2 or more GPUs",
        )
        return
    report.passed(name, f"{n} experts, moe_implementation {options.moe_implementation}")


def planned_overrides(
    config: SwerlConfig, report: Report, options: VeomniEngineOptions
) -> list[str]:
    """The reward filters' verl overrides plus the engine's own, as the plan would emit them."""
    from swerl.errors import UserError
    from swerl.plugins import get_plugin_manager

    out: list[str] = []
    pm = get_plugin_manager()
    for i, ref in enumerate(config.filters):
        try:
            cls = pm.get("filter", ref.name).cls
        except UserError:  # an unknown filter is the config loader's error, not this check's
            continue
        component = cast("RewardFilter", cls(report.options(f"filters.{i}")))
        out += component.verl_overrides(config)
    return out + list(options.overrides)
