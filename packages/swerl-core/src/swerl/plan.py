"""``swerl plan``: the processes a run would start, with exact command lines; runs nothing.

The core owns the run directory and the LiteLLM proxy; the selected engine lists its own
processes (policy server, gateway, trainer) through ``Engine.plan(config, ctx)``. Secrets never
enter a plan: an env var that carries one holds a ``${NAME}`` reference that the launcher expands
when it starts the process, and everything shown goes through :func:`mask_env` as well.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console

    from swerl.components import Engine, RewardFilter
    from swerl.config.load import LoadedConfig
    from swerl.config.schema import SwerlConfig
    from swerl.plugins import PluginManager

#: Env var names whose values are secrets: shown masked, never printed.
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
MASK = "***"


def mask_env(env: dict[str, str]) -> dict[str, str]:
    """Replace the values of secret-looking variables with ``***``."""
    return {k: (MASK if SECRET_NAME.search(k) and v else v) for k, v in env.items()}


def env_ref(name: str) -> str:
    """A reference the launcher expands from its own environment: the value stays out of plans."""
    return "${" + name + "}"


@dataclass
class ProcessSpec:
    """One process of a run: what starts it and with which environment."""

    name: str
    argv: list[str]
    #: Variables set on top of the launcher's environment (secrets only as ``${NAME}``).
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    #: Files the launcher writes before starting the process (path -> content).
    files: dict[str, str] = field(default_factory=dict)
    note: str = ""
    #: Files the launcher builds before starting the process whose bytes are not known at plan
    #: time, e.g. the task parquet (path -> what it holds).
    generated: dict[str, str] = field(default_factory=dict)
    #: URL that answers 200 once the process is ready; the launcher waits for it.
    health: str | None = None
    #: How long the launcher waits for ``health`` before it gives up and stops the process.
    ready_timeout_s: float = 120.0

    @property
    def command(self) -> str:
        """The command line, quoted for a POSIX shell."""
        return shlex.join(self.argv)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "argv": list(self.argv),
            "command": self.command,
            "env": mask_env(self.env),
            "cwd": self.cwd,
            "files": sorted(self.files),
            "generated": dict(self.generated),
            "note": self.note,
            "health": self.health,
            "ready_timeout_s": self.ready_timeout_s,
        }


@dataclass(frozen=True)
class PlanContext:
    """What an engine needs besides the config to lay out a run.

    ``env`` is the launcher's environment, read for switches such as ``USE_NEW_VERL``; engines must
    not copy secret values out of it (use :func:`env_ref`).
    """

    run_id: str
    run_dir: Path
    #: Relative paths in the config (model, tasks, venv) resolve here: where swerl is run from.
    base_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    #: The selected reward filters, in the order they run, built with their validated options.
    filters: tuple[RewardFilter, ...] = ()

    @classmethod
    def default(cls, config: SwerlConfig, *, env: Mapping[str, str] | None = None) -> PlanContext:
        """A context with a fresh run id, relative paths resolved against the current directory."""
        base = Path.cwd()
        run_id = new_run_id(config.run.name)
        return cls(run_id, run_dir_for(config, run_id, base), base, dict(env or {}))

    def resolve(self, path: str | Path) -> Path:
        """An absolute path for ``path``, relative ones taken from :attr:`base_dir`."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def venv_bin(self, config: SwerlConfig, program: str) -> str:
        """A program of the training-stack virtual environment (``environment.venv_path``)."""
        return str(self.resolve(config.environment.venv_path) / "bin" / program)


def time_stamp(now: float | None = None) -> str:
    """``YYYYmmdd-HHMMSS`` in local time (run ids, per-launch files)."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))


def new_run_id(name: str, now: float | None = None) -> str:
    """``<name>-<YYYYmmdd-HHMMSS>`` in local time."""
    return f"{name}-{time_stamp(now)}"


def run_dir_for(config: SwerlConfig, run_id: str, base_dir: Path) -> Path:
    out = Path(config.run.output_dir).expanduser()
    return (out if out.is_absolute() else base_dir / out) / run_id


@dataclass
class LaunchPlan:
    """Everything ``swerl run`` would do, in start order, as data."""

    run_id: str
    run_dir: str
    mode: str
    engine: str
    source: str
    processes: list[ProcessSpec]
    #: Files the launcher builds for the run as a whole (path -> what they hold).
    generated: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Builds the engine's ``generated`` files (:meth:`swerl.components.Engine.prepare`); the
    #: launcher calls it once the run folder exists. Not part of the plan's data.
    build: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    #: Brings the trainer's own step records into ``metrics.jsonl``
    #: (:meth:`swerl.components.Engine.collect_metrics`); the number of steps added.
    collect: Callable[[], int] | None = field(default=None, repr=False, compare=False)

    @property
    def files(self) -> dict[str, str]:
        """Every text file the run writes before its processes start (path -> content)."""
        return {path: text for p in self.processes for path, text in p.files.items()}

    def process(self, name: str) -> ProcessSpec:
        for p in self.processes:
            if p.name == name:
                return p
        raise KeyError(f"no process named {name!r}; have {[p.name for p in self.processes]}")

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": self.run_dir,
            "mode": self.mode,
            "engine": self.engine,
            "config": self.source,
            "processes": [p.to_json() for p in self.processes],
            "files": self.files,
            "generated": {
                **self.generated,
                **{k: v for p in self.processes for k, v in p.generated.items()},
            },
            "notes": list(self.notes),
        }

    def render(self, console: Console) -> None:
        """Print the plan for a person: commands one argument a line, env masked, files shown."""
        from rich.text import Text

        def say(text: str, style: str = "") -> None:
            # Text, not markup: overrides such as trainer.logger=[console] must print verbatim.
            console.print(Text(text, style=style), soft_wrap=True)

        say(f"swerl plan: {self.source}", "bold")
        say(f"run {self.run_id}  mode {self.mode}  engine {self.engine}  (nothing was started)")
        say(f"run dir {self.run_dir}")
        for i, p in enumerate(self.processes, 1):
            console.print()
            say(f"[{i}] {p.name}", "bold cyan")
            if p.cwd:
                say(f"  cwd  {p.cwd}", "dim")
            for key, value in mask_env(p.env).items():
                say(f"  env  {key}={value}", "dim")
            say("  " + " \\\n      ".join(_command_lines(p.argv)))
            if p.note:
                say(f"  note: {p.note}", "yellow")
        files = self.files
        generated = self.to_json()["generated"]
        if files or generated:
            console.print()
            say("files written before the processes start", "bold")
        for path, text in files.items():
            say(f"  {path}", "cyan")
            say("\n".join(f"    {line}" for line in text.rstrip("\n").splitlines()), "dim")
        for path, what in generated.items():
            say(f"  {path}", "cyan")
            say(f"    {what}", "dim")
        if self.notes:
            console.print()
            say("notes", "bold")
            for note in self.notes:
                say(f"  - {note}")


def _command_lines(argv: list[str]) -> list[str]:
    """Shell-quoted arguments, one a line, an option and its value kept together."""
    args = [shlex.quote(a) for a in argv]
    lines = args[:1]
    for arg in args[1:]:
        last = lines[-1]
        if last.startswith("-") and " " not in last and "=" not in last and not arg.startswith("-"):
            lines[-1] = f"{last} {arg}"
        else:
            lines.append(arg)
    return lines


def build_plan(
    loaded: LoadedConfig,
    pm: PluginManager,
    *,
    run_id: str | None = None,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> LaunchPlan:
    """Lay out a run of ``loaded``: the engine's processes with the LiteLLM proxy started just
    before the last one (the trainer), as in the boot sequence policy server → gateway → proxy →
    loop. Starts nothing, writes nothing.
    """
    from swerl.proxy import proxy_process

    config = loaded.config
    env = os.environ if env is None else env
    base = (base_dir or Path.cwd()).resolve()
    fresh_id = run_id is None
    run_id = run_id or new_run_id(config.run.name)
    notes: list[str] = []

    filters: list[RewardFilter] = []
    for i, ref in enumerate(config.filters):
        cls = pm.get("filter", ref.name).cls
        filters.append(cast("RewardFilter", cls(loaded.options.get(f"filters.{i}"))))
        if not cls.is_ready("plan"):
            notes.append(
                f"filter '{ref.name}' adds nothing to the plan yet: "
                f"{cls.pending or 'not implemented'}."
            )
    ctx = PlanContext(run_id, run_dir_for(config, run_id, base), base, env, tuple(filters))

    engine_cls = pm.get("engine", config.engine.name).cls
    engine = cast("Engine", engine_cls(loaded.options.get("engine")))
    processes = _engine_processes(engine, config, ctx)
    routes = engine.proxy_routes(config)
    processes.insert(max(len(processes) - 1, 0), proxy_process(config, ctx, routes))

    key = config.proxy.master_key_env
    if not env.get(key):
        notes.append(f"${key} is not set: export the proxy's master key before `swerl run`.")
    if fresh_id:
        notes.append("the run id is computed now; `swerl run` computes its own when it starts.")
    return LaunchPlan(
        run_id=ctx.run_id,
        run_dir=str(ctx.run_dir),
        mode=config.mode,
        engine=config.engine.name,
        source=str(loaded.source) if loaded.source else "<config>",
        processes=processes,
        generated={
            str(ctx.run_dir / "config.yaml"): "the resolved config (what `swerl config show` "
            "prints), written first",
        },
        notes=notes,
        build=lambda: engine.prepare(loaded, ctx),
        collect=lambda: engine.collect_metrics(ctx.run_dir),
    )


def _engine_processes(engine: Engine, config: SwerlConfig, ctx: PlanContext) -> list[ProcessSpec]:
    return list(engine.plan(config, ctx))
