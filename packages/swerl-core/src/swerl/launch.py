"""``swerl rollout``: boot the inference stack, run trials, write trajectories, print a summary.

The boot order is the plan's: policy server → gateway → LiteLLM proxy (the trainer process is
not started: rollouts generate only). Each process logs to ``runs/<run_id>/logs/``; everything
started here is stopped on exit, on error and on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from swerl.boot import Running, Supervisor
from swerl.errors import UserError
from swerl.plan import LaunchPlan, build_plan
from swerl.rollout import Rollout, new_api_key, plan_trials
from swerl.trajectories import SampleRecord, TrajectoryWriter, summarize

if TYPE_CHECKING:
    from rich.console import Console

    from swerl.config.load import LoadedConfig
    from swerl.plugins import PluginManager

#: Processes of the plan that a rollout does not start.
NOT_FOR_ROLLOUT = {"trainer", "verl-trainer"}


@dataclass
class RolloutRun:
    run_id: str
    run_dir: Path
    records: list[SampleRecord]
    summary: dict[str, Any]
    #: Processes of the stack that exited on their own during the run (the CLI then exits 1).
    died: list[str]


def find_tasks(loaded: LoadedConfig, tasks_dir: Path | None) -> list[Path]:
    from swerl.preflight.checks.tasks import scan_tasks

    cfg = loaded.config.tasks
    root = tasks_dir or cfg.path
    scan = scan_tasks(Path(root), cfg.include, cfg.exclude)
    if scan.broken:
        first = next(iter(scan.broken.items()))
        raise UserError(
            f"{len(scan.broken)} broken task(s) in {root}, e.g. {first[0]}: {', '.join(first[1])}; "
            "`swerl check` lists them all"
        )
    if not scan.valid:
        raise UserError(f"no tasks in {root} (after tasks.include / tasks.exclude)")
    return scan.valid


def prepare_run(loaded: LoadedConfig, pm: PluginManager) -> tuple[LaunchPlan, dict[str, str]]:
    """The run's plan and launch environment; creates the run folder with the resolved config
    and the engine's generated files (:meth:`swerl.components.Engine.prepare`).

    The agents present the proxy's master key; a fresh one is made per run unless the user set
    one. It lives only in the launcher's environment, never in a file.
    """
    env = dict(os.environ)
    env.setdefault(loaded.config.proxy.master_key_env, new_api_key())
    plan = build_plan(loaded, pm, env=env)
    run_dir = Path(plan.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(loaded.resolved(), sort_keys=False))
    if plan.build:
        plan.build()
    return plan, env


def run_rollout(
    loaded: LoadedConfig,
    pm: PluginManager,
    *,
    console: Console,
    tasks_dir: Path | None = None,
    n: int | None = None,
    verify_logprobs: bool = False,
) -> RolloutRun:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    config = loaded.config
    tasks = find_tasks(loaded, tasks_dir)
    n = n or config.algorithm.n_resp
    plan, env = prepare_run(loaded, pm)
    key_env = config.proxy.master_key_env
    run_dir = Path(plan.run_dir)
    trials = plan_trials(tasks, n)
    console.print(
        f"run {plan.run_id}: {len(trials)} trial(s) = {len(tasks)} task(s) × {n}, "
        f"{config.rollout.max_concurrent_samples} at a time; logs in {run_dir / 'logs'}"
    )

    def waiting(name: str, seconds: float) -> None:
        status.update(f"starting {name}: waiting for health ({seconds:.0f} s)")

    writer = TrajectoryWriter(run_dir / "trajectories" / "rollout.jsonl")
    from swerl.runstate import record_process

    def started(proc: Running) -> None:  # `swerl stop` / `swerl clean` find them here
        record_process(run_dir, proc.spec.name, proc.pid, proc.spec.argv[0])

    with (
        Supervisor(run_dir / "logs", env=env, on_wait=waiting, on_started=started) as sup,
        console.status("booting the inference stack") as status,
    ):
        for spec in plan.processes:
            if spec.name in NOT_FOR_ROLLOUT:
                continue
            status.update(f"starting {spec.name}")
            sup.start(spec)
            console.print(f"  {spec.name} ready (pid {sup.running[-1].pid})")
        status.stop()
        rollout = Rollout(
            loaded,
            pm,
            run_id=plan.run_id,
            run_dir=run_dir,
            api_key=env[key_env],
            gateway_url=f"http://127.0.0.1:{config.ports.gateway}",
            writer=writer,
        )
        with Progress(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            bar = progress.add_task("trials", total=len(trials), info="")
            rewards: list[float] = []

            def done(records: list[SampleRecord]) -> None:
                head = records[0]
                if head.reward is not None:
                    rewards.append(head.reward)
                mean = sum(rewards) / len(rewards) if rewards else 0.0
                progress.update(bar, advance=1, info=f"mean reward {mean:.2f}")

            try:
                records = asyncio.run(rollout.run(trials, on_done=done))
            finally:
                writer.close()
                died = [p.spec.name for p in sup.dead()]
                if died:
                    names = ", ".join(died)
                    console.print(f"[red]these processes died during the run: {names}[/]")
        summary = summarize(records)
        summary["died"] = died
        if verify_logprobs and not died:  # the policy server may be among them
            from swerl.fidelity import recompute_deltas

            policy = f"http://127.0.0.1:{config.ports.policy}"
            summary["logprob_check"] = asyncio.run(
                recompute_deltas(policy, config.model.served_name, records)
            )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return RolloutRun(plan.run_id, run_dir, records, summary, died)
