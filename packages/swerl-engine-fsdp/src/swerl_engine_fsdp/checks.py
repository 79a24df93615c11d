"""Preflight checks of the verl engines. No imports of verl or vLLM: versions come from package
metadata, so ``swerl check`` stays fast and works where CUDA does not."""

from __future__ import annotations

import importlib.metadata as md
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from swerl_engine_fsdp.launch import (
    VERL_VERSION,
    checkout_fix,
    checkout_problem,
    use_new_verl,
    verl_checkout,
)

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report

VLLM_VERSION = "0.24.0"


def installed(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def version_tuple(version: str) -> tuple[int, ...]:
    """Leading numeric release parts: ``0.24.0rc1`` → (0, 24, 0)."""
    m = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(x) for x in m.group(0).split(".")) if m else ()


def check_verl(report: Report, env: Mapping[str, str] | None = None) -> None:
    """verl at the pinned version, or the checkout that USE_NEW_VERL points at."""
    env = os.environ if env is None else env
    if use_new_verl(env):
        path = verl_checkout(env, Path.cwd())
        problem = checkout_problem(path)
        if problem:
            report.fail("verl checkout", f"USE_NEW_VERL=1 but {problem}", checkout_fix(path))
        else:
            report.passed("verl checkout", f"USE_NEW_VERL=1: verl runs from {path}")
        return
    version = installed("verl")
    if version is None:
        report.fail(
            "verl", "verl is not installed", f"uv sync (or pip install verl=={VERL_VERSION})"
        )
    elif version != VERL_VERSION:
        report.fail(
            "verl",
            f"verl {version} is installed; swerl's overrides are written for {VERL_VERSION}",
            f"uv sync (or pip install verl=={VERL_VERSION}); for a newer verl use "
            "USE_NEW_VERL=1 (repos/README.md)",
        )
    else:
        report.passed("verl", f"verl {version}")


def check_vllm(report: Report) -> str | None:
    """vLLM (GPU build) for verl's rollout; returns the installed version."""
    version = installed("vllm")
    fix = "uv sync --extra gpu (or pip install 'swerl-engine-fsdp[gpu]')"
    if version is None:
        report.fail("vllm", "vLLM is not installed: verl has no rollout backend", fix)
    elif version_tuple(version) < (0, 18):
        report.fail("vllm", f"vLLM {version} is older than verl's minimum 0.18.0", fix)
    elif version != VLLM_VERSION:
        report.warn("vllm", f"vLLM {version}; swerl is tested with {VLLM_VERSION}", fix)
    else:
        report.passed("vllm", f"vLLM {version}")
    return version


def check_gpu_engine(config: SwerlConfig, report: Report) -> None:
    """A verl engine trains on GPUs only (verl has no CPU platform)."""
    if config.trainer.n_gpus_per_node < 1:
        report.fail(
            f"engine {config.engine.name}",
            "trainer.n_gpus_per_node is 0, but verl trains on GPUs only",
            "set trainer.n_gpus_per_node, or use `engine: {name: local}` on CPU",
        )
