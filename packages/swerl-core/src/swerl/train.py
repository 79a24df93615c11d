"""``swerl run``: boot a run's processes in plan order and follow the training loop to its end.

The launcher starts every process of the engine's plan (policy server → gateway → LiteLLM proxy
→ trainer), records them in ``processes.json``, then follows the trainer: each finished step's
metrics line is printed as it lands in ``metrics.jsonl``. When the trainer exits, or any other
process dies, or on Ctrl-C / SIGTERM, everything started here is stopped. ``--resume RUN``
launches the same run folder again (its own resolved ``config.yaml``); the trainer continues
from the newest checkpoint. ``--background`` prepares the run, then starts the launcher in a new
session with its output in ``logs/launch_<ts>.log`` and its pid in ``launcher.pid``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swerl.errors import UserError
from swerl.runstate import (
    PROCESSES,
    read_metrics,
    read_status,
    record_process,
    update_status,
    write_json_atomic,
    write_launcher_pid,
)

if TYPE_CHECKING:
    from rich.console import Console

    from swerl.config.load import LoadedConfig
    from swerl.plan import LaunchPlan
    from swerl.plugins import PluginManager

TRAINERS = ("trainer", "verl-trainer")
POLL_S = 1.0


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    returncode: int
    steps: int


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def prepare(
    loaded: LoadedConfig, pm: PluginManager, resume: Path | None
) -> tuple[LoadedConfig, LaunchPlan, dict[str, str]]:
    """The plan and launch environment of a new run, or of ``resume`` (an existing run folder)."""
    from swerl.config.load import load_config
    from swerl.launch import prepare_run
    from swerl.plan import build_plan
    from swerl.rollout import new_api_key

    if resume is None:
        _require_train(loaded, pm)
        plan, env = prepare_run(loaded, pm)
        return loaded, plan, env
    run_dir = resume.resolve()
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"--resume {resume}: not a run folder (no config.yaml in it)")
    # The run's own resolved config; env overrides (TRAIN_BSZ, N_RESP) must not change it.
    loaded = load_config(run_dir / "config.yaml", env={}, pm=pm)
    _require_train(loaded, pm)
    env = dict(os.environ)
    env.setdefault(loaded.config.proxy.master_key_env, new_api_key())
    plan = build_plan(loaded, pm, run_id=run_dir.name, env=env)
    if Path(plan.run_dir).resolve() != run_dir:
        raise UserError(
            f"--resume {resume}: the config puts this run at {plan.run_dir}; run swerl from the "
            f"folder that holds {loaded.config.run.output_dir}/ (or give that path)"
        )
    if plan.build:
        plan.build()  # the engine's generated files, rebuilt from the run's own config
    return loaded, plan, env


def _require_train(loaded: LoadedConfig, pm: PluginManager) -> None:
    """The selected components can train, and the preflight (``swerl check``) has no failure."""
    from swerl.preflight import run_preflight
    from swerl.preflight.report import Status

    config = loaded.config
    pm.get("engine", config.engine.name).cls.require("train")
    for ref in config.filters:
        pm.get("filter", ref.name).cls.require("apply")
    report = run_preflight(loaded, pm)
    failed = [c for c in report.checks if c.status == Status.FAIL]
    if failed:
        lines = "\n".join(
            f"  {c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in failed
        )
        raise UserError(
            f"preflight failed, nothing was started (`swerl check` shows all):\n{lines}"
        )


def run_training(
    loaded: LoadedConfig,
    pm: PluginManager,
    *,
    console: Console,
    resume: Path | None = None,
) -> RunResult:
    from swerl.boot import Supervisor, log_tail

    loaded, plan, env = prepare(loaded, pm, resume)
    run_dir = Path(plan.run_dir)
    total = loaded.config.algorithm.total_steps
    write_json_atomic(run_dir / PROCESSES, [])
    update_status(
        run_dir,
        phase="boot",
        launcher=os.getpid(),
        total_steps=total,
        error=None,
        run_id=plan.run_id,
    )
    previous = signal.signal(signal.SIGTERM, _terminate)
    console.print(
        f"run {plan.run_id}{' (resumed)' if resume else ''}: {total} step(s); "
        f"folder {run_dir}; logs in {run_dir / 'logs'}"
    )
    shown = len(read_metrics(run_dir)) if resume else 0
    rc = 1
    try:
        with Supervisor(run_dir / "logs", env=env) as sup, console.status("booting") as status:
            sup.on_wait = lambda name, s: status.update(f"starting {name} ({s:.0f} s)")
            # Recorded as soon as spawned, so `swerl stop` finds a server still booting.
            sup.on_started = lambda p: record_process(run_dir, p.spec.name, p.pid, p.spec.argv[0])
            trainer = None
            for spec in plan.processes:
                status.update(f"starting {spec.name}")
                proc = sup.start(spec)
                state = "ready" if spec.health else "started"
                console.print(f"  {spec.name} {state} (pid {proc.pid})")
                if spec.name in TRAINERS:
                    trainer = proc
            if trainer is None:
                raise UserError(f"the {plan.engine} engine's plan has no trainer process")
            collect = plan.collect or (lambda: 0)
            while True:
                collect()
                rows = read_metrics(run_dir)
                for row in rows[shown:]:
                    console.print(step_line(row, total))
                shown = max(shown, len(rows))
                st = read_status(run_dir)
                status.update(f"step {int(st.get('step', 0)) + 1}/{total}: {st.get('phase', '?')}")
                if not trainer.alive():
                    rc = trainer.popen.returncode
                    break
                dead = [p for p in sup.dead() if p is not trainer]
                if dead:
                    names = ", ".join(f"{p.spec.name} (log {p.log_path})" for p in dead)
                    raise UserError(f"these processes died during the run: {names}")
                time.sleep(POLL_S)
            collect()  # the steps the trainer logged just before it exited
            for row in read_metrics(run_dir)[shown:]:
                console.print(step_line(row, total))
        if rc != 0:
            tail = log_tail(run_dir / "logs" / f"{trainer.spec.name}.log", 20)
            update_status(run_dir, phase="failed", error=f"trainer exited with status {rc}")
            console.print(f"[red]the trainer exited with status {rc}[/]; its last lines:")
            console.print(tail, markup=False, highlight=False)  # e.g. trainer.logger=[console]
        elif (st := read_status(run_dir)).get("phase") == "paused":
            console.print(f"[yellow]{st.get('message') or 'paused'}[/]", highlight=False)
        elif st.get("phase") != "done":  # a trainer that does not write its own status (verl)
            update_status(run_dir, phase="done")
    except (KeyboardInterrupt, SystemExit) as exc:
        update_status(run_dir, phase="stopped")
        console.print("[yellow]stopped[/]: everything this run started was stopped")
        rc = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 130
    except UserError as exc:
        update_status(run_dir, phase="failed", error=str(exc))
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    steps = len(read_metrics(run_dir))
    return RunResult(plan.run_id, run_dir, rc, steps)


def launch_background(loaded: LoadedConfig, pm: PluginManager, resume: Path | None) -> RunResult:
    """Prepare the run here, then start ``swerl run --resume <run dir>`` detached."""
    loaded, plan, env = prepare(loaded, pm, resume)
    run_dir = Path(plan.run_dir)
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"launch_{time.strftime('%Y%m%d-%H%M%S')}.log"
    argv = [sys.executable, "-m", "swerl", "run", "--resume", str(run_dir)]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    write_launcher_pid(run_dir, proc.pid)
    update_status(run_dir, phase="boot", launcher=proc.pid, log=str(log_path), run_id=plan.run_id)
    return RunResult(plan.run_id, run_dir, 0, 0)


def step_line(row: dict[str, Any], total: int) -> str:
    def num(key: str, fmt: str) -> str:
        value = row.get(key)
        return format(value, fmt) if isinstance(value, int | float) else "n/a"

    return (
        f"step {int(row['step']) + 1}/{total}  reward {num('reward/mean', '.3f')}  "
        f"pass {num('reward/pass_rate', '.2f')}  kl {num('rollout_corr/kl', '.1e')}  "
        f"loss {num('actor/loss', '.4f')}  rollout {num('time/rollout_s', '.0f')} s  "
        f"train {num('time/train_s', '.1f')} s  sync {num('time/sync_s', '.2f')} s"
        + ("  [bold red]KL ALARM[/]" if row.get("is_token/kl_alarm") else "")
    )
