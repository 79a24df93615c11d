"""The ``swerl`` command line. Heavy imports stay inside commands so that ``--help`` is fast."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from swerl.config.load import LoadedConfig
    from swerl.plugins import PluginManager

app = typer.Typer(
    name="swerl",
    help="Train software-engineering agents with reinforcement learning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rich help rendering costs ~0.4 s per call
)
config_app = typer.Typer(help="Inspect run configs.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")

console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="Run config (YAML).", show_default=True),
]
DEFAULT_CONFIG = Path("configs/smoke_cpu.yaml")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class _RichWarnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        from rich.markup import escape

        err.print(f"[yellow]warning:[/] {escape(record.getMessage())}", highlight=False)


def _setup_logging() -> None:
    log = logging.getLogger("swerl")
    if not log.handlers:
        log.addHandler(_RichWarnings())
        log.setLevel(logging.WARNING)
        log.propagate = False


def _load(config: Path) -> tuple[LoadedConfig, PluginManager]:
    from swerl.config.load import load_config
    from swerl.plugins import get_plugin_manager

    pm = get_plugin_manager()
    return load_config(config, pm=pm), pm


def _plugin_versions(pm: PluginManager) -> dict[str, str]:
    """Loaded plugins and their package versions, as every run logs them."""
    return {i.name: i.version for i in pm.infos() if i.status == "loaded"}


@app.command()
def check(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Treat warnings as failures (exit 1 on any warn).")
    ] = False,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Also boot policy server, gateway and proxy, send one request through them and "
            "show that token ids come back (starts processes, then stops them).",
        ),
    ] = False,
) -> None:
    """Preflight: validate the config and the machine for a run. Changes nothing.

    Exits 1 if any check fails (or, with --strict, warns).
    """
    from swerl.preflight import run_preflight

    loaded, pm = _load(config)
    report = run_preflight(loaded, pm)
    if live and not report.failed:
        from swerl.live import live_check

        with console.status("--live: booting the inference stack"):
            live_check(loaded, pm, report)
    elif live:
        report.skip("live round trip", "not run: fix the failed checks first")
    plugins = _plugin_versions(pm)
    if as_json:
        print(json.dumps({"config": str(config), "plugins": plugins} | report.to_json(), indent=2))
    else:
        console.print(f"config: {config}", highlight=False)
        console.print(
            "plugins: " + ", ".join(f"{k}-{v}" for k, v in plugins.items()), highlight=False
        )
        report.render(console)
    failed = report.failed or (strict and report.counts()["warn"] > 0)
    raise typer.Exit(1 if failed else 0)


@app.command()
def plan(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
) -> None:
    """Print the processes a run would start, their command lines and env (secrets masked)."""
    from swerl.plan import build_plan

    loaded, pm = _load(config)
    launch = build_plan(loaded, pm)
    if as_json:
        print(json.dumps(launch.to_json(), indent=2))
    else:
        launch.render(console)


@app.command()
def rollout(
    config: ConfigOpt = DEFAULT_CONFIG,
    tasks: Annotated[
        Path | None,
        typer.Option("--tasks", help="Folder of Harbor tasks (default: tasks.path)."),
    ] = None,
    n: Annotated[
        int | None,
        typer.Option("-n", "--n", min=1, help="Samples per task (default: algorithm.n_resp)."),
    ] = None,
    verify_logprobs: Annotated[
        bool,
        typer.Option(
            "--verify-logprobs",
            help="After the trials, recompute every trained token's logprob with the policy "
            "server and report the largest difference (one extra forward pass per sample).",
        ),
    ] = False,
) -> None:
    """Generate only: boot policy server, gateway and proxy, run every task N times in
    sandboxes, and write runs/<run_id>/trajectories/rollout.jsonl with every sampled token.
    Exits 1 if a process of the stack died during the run (every trial is still recorded).
    """
    from swerl.launch import run_rollout

    loaded, pm = _load(config)
    result = run_rollout(
        loaded, pm, console=console, tasks_dir=tasks, n=n, verify_logprobs=verify_logprobs
    )
    s = result.summary
    mean = "n/a" if s["reward_mean"] is None else f"{s['reward_mean']:.3f}"
    console.print(
        f"[bold]{s['trials']} trial(s)[/], {s['samples']} sample(s); mean reward {mean}; "
        f"failures {s['failures'] or 'none'}; multi-turn trials {s['multi_turn_trials']}"
    )
    console.print(
        f"tokens: {s['tokens']}; exactness {s['exactness']}; stitch breaks {s['stitch_breaks']}"
    )
    if "logprob_check" in s:
        console.print(f"logprobs vs recomputation: {s['logprob_check']}")
    for phase, t in s["seconds_per_phase"].items():
        console.print(f"  {phase:<12} mean {t['mean']:.1f} s  max {t['max']:.1f} s")
    console.print(f"trajectories: {result.run_dir / 'trajectories' / 'rollout.jsonl'}")
    if result.died:
        console.print(f"[red]failed: {', '.join(result.died)} died during the run[/]")
        raise typer.Exit(1)


@app.command()
def run(
    config: ConfigOpt = DEFAULT_CONFIG,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Launch this run folder again (its own config.yaml); the loop continues from "
            "its newest checkpoint. --config is ignored.",
        ),
    ] = None,
    background: Annotated[
        bool,
        typer.Option(
            "--background",
            help="Detach: the launcher runs in a new session, its output in "
            "<run dir>/logs/launch_<ts>.log, its pid in <run dir>/launcher.pid.",
        ),
    ] = False,
) -> None:
    """Train: boot the policy server, gateway, LiteLLM proxy and trainer, and follow the loop
    (rollout → reward → update → weight sync → checkpoint) to algorithm.total_steps.
    """
    from swerl.train import launch_background, run_training

    loaded, pm = _load(resume / "config.yaml" if resume else config)
    if background:
        started = launch_background(loaded, pm, resume)
        status = read_status_line(started.run_dir)
        console.print(f"run {started.run_id} started in the background ({status})")
        console.print(
            f"  follow: swerl status {started.run_dir}   stop: swerl stop {started.run_dir}"
        )
        return
    result = run_training(loaded, pm, console=console, resume=resume)
    console.print(
        f"run {result.run_id}: {result.steps} step(s) in {result.run_dir / 'metrics.jsonl'}"
    )
    raise typer.Exit(result.returncode)


def read_status_line(run_dir: Path) -> str:
    from swerl.runstate import read_status

    st = read_status(run_dir)
    return f"launcher pid {st.get('launcher')}, log {st.get('log')}"


@config_app.command("show")
def config_show(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
) -> None:
    """Print the resolved config: defaults, env overrides and component options filled in."""
    import yaml

    loaded, _ = _load(config)
    data = loaded.resolved()
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")


@app.command()
def plugins(as_json: JsonOpt = False) -> None:
    """List installed plugins, where each comes from, its hooks, and why any failed to load.

    Each plugin shows its package and version, entry point, install origin and location, the
    hooks it implements and the components it registers; one that failed to load shows the
    error and how to fix it. Exits 1 if a plugin failed to load.
    """
    from dataclasses import asdict

    from swerl.plugins import get_plugin_manager

    infos = get_plugin_manager().infos()
    failed = [i for i in infos if i.status == "failed"]
    if as_json:
        print(json.dumps([asdict(i) for i in infos], indent=2))
        raise typer.Exit(1 if failed else 0)
    from rich.text import Text

    def row(key: str, value: str, style: str = "") -> None:
        console.print(Text(f"  {key:<12}", style="dim") + Text(value, style=style), soft_wrap=True)

    counts = {s: sum(i.status == s for i in infos) for s in ("loaded", "failed", "disabled")}
    console.print(
        Text("swerl plugins: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n), "bold")
    )
    for i in infos:
        style = {"loaded": "green", "disabled": "dim"}.get(i.status, "bold red")
        console.print()
        console.print(
            Text(i.name, "bold") + Text(f"  {i.dist} {i.version}  ") + Text(i.status, style)
        )
        row("entry point", i.entry_point or i.module)
        if i.origin:
            row("installed", i.origin)
        if i.location:
            row("location", i.location)
        if i.status == "loaded":
            row("hooks", ", ".join(h.removeprefix("swerl_") for h in i.hooks) or "none")
            row("components", ", ".join(i.components) or "none")
        if i.error:
            row("error", i.error, "red")
        if i.hint:
            row("fix", i.hint, "yellow")
    raise typer.Exit(1 if failed else 0)


@app.command("new-plugin")
def new_plugin(
    kind: Annotated[str, typer.Argument(help="scaffold, sandbox, engine or filter.")],
    name: Annotated[str, typer.Argument(help="The component's name, e.g. length.")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to create the package folder.")
    ] = Path("."),
) -> None:
    """Create a plugin package from a template: swerl-KIND-NAME, ready to install and test.

    It holds a pyproject with the `swerl` entry point, a component with its options model and
    the base class of its kind, tests that use swerl.testing (and pass as generated), and a
    README. Install it with `pip install -e './swerl-KIND-NAME[test]'`, then run its tests.
    """
    from rich.text import Text

    from swerl.newplugin import new_plugin as create

    root = create(kind, name, directory)
    lines = [f"created {root}"]
    lines += [f"  {p.relative_to(root)}" for p in sorted(root.rglob("*")) if p.is_file()]
    lines.append(f"next: pip install -e '{root}[test]' && pytest {root / 'tests'}")
    console.print(Text("\n".join(lines)), soft_wrap=True)


RunArg = Annotated[
    str | None,
    typer.Argument(
        metavar="RUN", help="Run folder or run id (default: the newest run).", show_default=False
    ),
]


@app.command()
def report(
    run: RunArg = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the page and plots (default: <run dir>/report)."),
    ] = None,
) -> None:
    """Plot a run's curves from metrics.jsonl: one PNG per metric group (reward, rollout
    correction, actor, time per phase, tokens, failures, the rest) and index.html with the
    config summary and the last step's metrics. Prints the page's path.
    """
    from swerl.report import write_report
    from swerl.runstate import find_run

    written = write_report(find_run(run), out)
    print(written.page)


@app.command(name="eval")
def eval_(
    run: RunArg = None,
    step: Annotated[
        int | None,
        typer.Option("--step", min=0, help="The checkpoint after this step (default: newest)."),
    ] = None,
    base: Annotated[
        bool, typer.Option("--base", help="The run's starting model instead of a checkpoint.")
    ] = False,
    n: Annotated[int, typer.Option("-n", "--n", min=1, help="Trials per task.")] = 8,
    tasks: Annotated[
        Path | None,
        typer.Option("--tasks", help="Folder of Harbor tasks (default: the run's tasks.path)."),
    ] = None,
) -> None:
    """Evaluate a checkpoint: every task N times with the run's stack and sampling settings,
    the mean reward with its standard error and per task, saved as <run dir>/eval/<label>.json
    and printed beside the run's earlier evaluations. Exits 1 if a process of the stack died.
    """
    from rich.text import Text

    from swerl.errors import UserError
    from swerl.evaluate import evaluate, previous, render
    from swerl.plugins import get_plugin_manager
    from swerl.runstate import find_run

    if base and step is not None:
        err.print("[bold red]error:[/] give --step or --base, not both")
        raise typer.Exit(2)
    try:
        run_dir = find_run(run)
        evaluate(
            run_dir,
            get_plugin_manager(),
            console=console,
            step=step,
            base=base,
            n=n,
            tasks_dir=tasks,
        )
    except UserError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(Text("\n".join(render(previous(run_dir)))), soft_wrap=True)


@app.command()
def gateway(
    config: ConfigOpt = DEFAULT_CONFIG,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port on 127.0.0.1 (default: ports.gateway)."),
    ] = None,
    backend_url: Annotated[
        str | None,
        typer.Option(
            "--backend-url",
            help="Policy server base URL (default: http://127.0.0.1:<ports.policy>).",
        ),
    ] = None,
    tool_parser: Annotated[
        str, typer.Option("--tool-parser", help="Tool-call format of the model (hermes, none).")
    ] = "hermes",
) -> None:
    """Run the token-capture gateway in the foreground (logs to stdout).

    Serves OpenAI chat completions for LiteLLM, renders prompts with the model's chat template,
    calls the policy server with token ids, and records each trial's samples
    (GET/DELETE /sessions/<trial id>).
    """
    import importlib.util

    from swerl.errors import UserError

    for module in ("aiohttp", "transformers"):
        if importlib.util.find_spec(module) is None:
            raise UserError(f"the gateway needs {module}: pip install 'swerl-core[gateway]'")
    from swerl.gateway.server import run
    from swerl.gateway.settings import GatewaySettings

    loaded, _ = _load(config)
    settings = GatewaySettings.from_config(
        loaded.config, port=port, backend_url=backend_url, tool_parser=tool_parser
    )
    if not (Path(settings.model_path) / "config.json").is_file():
        raise UserError(
            f"{config}: model.path {settings.model_path!r} is not a model folder "
            "(no config.json); build or download it first (make setup builds the tiny one)"
        )
    run(settings)


RunsDirOpt = Annotated[
    Path,
    typer.Option("--runs-dir", help="Where runs live (the config's run.output_dir)."),
]
GraceOpt = Annotated[
    float,
    typer.Option("--grace", min=0, help="Seconds between SIGTERM and SIGKILL."),
]
DEFAULT_RUNS = Path("runs")


def _run_dir(run: str | None, runs_dir: Path) -> Path:
    from swerl.errors import UserError
    from swerl.runstate import find_run

    try:
        return find_run(run, runs_dir)
    except UserError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@app.command()
def status(
    run: RunArg = None, runs_dir: RunsDirOpt = DEFAULT_RUNS, as_json: JsonOpt = False
) -> None:
    """Show a run: phase, step, the last metrics, its processes (alive or not) and logs.

    Exits 1 when there is no such run.
    """
    from swerl.manage import render_status, run_status

    info = run_status(_run_dir(run, runs_dir))
    if as_json:
        print(json.dumps(info, indent=2, default=str))
    else:
        render_status(info, console)


@app.command()
def stop(run: RunArg = None, runs_dir: RunsDirOpt = DEFAULT_RUNS, grace: GraceOpt = 15.0) -> None:
    """Stop a run: SIGTERM to the launcher and each recorded process group, SIGKILL after the
    grace period, then remove the run's sandbox containers. A pid that no longer belongs to the
    run is left alone. Sets phase stopped; `swerl run --resume` continues it.

    Exits 1 if a process could not be stopped.
    """
    from swerl.manage import render_stop, stop_run

    run_dir = _run_dir(run, runs_dir)
    report = stop_run(run_dir, grace_s=grace, say=lambda m: err.print(m, highlight=False))
    render_stop(report, console)
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def clean(
    run: RunArg = None,
    runs_dir: RunsDirOpt = DEFAULT_RUNS,
    logs: Annotated[bool, typer.Option("--logs", help="Also remove logs/.")] = False,
    trials: Annotated[
        bool, typer.Option("--trials", help="Also remove trials/ (trajectories/ stay).")
    ] = False,
    pods: Annotated[
        bool, typer.Option("--pods", help="Also delete the run's Kubernetes pods.")
    ] = False,
    all_runs: Annotated[
        bool, typer.Option("--all-runs", help="Clean every run under --runs-dir.")
    ] = False,
    grace: GraceOpt = 15.0,
) -> None:
    """Stop a run, remove its sandbox containers and transient files (sock/, sandbox/,
    litellm.yaml, launcher.pid), then check that no process, container or port is left.

    checkpoints/, weights/, metrics.jsonl, trajectories/ and wandb/ are never removed. GPU
    processes this run did not start are left alone unless RL_CLEAN_FORCE_GPU_KILL=1.
    Exits 1 if something is left.
    """
    from swerl.manage import clean_run, render_clean
    from swerl.runstate import run_dirs

    if all_runs:
        if run:
            err.print("[bold red]error:[/] give a run or --all-runs, not both")
            raise typer.Exit(2)
        dirs = run_dirs(runs_dir)
        if not dirs:
            err.print(f"[bold red]error:[/] no runs under {runs_dir}/", highlight=False)
            raise typer.Exit(1)
    else:
        dirs = [_run_dir(run, runs_dir)]
    ok = True
    for run_dir in dirs:
        report = clean_run(
            run_dir,
            logs=logs,
            trials=trials,
            pods=pods,
            grace_s=grace,
            say=lambda m: err.print(m, highlight=False),
        )
        render_clean(report, console)
        ok = ok and report.ok
    raise typer.Exit(0 if ok else 1)


def main() -> None:
    from swerl.errors import UserError

    _setup_logging()
    try:
        app()
    except UserError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
