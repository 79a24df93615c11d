"""What a run leaves in its folder while it runs, for `swerl status`, `stop`, `clean` and `report`.

``runs/<run_id>/``

- ``processes.json``: every process the launcher started: name, pid, process group, argv[0],
  start time. Written by the launcher (``swerl run``) each time it starts one.
- ``status.json``: the loop's phase (``boot``, ``rollout``, ``train``, ``sync``,
  ``checkpoint``, ``done``, ``failed``, ``stopped``), step, total steps, the last step's metrics,
  the launcher's pid and log path. Written by the launcher and by the training loop (merged).
- ``metrics.jsonl``: one JSON object per finished step (``step`` plus metric name → number).
- ``launcher.pid``: the pid (and start time) of a ``swerl run --background`` launcher.

Each recorded process also carries its kernel start time (``start_ticks``, from
``/proc/<pid>/stat``): pid and start time together name one process, so ``swerl stop`` never
signals a pid that the kernel has since given to another process.

Every JSON file is written atomically (temp file + rename), so a reader never sees half a file
and a killed writer leaves the previous version.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

PROCESSES = "processes.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
LAUNCHER_PID = "launcher.pid"

PHASES = ("boot", "rollout", "train", "sync", "checkpoint", "done", "failed", "stopped")


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def update_status(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``status.json`` (with ``updated`` set to now) and return it."""
    status = read_json(run_dir / STATUS, {}) or {}
    status.update(fields)
    status["updated"] = time.time()
    write_json_atomic(run_dir / STATUS, status)
    return status


def read_status(run_dir: Path) -> dict[str, Any]:
    return read_json(run_dir / STATUS, {}) or {}


def record_process(run_dir: Path, name: str, pid: int, argv0: str = "") -> None:
    """Add a started process (its own process group: pgid = pid) to ``processes.json``."""
    procs = read_processes(run_dir)
    procs.append(
        {
            "name": name,
            "pid": pid,
            "pgid": pid,
            "argv0": argv0,
            "started": time.time(),
            "start_ticks": start_ticks(pid),
        }
    )
    write_json_atomic(run_dir / PROCESSES, procs)


def read_processes(run_dir: Path) -> list[dict[str, Any]]:
    return list(read_json(run_dir / PROCESSES, []) or [])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        # A zombie is not alive (it only waits to be reaped).
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (``/proc/<pid>/stat`` field 22), or
    None when there is no such process (or no /proc). Stable for the life of the process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def write_launcher_pid(run_dir: Path, pid: int | None = None) -> None:
    """Record the launcher (default: this process) in ``launcher.pid``."""
    pid = os.getpid() if pid is None else pid
    data = {"pid": pid, "start_ticks": start_ticks(pid), "started": time.time()}
    write_json_atomic(run_dir / LAUNCHER_PID, data)


def read_launcher_pid(run_dir: Path) -> dict[str, Any] | None:
    """``{"pid", "start_ticks"?, "started"?}`` from ``launcher.pid`` (JSON, or a bare pid, whose
    ``started`` is then the file's mtime), or None when there is none."""
    path = run_dir / LAUNCHER_PID
    try:
        text = path.read_text(encoding="utf-8").strip()
        mtime = path.stat().st_mtime
    except OSError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, int):
        data = {"pid": data}
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
        return None
    data.setdefault("started", mtime)
    return data


def record_tmp_dir(run_dir: Path, path: Path) -> None:
    """Note a folder outside the run folder that the run made (a Ray temp dir), for
    ``swerl clean``; kept in ``status.json`` under ``tmp_dirs``."""
    dirs = list(read_status(run_dir).get("tmp_dirs") or [])
    if str(path) not in dirs:
        update_status(run_dir, tmp_dirs=[*dirs, str(path)])


def append_metrics(run_dir: Path, step: int, metrics: dict[str, Any]) -> None:
    """Append one step's metrics; flushed and fsynced (a crash keeps every finished step)."""
    path = run_dir / METRICS
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, **metrics}, default=float) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every step's metrics; a torn last line (killed mid-write) is ignored."""
    rows = []
    try:
        lines = (run_dir / METRICS).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        with contextlib.suppress(ValueError):
            rows.append(json.loads(line))
    return rows


def run_dirs(output_dir: Path) -> list[Path]:
    """Run folders under ``output_dir`` (those with a config.yaml), oldest first."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if (p / "config.yaml").is_file()]
    return sorted(found, key=lambda p: (p / "config.yaml").stat().st_mtime)


def find_run(ref: str | None, output_dir: Path = Path("runs")) -> Path:
    """A run folder from a path, a run id under ``output_dir``, or (None) the newest run."""
    from swerl.errors import UserError

    if ref:
        for cand in (Path(ref), output_dir / ref):
            if (cand / "config.yaml").is_file():
                return cand
        raise UserError(f"no run {ref!r}: give a run folder or a run id under {output_dir}/")
    runs = run_dirs(output_dir)
    if not runs:
        raise UserError(f"no runs under {output_dir}/")
    return runs[-1]
