"""The task set: Harbor task folders, each with an instruction, a config, tests, an environment.

A task folder (Harbor's layout)::

    task.toml  instruction.md  environment/{Dockerfile | docker-compose.yaml}  tests/test.sh
    [solution/solve.sh]

``environment/`` may be left out when task.toml names a prebuilt ``[environment] docker_image``.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swerl.preflight.checks.context import Context

#: Broken tasks shown one per row; the rest are counted in one more row.
MAX_BROKEN_ROWS = 20
_MARKERS = ("task.toml", "instruction.md")
_COMPOSE = ("docker-compose.yaml", "docker-compose.yml")


@dataclass
class TaskScan:
    """What a task set holds: valid task folders and broken ones with their problems."""

    root: Path
    valid: list[Path] = field(default_factory=list)
    broken: dict[str, list[str]] = field(default_factory=dict)
    filtered_out: int = 0


def is_task_dir(path: Path) -> bool:
    return any((path / marker).exists() for marker in _MARKERS)


def task_problems(task: Path) -> list[str]:
    """What is missing or malformed in one task folder (empty when it is valid)."""
    problems: list[str] = []
    instruction = task / "instruction.md"
    if not instruction.is_file():
        problems.append("no instruction.md")
    elif not instruction.read_text(errors="replace").strip():
        problems.append("instruction.md is empty")
    image = None
    config = task / "task.toml"
    if not config.is_file():
        problems.append("no task.toml")
    else:
        try:
            data = tomllib.loads(config.read_text(errors="replace"))
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"task.toml is not valid TOML ({exc})")
        else:
            env = data.get("environment")
            image = env.get("docker_image") if isinstance(env, dict) else None
    if not (task / "tests" / "test.sh").is_file():
        problems.append("no tests/test.sh")
    env_dir = task / "environment"
    has_env = (env_dir / "Dockerfile").is_file() or any((env_dir / c).is_file() for c in _COMPOSE)
    if not has_env and not image:
        problems.append(
            "no environment (environment/Dockerfile, environment/docker-compose.yaml or "
            "[environment] docker_image in task.toml)"
        )
    return problems


def _selected(name: str, include: list[str], exclude: list[str]) -> bool:
    if include and not any(fnmatch.fnmatchcase(name, pat) for pat in include):
        return False
    return not any(fnmatch.fnmatchcase(name, pat) for pat in exclude)


def scan_tasks(root: Path, include: list[str], exclude: list[str]) -> TaskScan:
    """One task folder, or a folder of task folders filtered by name globs."""
    scan = TaskScan(root)
    if is_task_dir(root):
        candidates = [root]
    else:
        candidates = sorted(
            p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
        )
    for task in candidates:
        if not _selected(task.name, include, exclude):
            scan.filtered_out += 1
            continue
        problems = task_problems(task)
        if problems:
            scan.broken[task.name] = problems
        else:
            scan.valid.append(task)
    return scan


def check_tasks(ctx: Context) -> None:
    """tasks.path holds at least one valid Harbor task after the include/exclude filters."""
    name = "tasks"
    t = ctx.config.tasks
    root = t.path.expanduser()
    root = root if root.is_absolute() else Path.cwd() / root
    if not root.is_dir():
        what = "is a file" if root.exists() else "does not exist"
        ctx.report.fail(
            name,
            f"tasks.path {root} {what}",
            "set tasks.path to a Harbor task folder or a folder of task folders",
        )
        return
    scan = scan_tasks(root, t.include, t.exclude)
    filters = ""
    if t.include or t.exclude:
        filters = f" ({scan.filtered_out} left out by tasks.include/exclude)"
    if not scan.valid and not scan.broken:
        ctx.report.fail(
            name,
            f"no tasks in {root}{filters}",
            "add Harbor task folders there, or loosen tasks.include / tasks.exclude",
        )
        return
    shown = ", ".join(p.name for p in scan.valid[:5]) + (", ..." if len(scan.valid) > 5 else "")
    summary = f"{len(scan.valid)} valid task(s) in {root}{filters}"
    if shown:
        summary += f": {shown}"
    if scan.broken:
        ctx.report.fail(
            name,
            f"{summary}; {len(scan.broken)} broken (listed below)",
            "fix the broken tasks, or leave them out with tasks.exclude",
        )
        for i, (task, problems) in enumerate(sorted(scan.broken.items())):
            if i == MAX_BROKEN_ROWS:
                ctx.report.fail(
                    "task ...",
                    f"{len(scan.broken) - MAX_BROKEN_ROWS} more broken task(s) not listed",
                    "fix them, or leave them out with tasks.exclude",
                )
                break
            ctx.report.fail(
                f"task {task}",
                "; ".join(problems),
                f"see tasks/README.md for a task's layout, or add '{task}' to tasks.exclude",
            )
        return
    ctx.report.passed(name, summary)
