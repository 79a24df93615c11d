"""(b) Trial throughput at several concurrencies on the real stack.

Every level runs the same tasks, ``n`` times each, through swerl's own rollout path
(``swerl.rollout.Rollout``: docker sandbox, Harbor, the scaffold's agent, LiteLLM, the gateway,
vLLM CPU) with ``rollout.max_concurrent_samples`` set to the level, one level after the other
against one inference stack that stays up. Reported per level: wall time, trials per minute,
mean seconds per trial phase (Harbor's env_setup, agent_setup, agent_run, verifier, teardown,
total), rewards, failures by cause and tokens sampled.

With ``agent="oracle"`` the trials run Harbor's oracle agent (the reference solution, no model
at all): that measures what the sandbox alone allows, and it is labelled as such everywhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchlib import machine_load, per_minute, phase_means

if TYPE_CHECKING:
    from swerl.config.load import LoadedConfig
    from swerl.plugins import PluginManager

LABELS = {
    "claude-code": "claude-code on the policy (vLLM CPU + gateway + LiteLLM + docker)",
    "oracle": "SANDBOX ONLY: Harbor's oracle agent, no model calls (docker + Harbor)",
}


class OracleScaffold:
    """Stands in for the configured scaffold: every trial runs Harbor's oracle agent."""

    def agent(self, _config: Any, _trial: Any) -> Any:
        from swerl.components import AgentSpec

        return AgentSpec(name="oracle")


def with_concurrency(loaded: LoadedConfig, level: int) -> LoadedConfig:
    config = loaded.config
    rollout = config.rollout.model_copy(update={"max_concurrent_samples": level})
    return dataclasses.replace(loaded, config=config.model_copy(update={"rollout": rollout}))


def run_level(
    loaded: LoadedConfig,
    pm: PluginManager,
    *,
    level: int,
    agent: str,
    tasks: list[Path],
    n: int,
    run_id: str,
    run_dir: Path,
    api_key: str,
    gateway_url: str,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run ``n`` trials of every task at concurrency ``level``; the numbers of that level."""
    from swerl.rollout import Rollout, plan_trials
    from swerl.trajectories import SampleRecord, TrajectoryWriter, summarize

    tag = f"{'cc' if agent == 'claude-code' else agent}-c{level}"
    level_dir = run_dir / tag
    writer = TrajectoryWriter(level_dir / "trajectories" / "rollout.jsonl")
    rollout = Rollout(
        with_concurrency(loaded, level),
        pm,
        run_id=f"{run_id}-{tag}",
        run_dir=level_dir,
        api_key=api_key,
        gateway_url=gateway_url,
        writer=writer,
    )
    if agent == "oracle":
        rollout.scaffold = OracleScaffold()  # type: ignore[assignment]
    trials = plan_trials(tasks, n)
    done = 0

    def progress(records: list[SampleRecord]) -> None:
        nonlocal done
        done += 1
        head = records[0]
        cause = f", {head.failure_cause}" if head.failure_cause else ""
        log(
            f"throughput [{agent}, concurrency {level}]: {done}/{len(trials)} {head.task} "
            f"reward {head.reward}{cause} ({head.timings.get('total', 0):.1f} s)"
        )

    t0 = time.perf_counter()
    try:
        records = asyncio.run(rollout.run(trials, on_done=progress))
    finally:
        writer.close()
    wall = time.perf_counter() - t0
    summary = summarize(records)
    heads = {r.trial_id: r for r in records}.values()
    sampled = summary["tokens"]["sampled"]
    return {
        "agent": agent,
        "label": LABELS[agent],
        "concurrency": level,
        "trials": len(trials),
        "wall_s": wall,
        "trials_per_min": per_minute(len(trials), wall),
        "seconds_per_phase": phase_means(r.timings for r in heads),
        "reward_mean": summary["reward_mean"],
        "failures": summary["failures"],
        "multi_turn_trials": summary["multi_turn_trials"],
        "sampled_tokens": sampled,
        "sampled_tokens_per_s": sampled / wall if wall > 0 else None,
        "exactness": summary["exactness"],
        "trajectories": str(writer.path),
        "load_1m_at_end": machine_load()["load_1m"],
    }


def run_throughput(
    loaded: LoadedConfig,
    pm: PluginManager,
    *,
    levels: list[int],
    agent: str,
    tasks: list[Path],
    n: int,
    run_id: str,
    run_dir: Path,
    api_key: str,
    gateway_url: str,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every level in turn; speedups are relative to the first level."""
    out = []
    for level in levels:
        log(f"throughput [{agent}]: concurrency {level}, {len(tasks)} task(s) x {n}")
        out.append(
            run_level(
                loaded,
                pm,
                level=level,
                agent=agent,
                tasks=tasks,
                n=n,
                run_id=run_id,
                run_dir=run_dir,
                api_key=api_key,
                gateway_url=gateway_url,
                log=log,
            )
        )
    base = out[0]["trials_per_min"] if out else None
    for row in out:
        row["speedup"] = row["trials_per_min"] / base if base and row["trials_per_min"] else None
    return {
        "agent": agent,
        "label": LABELS[agent],
        "tasks": [t.name for t in tasks],
        "n": n,
        "levels": out,
    }
