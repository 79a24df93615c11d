"""Checks on the run's layout: GPUs for rollout and training, batch arithmetic, staleness.

The batch rules are verl's: ``train_batch_size`` splits into mini-batches of
``ppo_mini_batch_size`` tasks; a mini-batch of ``ppo_mini_batch_size × n_resp`` samples is split
over the data-parallel ranks (trainer world size / Ulysses SP size); each rank's share is cut into
micro-batches of ``micro_batch_size_per_gpu``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swerl.preflight.checks.context import Context


def _cpu_skip(ctx: Context, name: str) -> bool:
    if ctx.uses_gpus:
        return False
    ctx.report.skip(name, f"engine '{ctx.engine_name}' trains on CPU")
    return True


def check_gpu_layout(ctx: Context) -> None:
    """Enough GPUs in the config's own layout for the rollout replicas and the trainer."""
    name = "gpu layout"
    if _cpu_skip(ctx, name):
        return
    c = ctx.config
    r, t = c.rollout, c.trainer
    need = r.data_parallel_size * r.tensor_parallel_size
    need_text = (
        f"rollout.data_parallel_size × tensor_parallel_size = "
        f"{r.data_parallel_size} × {r.tensor_parallel_size} = {need} GPUs"
    )
    trainer = t.nnodes * t.n_gpus_per_node
    trainer_text = (
        f"trainer.nnodes × n_gpus_per_node = {t.nnodes} × {t.n_gpus_per_node} = {trainer}"
    )
    if t.n_gpus_per_node == 0:
        ctx.report.fail(
            name,
            f"engine '{ctx.engine_name}' trains on GPUs but trainer.n_gpus_per_node=0",
            "set trainer.n_gpus_per_node to the GPUs per node, or use a CPU engine (engine: local)",
        )
        return
    if c.mode == "sync":
        if need > trainer:
            ctx.report.fail(
                name,
                f"rollout needs {need_text}; sync mode colocates it on the trainer's GPUs: "
                f"{trainer_text}",
                f"lower rollout.data_parallel_size to {max(trainer // r.tensor_parallel_size, 1)} "
                "or add GPUs (trainer.nnodes / n_gpus_per_node)",
            )
            return
        if _replicas_differ(ctx, name, "the trainer's GPUs"):
            return
        ctx.report.passed(name, f"sync: {need_text}, colocated on {trainer_text}")
        return
    fa = c.fully_async
    pool = fa.rollout_nnodes * fa.rollout_n_gpus_per_node
    pool_text = (
        f"fully_async.rollout_nnodes × rollout_n_gpus_per_node = "
        f"{fa.rollout_nnodes} × {fa.rollout_n_gpus_per_node} = {pool}"
    )
    if need > pool:
        ctx.report.fail(
            name,
            f"rollout needs {need_text}; the rollout pool has {pool_text}",
            f"lower rollout.data_parallel_size to {max(pool // r.tensor_parallel_size, 1)} or "
            "raise fully_async.rollout_nnodes / rollout_n_gpus_per_node",
        )
        return
    if _replicas_differ(ctx, name, "the rollout pool"):
        return
    ctx.report.passed(
        name, f"fully_async: {need_text} in a rollout pool of {pool}; trainer pool {trainer_text}"
    )


def _replicas_differ(ctx: Context, name: str, where: str) -> bool:
    """verl fills the GPUs it is given with replicas of ``tensor_parallel_size`` GPUs
    (``llm_server.py``: ``num_replicas = world_size // rollout_world_size``) and does not read
    swerl's ``data_parallel_size``; say so when the two disagree (True: reported)."""
    r, gpus = ctx.config.rollout, ctx.config.rollout_gpus
    tp, dp = r.tensor_parallel_size, r.data_parallel_size
    if gpus % tp:
        ctx.report.fail(
            name,
            f"{where} has {gpus} GPUs, not a multiple of rollout.tensor_parallel_size={tp}: "
            f"verl would start {gpus // tp} replica(s) and leave {gpus % tp} GPU(s) without one",
            "make the GPU count a multiple of tensor_parallel_size",
        )
        return True
    if gpus // tp != dp:
        ctx.report.warn(
            name,
            f"verl starts one vLLM replica per {tp} GPU(s) of {where}: {gpus // tp} replica(s), "
            f"not rollout.data_parallel_size={dp} (verl does not take that setting)",
            f"set rollout.data_parallel_size to {gpus // tp} so that the config says what runs",
        )
        return True
    return False


def _nvidia_smi_count() -> tuple[int, str]:
    """GPUs that ``nvidia-smi -L`` lists (MIG slices not counted separately)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0, "no nvidia-smi on PATH"
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 0, f"nvidia-smi -L failed: {type(exc).__name__}"
    if out.returncode != 0:
        return 0, f"nvidia-smi -L exited {out.returncode}"
    count = sum(line.startswith("GPU ") for line in out.stdout.splitlines())
    return count, f"nvidia-smi -L lists {count}"


def visible_gpu_count(
    env: Mapping[str, str] | None = None, physical: tuple[int, str] | None = None
) -> tuple[int, str]:
    """(GPUs this process may use, how that was found): ``nvidia-smi -L`` narrowed by
    ``CUDA_VISIBLE_DEVICES``, which CUDA reads up to its first invalid entry."""
    env = os.environ if env is None else env
    count, how = physical if physical is not None else _nvidia_smi_count()
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if cvd is None:
        return count, how
    listed = 0
    for entry in cvd.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break
        listed += 1
    return min(listed, count), f"{how}, CUDA_VISIBLE_DEVICES={cvd!r}"


def check_gpus_visible(ctx: Context) -> None:
    """This machine shows at least the GPUs per node the config asks for."""
    name = "gpus visible"
    if _cpu_skip(ctx, name):
        return
    c = ctx.config
    need, key = c.trainer.n_gpus_per_node, "trainer.n_gpus_per_node"
    if c.mode == "fully_async" and c.fully_async.rollout_n_gpus_per_node > need:
        need, key = c.fully_async.rollout_n_gpus_per_node, "fully_async.rollout_n_gpus_per_node"
    count, how = (ctx.gpu_count or visible_gpu_count)()
    if count < need:
        ctx.report.fail(
            name,
            f"{count} GPU(s) visible here ({how}), but {key}={need}",
            f"run on a node with {need} GPUs, widen CUDA_VISIBLE_DEVICES, or lower {key}",
        )
        return
    ctx.report.passed(name, f"{count} GPU(s) visible ({how}); {key}={need}")


def check_batch_sizes(ctx: Context) -> None:
    """verl's batch divisibility rules, with the numbers named."""
    name = "batch sizes"
    c = ctx.config
    a, t = c.algorithm, c.trainer
    mini, n = a.mini_batch_size, a.n_resp
    problems: list[str] = []
    fixes: list[str] = []
    if a.train_batch_size % mini:
        problems.append(
            f"algorithm.train_batch_size={a.train_batch_size} is not divisible by "
            f"ppo_mini_batch_size={mini}"
        )
        fixes.append("make train_batch_size a multiple of ppo_mini_batch_size")
    if ctx.uses_gpus:
        world = t.nnodes * max(t.n_gpus_per_node, 1)
        world_text = (
            f"trainer world size {world} (nnodes {t.nnodes} × n_gpus_per_node {t.n_gpus_per_node})"
        )
        sp = t.sequence_parallel_size
    else:
        world, world_text, sp = 1, f"world size 1 (engine '{ctx.engine_name}' on CPU)", 1
    if world % sp:
        problems.append(f"{world_text} is not divisible by trainer.sequence_parallel_size={sp}")
        fixes.append("make the trainer's GPU count a multiple of sequence_parallel_size")
        ctx.report.fail(name, "; ".join(problems), "; ".join(fixes))
        return
    dp = world // sp
    samples = mini * n
    per_rank = samples // dp if samples % dp == 0 else None
    if per_rank is None:
        problems.append(
            f"ppo_mini_batch_size × n_resp = {mini} × {n} = {samples} samples is not divisible "
            f"by the data-parallel size {dp} ({world_text} / sequence_parallel_size {sp})"
        )
        fixes.append(f"make ppo_mini_batch_size × n_resp a multiple of {dp}")
    elif per_rank % a.micro_batch_size_per_gpu:
        problems.append(
            f"the per-GPU mini-batch {per_rank} ({samples} samples / {dp} data-parallel ranks) is "
            f"not divisible by algorithm.micro_batch_size_per_gpu={a.micro_batch_size_per_gpu}"
        )
        fixes.append(f"set micro_batch_size_per_gpu to a divisor of {per_rank}")
    if problems:
        ctx.report.fail(name, "; ".join(problems), "; ".join(fixes))
        return
    steps = a.train_batch_size // mini
    ctx.report.passed(
        name,
        f"train_batch_size {a.train_batch_size} = {steps} × ppo_mini_batch_size {mini}; "
        f"{mini} tasks × {n} samples = {samples} per mini-batch over {dp} data-parallel "
        f"rank(s) = {per_rank} per rank, micro-batch {a.micro_batch_size_per_gpu}",
    )


def check_staleness(ctx: Context) -> None:
    """Fully-async: how many stale samples the threshold lets through, computed as verl does.

    verl's rollouter (``fully_async_rollouter.py::set_max_required_samples``) pauses once
    ``int(ppo_mini_batch_size × require_batches × (staleness_threshold + 1) ×
    trigger_parameter_sync_step)`` prompts have been generated since the last weight sync; what
    exceeds the fresh ``ppo_mini_batch_size × require_batches × trigger_parameter_sync_step`` is
    the stale allowance, each prompt carrying ``n_resp`` samples.
    """
    name = "staleness"
    c = ctx.config
    if c.mode != "fully_async":
        ctx.report.skip(name, "mode: sync (no stale samples)")
        return
    a, fa, r = c.algorithm, c.fully_async, c.rollout
    if r.max_concurrent_samples < a.n_resp:
        ctx.report.fail(
            name,
            f"rollout.max_concurrent_samples={r.max_concurrent_samples} is below "
            f"algorithm.n_resp={a.n_resp}: one task's group cannot run at once",
            f"raise rollout.max_concurrent_samples to at least {a.n_resp}",
        )
        return
    required = a.mini_batch_size * fa.require_batches
    fresh = required * fa.trigger_parameter_sync_step
    max_required = int(required * (fa.staleness_threshold + 1) * fa.trigger_parameter_sync_step)
    stale = (max_required - fresh) * a.n_resp
    formula = (
        f"max_required_samples = int({a.mini_batch_size} × {fa.require_batches} × "
        f"({fa.staleness_threshold} + 1) × {fa.trigger_parameter_sync_step}) = {max_required} "
        f"prompts, {fresh} of them fresh"
    )
    if stale < 1:
        ctx.report.warn(
            name,
            f"fully_async.staleness_threshold={fa.staleness_threshold} allows 0 stale samples "
            f"({formula}): the run is effectively synchronous and the rollout pool idles during "
            "each update",
            f"raise fully_async.staleness_threshold to at least {_min_threshold(ctx)}, "
            "or use mode: sync",
        )
        return
    ctx.report.passed(
        name, f"{formula}; up to {stale} stale samples ({stale // a.n_resp} prompts × {a.n_resp})"
    )


def _min_threshold(ctx: Context) -> str:
    """The smallest threshold (rounded up to 3 significant digits) that lets one prompt go stale."""
    import math

    a, fa = ctx.config.algorithm, ctx.config.fully_async
    required = a.mini_batch_size * fa.require_batches
    fresh = required * fa.trigger_parameter_sync_step
    value = 1 / fresh
    for _ in range(20):
        step = 10 ** (math.floor(math.log10(value)) - 2)
        value = math.ceil(value / step - 1e-9) * step
        if int(required * (value + 1) * fa.trigger_parameter_sync_step) > fresh:
            break
        value += step
    return f"{value:.3g}"
