"""``swerl status``, ``swerl stop`` and ``swerl clean``: look at, stop and tidy one run folder.

Everything here starts from what the run recorded in its folder (see :mod:`swerl.runstate`):
``processes.json`` (the processes the launcher started) and ``launcher.pid``. Nothing is found by
name, so a second run on the same machine, or any other user's process, is never touched.

Before a pid is signalled it must still be the process the run recorded: the same kernel start
time (``start_ticks``) when the record has one, else a start no later than the record and the
same program (argv[0]). A pid the kernel has since reused is reported and left alone. Each
recorded process leads its own process group (``boot.Supervisor`` starts each in a new session),
so stopping signals the group, which ends its children too: SIGTERM, a grace period, SIGKILL.

``stop`` also removes the run's sandbox containers (label ``swerl.run=<run_id>``, the label
``swerl_sandbox_docker`` puts on every trial container): a stopped trial cannot go on, and a resume
reruns its step. ``clean`` does too, removes transient files, and then checks that nothing
is left: no recorded process alive, no labelled container, the run's ports free.
It never removes ``checkpoints/``, ``weights/``, ``metrics.jsonl``, ``wandb/`` or trajectories.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from swerl import runstate
from swerl.proc import run_command

if TYPE_CHECKING:
    from rich.console import Console

Say = Callable[[str], None]

RUN_LABEL = "swerl.run"  # = swerl_sandbox_docker.overlay.RUN_LABEL
FORCE_GPU_KILL_ENV = "RL_CLEAN_FORCE_GPU_KILL"
#: Removed by every clean: the model socket folder, sandbox overlays, the proxy's config.
TRANSIENT = ("sock", "sandbox", "litellm.yaml")
#: Never removed, whatever the flags.
KEEP = ("checkpoints", "weights", "metrics.jsonl", "wandb", "trajectories", "config.yaml")
PORT_NAMES = ("proxy", "gateway", "policy")
#: A recorded ``started`` is taken after the process started; allow for clock granularity.
SLACK_S = 2.0
DOCKER_TIMEOUT_S = 60.0
#: Headline metrics: label → names a metrics row may use for it (first found wins).
KEY_METRICS: dict[str, tuple[str, ...]] = {
    "reward/mean": ("reward/mean", "critic/score/mean"),
    "pass_rate": ("reward/pass_rate",),
    "rollout_corr/kl": ("rollout_corr/kl",),
    "step_time_s": ("time/step_s", "timing_s/step"),
}


def _quiet(_: str) -> None:
    pass


# --- /proc ------------------------------------------------------------------------------------


@dataclass
class ProcFacts:
    pid: int
    state: str
    pgid: int
    start_ticks: int
    cmdline: list[str]

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")

    @property
    def program(self) -> str:
        return " ".join(self.cmdline)[:80] or "?"


def proc_facts(pid: int) -> ProcFacts | None:
    """State, process group, start time and command line of ``pid``; None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        rest = stat.rsplit(")", 1)[1].split()
        state, pgid, ticks = rest[0], int(rest[2]), int(rest[19])
    except (OSError, ValueError, IndexError):
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        raw = b""
    cmdline = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    return ProcFacts(pid, state, pgid, ticks, cmdline)


def _all_pids() -> Iterator[int]:
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                yield int(entry.name)


def group_members(pgid: int) -> list[ProcFacts]:
    """Live (not zombie) processes in process group ``pgid``."""
    found = []
    for pid in _all_pids():
        facts = proc_facts(pid)
        if facts and facts.pgid == pgid and not facts.zombie:
            found.append(facts)
    return found


def _boot_time() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def start_epoch(ticks: int) -> float:
    """Wall-clock start of a process from its start time in clock ticks after boot."""
    return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")


def _names(facts: ProcFacts) -> set[str]:
    """Names a process may answer to: argv[0], and argv[1] for a script run by its shebang."""
    names = {os.path.basename(a) for a in facts.cmdline[:2]}
    with contextlib.suppress(OSError):
        names.add(os.path.basename(os.readlink(f"/proc/{facts.pid}/exe")))
    return names


def _is_ours(entry: dict[str, Any], facts: ProcFacts, *, launcher: bool = False) -> str:
    """Empty when the live process ``facts`` is the one ``entry`` recorded, else why not."""
    ticks = entry.get("start_ticks")
    if isinstance(ticks, int):
        if facts.start_ticks != ticks:
            return f"pid {facts.pid} was reused: it now runs {facts.program}"
        return ""
    started = entry.get("started")
    if isinstance(started, int | float) and start_epoch(facts.start_ticks) > started + SLACK_S:
        return f"pid {facts.pid} was reused (started after the record): it now runs {facts.program}"
    argv0 = str(entry.get("argv0") or "")
    if argv0 and os.path.basename(argv0) not in _names(facts):
        return f"pid {facts.pid} now runs {facts.program}, not {argv0}"
    if launcher and "swerl" not in " ".join(facts.cmdline):
        return f"pid {facts.pid} now runs {facts.program}, not a swerl launcher"
    return ""


# --- what the run recorded --------------------------------------------------------------------


@dataclass
class Target:
    """One recorded process (or the launcher) and what it is now."""

    name: str
    pid: int
    #: ``alive``: running and ours; ``leftovers``: the leader is gone but children of its
    #: group live; ``gone``; ``foreign``: the pid now belongs to another process.
    state: str
    pgid: int | None = None  # the group to signal; None: signal the pid only
    start_ticks: int | None = None
    note: str = ""
    log: Path | None = None

    @property
    def alive(self) -> bool:
        return self.state in ("alive", "leftovers")

    def still_alive(self) -> bool:
        if self.pgid is not None and group_members(self.pgid):
            return True
        facts = proc_facts(self.pid)
        return bool(facts and not facts.zombie and facts.start_ticks == self.start_ticks)

    def send(self, sig: int) -> str:
        """Send ``sig`` to the group (or the pid); an error message, or empty."""
        try:
            if self.pgid is not None:
                os.killpg(self.pgid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            return ""
        except PermissionError:
            return f"{self.name} (pid {self.pid}): not allowed to signal it"
        return ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "pgid": self.pgid,
            "alive": self.alive,
            "state": self.state,
            "note": self.note,
            "log": str(self.log) if self.log else None,
        }


def _target(entry: dict[str, Any], name: str, *, launcher: bool = False) -> Target:
    pid = int(entry["pid"])
    facts = proc_facts(pid)
    if facts and not facts.zombie:
        why = _is_ours(entry, facts, launcher=launcher)
        if pid == os.getpid():
            why = f"pid {pid} is this very process"
        if why:
            return Target(name, pid, "foreign", note=f"{why}: left alone")
        if launcher:
            # A background launcher leads its own group; a foreground one shares the shell's.
            pgid = pid if facts.pgid == pid else None
        else:
            pgid = int(entry.get("pgid") or pid)
            pgid = pgid if facts.pgid == pgid else None
        if pgid == os.getpgrp():  # never the group of the process that stops the run
            pgid = None
        return Target(name, pid, "alive", pgid, facts.start_ticks)
    # The leader is gone; children it left in its group are still the run's.
    pgid = None if launcher else int(entry.get("pgid") or pid)
    if pgid is not None and pgid != os.getpgrp():
        left = [m for m in group_members(pgid) if _started_after(m, entry)]
        if left:
            pids = ", ".join(str(m.pid) for m in left)
            return Target(name, pid, "leftovers", pgid, note=f"exited; its children {pids} live")
    return Target(name, pid, "gone")


def _started_after(facts: ProcFacts, entry: dict[str, Any]) -> bool:
    ticks = entry.get("start_ticks")
    if isinstance(ticks, int):
        return facts.start_ticks >= ticks
    started = entry.get("started")
    if isinstance(started, int | float):
        return start_epoch(facts.start_ticks) >= started - 60  # recorded soon after its start
    return False


def launcher_entry(run_dir: Path) -> dict[str, Any] | None:
    """The launcher's record: ``launcher.pid`` (``swerl run --background``), else ``launcher``
    in ``status.json`` (a foreground ``swerl run``)."""
    entry = runstate.read_launcher_pid(run_dir)
    if entry is None:
        status = runstate.read_status(run_dir)
        pid = status.get("launcher", status.get("launcher_pid"))
        if isinstance(pid, int):
            entry = {"pid": pid, "started": status.get("updated")}
    return entry


def targets(run_dir: Path) -> list[Target]:
    """The launcher, then every recorded process, newest first (the order to stop them in)."""
    found: list[Target] = []
    entry = launcher_entry(run_dir)
    if entry is not None:
        t = _target(entry, "launcher", launcher=True)
        t.log = _launcher_log(run_dir)
        found.append(t)
    seen: set[tuple[int, Any]] = set()
    for rec in reversed(runstate.read_processes(run_dir)):
        if not isinstance(rec, dict) or not isinstance(rec.get("pid"), int):
            continue
        key = (rec["pid"], rec.get("start_ticks"))
        if key in seen:
            continue
        seen.add(key)
        name = str(rec.get("name") or "?")
        t = _target(rec, name)
        log = run_dir / "logs" / f"{name}.log"
        t.log = log if log.is_file() else None
        found.append(t)
    return found


def _launcher_log(run_dir: Path) -> Path | None:
    status = runstate.read_status(run_dir)
    for key in ("launcher_log", "log"):
        if isinstance(status.get(key), str):
            return Path(status[key])
    launches = sorted((run_dir / "logs").glob("launch_*.log"))
    return launches[-1] if launches else None


# --- status -----------------------------------------------------------------------------------


def key_metrics(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, names in KEY_METRICS.items():
        for name in names:
            if name in row:
                out[label] = row[name]
                break
    return out


def run_status(run_dir: Path) -> dict[str, Any]:
    """What ``swerl status --json`` prints."""
    status = runstate.read_status(run_dir)
    rows = runstate.read_metrics(run_dir)
    last = rows[-1] if rows else dict(status.get("metrics") or {})
    found = targets(run_dir)
    launcher = next((t for t in found if t.name == "launcher"), None)
    procs = [t for t in found if t is not launcher]
    updated = status.get("updated")
    if not isinstance(updated, int | float):
        files = (run_dir / runstate.STATUS, run_dir / runstate.METRICS)
        stamps = [p.stat().st_mtime for p in files if p.exists()]
        updated = max(stamps) if stamps else None
    step = status.get("step", last.get("step"))  # 0-based, as the loop records it
    total = status.get("total_steps", status.get("total"))
    logs = sorted(str(p) for p in (run_dir / "logs").glob("*.log"))
    return {
        "run_id": run_dir.name,
        "run_dir": str(run_dir),
        "phase": status.get("phase", "unknown"),
        "running": any(t.alive for t in found),
        "step": step,
        "total_steps": total,
        "steps_done": len(rows),
        "metrics": last,
        "key_metrics": key_metrics(last),
        "launcher": launcher.to_json() if launcher else None,
        "processes": [t.to_json() for t in reversed(procs)],  # in start order
        "logs": logs,
        "updated": updated,
        "updated_age_s": None if updated is None else round(time.time() - updated, 1),
    }


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_status(info: dict[str, Any], console: Console) -> None:
    p = console.print
    phase = info["phase"]
    if not info["running"] and phase not in ("done", "failed", "stopped", "paused"):
        phase += " [yellow](nothing alive: the run ended without saying so)[/]"
    step = "-" if not isinstance(info["step"], int) else str(info["step"] + 1)
    if info["total_steps"] is not None:
        step += f"/{info['total_steps']}"
    p(f"[bold]run[/] {info['run_id']}  ({info['run_dir']})", highlight=False)
    done = info["steps_done"]
    p(
        f"phase: {phase}   step: {step} ({done} finished)   updated: {_age(info['updated_age_s'])}",
        highlight=False,
    )
    if info["key_metrics"]:
        p("metrics: " + "  ".join(f"{k} {_fmt(v)}" for k, v in info["key_metrics"].items()))
    elif info["metrics"]:
        shown = [(k, v) for k, v in info["metrics"].items() if k != "step"][:6]
        p("metrics: " + "  ".join(f"{k} {_fmt(v)}" for k, v in shown))
    else:
        p("metrics: none yet")
    rows = ([info["launcher"]] if info["launcher"] else []) + info["processes"]
    if not rows:
        p("processes: none recorded")
    for r in rows:
        mark = "[green]alive[/]" if r["alive"] else f"[dim]{r['state']}[/]"
        line = f"  {r['name']:<14} pid {r['pid']:<8} {mark}"
        if r["note"]:
            line += f"  {r['note']}"
        if r["log"]:
            line += f"  log {r['log']}"
        p(line, highlight=False, soft_wrap=True)
    if info["logs"]:
        p(f"logs: {Path(info['logs'][0]).parent}/ ({len(info['logs'])} file(s))", highlight=False)


# --- stop -------------------------------------------------------------------------------------


@dataclass
class StopReport:
    run_id: str
    stopped: list[Target] = field(default_factory=list)
    killed: list[Target] = field(default_factory=list)  # needed SIGKILL
    foreign: list[Target] = field(default_factory=list)
    left: list[Target] = field(default_factory=list)  # still alive after SIGKILL
    errors: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)  # sandbox containers removed
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.left and not self.errors


#: How long after stopping a run's processes to look for its containers a second time.
STRAGGLER_S = 3.0


def _wait(procs: list[Target], timeout: float) -> list[Target]:
    deadline = time.monotonic() + timeout
    while True:
        alive = [t for t in procs if t.still_alive()]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


def stop_run(
    run_dir: Path, *, grace_s: float = 15.0, say: Say = _quiet, sandboxes: bool = True
) -> StopReport:
    """Stop the run's launcher and recorded processes (with their groups), then (``sandboxes``)
    remove its sandbox containers; set phase stopped.

    A trial's ``docker compose up`` that was under way when its process was stopped may still
    have its container created by the daemon a moment later, so containers are looked for twice.
    """
    report = StopReport(run_dir.name)
    found = targets(run_dir)
    report.foreign = [t for t in found if t.state == "foreign"]
    live = [t for t in found if t.alive]
    for t in live:
        what = f"group {t.pgid}" if t.pgid is not None else f"pid {t.pid}"
        say(f"SIGTERM {t.name} (pid {t.pid}, {what})")
        if msg := t.send(signal.SIGTERM):
            report.errors.append(msg)
    stubborn = _wait(live, grace_s)
    for t in stubborn:
        say(f"SIGKILL {t.name} (pid {t.pid}): still alive after {grace_s:g} s")
        if msg := t.send(signal.SIGKILL):
            report.errors.append(msg)
    report.left = _wait(stubborn, 5.0)
    report.killed = [t for t in stubborn if t not in report.left]
    report.stopped = [t for t in live if t not in report.left]
    if sandboxes:
        for pause in (0.0, STRAGGLER_S if live else 0.0):
            time.sleep(pause)
            ids, why = remove_containers(run_dir.name)
            report.containers += ids or []
            if why and why not in report.notes:
                report.notes.append(why)
    phase = runstate.read_status(run_dir).get("phase")
    if report.stopped or phase not in ("done", "failed", "paused"):
        runstate.update_status(run_dir, phase="stopped", stopped_at=time.time())
    return report


def render_stop(report: StopReport, console: Console) -> None:
    p = console.print
    if not report.stopped and not report.left:
        p(f"run {report.run_id}: nothing was running", highlight=False)
    for t in report.stopped:
        how = "SIGKILL" if t in report.killed else "SIGTERM"
        p(f"stopped {t.name} (pid {t.pid}) with {how}", highlight=False)
    for t in report.left:
        p(f"[red]still alive:[/] {t.name} (pid {t.pid})", highlight=False)
    for t in report.foreign:
        p(f"{t.name}: {t.note}", highlight=False)
    if report.containers:
        n = len(report.containers)
        p(f"removed {n} sandbox container(s) labelled {RUN_LABEL}={report.run_id}", highlight=False)
    for note in report.notes:
        p(f"note: {note}", highlight=False)
    for msg in report.errors:
        p(f"[red]error:[/] {msg}", highlight=False)


# --- clean ------------------------------------------------------------------------------------


@dataclass
class CleanReport:
    run_id: str
    stop: StopReport
    removed: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.left


def docker_containers(run_id: str) -> tuple[list[str] | None, str]:
    """Ids of the run's containers, or None and why docker could not be asked."""
    res = run_command(
        ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label={RUN_LABEL}={run_id}"],
        DOCKER_TIMEOUT_S,
    )
    if not res.started:
        return None, "docker is not installed: no containers to remove"
    if res.rc != 0:
        return None, f"docker did not answer ({res.message()}): containers not checked"
    return res.out.split(), ""


def remove_containers(run_id: str) -> tuple[list[str] | None, str]:
    """Force-remove the run's containers; their ids, or None and why not."""
    ids, why = docker_containers(run_id)
    if not ids:
        return ids, why
    res = run_command(["docker", "rm", "-f", "-v", *ids], DOCKER_TIMEOUT_S)
    if res.rc != 0 and "no such container" not in res.message().lower():
        return ids, f"docker rm failed: {res.message()}"
    return ids, ""


def delete_pods(run_id: str) -> tuple[bool, str]:
    if shutil.which("kubectl") is None:
        return True, "no pods: the k8s sandbox is not available yet"
    res = run_command(["kubectl", "delete", "pods", "-l", f"{RUN_LABEL}={run_id}"], 120.0)
    if res.rc != 0:
        return False, f"kubectl delete pods failed: {res.message()}"
    return True, "kubectl: " + (res.out.strip() or res.err.strip() or "done")


def gpu_processes() -> list[tuple[int, str]] | None:
    """(pid, name) of every GPU compute process, or None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    res = run_command(
        ["nvidia-smi", "--query-compute-apps=pid,process_name", "--format=csv,noheader"], 30.0
    )
    if res.rc != 0:
        return None
    found = []
    for line in res.out.splitlines():
        pid, _, name = line.partition(",")
        with contextlib.suppress(ValueError):
            found.append((int(pid.strip()), name.strip()))
    return found


def _gpu_check(run_dir: Path, report: CleanReport) -> None:
    apps = gpu_processes()
    if apps is None:
        return
    recorded = runstate.read_processes(run_dir)
    ours_pids = {r.get("pid") for r in recorded if isinstance(r, dict)}
    ours_groups = {r.get("pgid") or r.get("pid") for r in recorded if isinstance(r, dict)}
    force = os.environ.get(FORCE_GPU_KILL_ENV) == "1"
    for pid, name in apps:
        facts = proc_facts(pid)
        if facts is None or facts.zombie:
            continue
        if pid in ours_pids or facts.pgid in ours_groups:
            report.left.append(f"GPU process {pid} ({name}) of this run is still alive")
            continue
        if force:
            try:
                os.kill(pid, signal.SIGKILL)
                msg = f"killed GPU process {pid} ({name}), not this run's: {FORCE_GPU_KILL_ENV}=1"
            except OSError as exc:
                msg = f"could not kill GPU process {pid} ({name}): {exc.strerror or exc}"
                report.left.append(msg)
        else:
            msg = (
                f"left alone: GPU process {pid} ({name}) was not started by this run "
                f"(set {FORCE_GPU_KILL_ENV}=1 to kill it)"
            )
        report.notes.append(msg)


def _remove(path: Path, run_dir: Path, report: CleanReport) -> None:
    rel = path.relative_to(run_dir).parts[0] if path.is_relative_to(run_dir) else ""
    if rel in KEEP:  # a guard: nothing kept may ever be on a removal list
        raise AssertionError(f"refusing to remove {path}")
    if not path.exists() and not path.is_symlink():
        return
    errors: list[str] = []
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, onexc=lambda _f, p, e: errors.append(f"{p}: {e}"))
    else:
        try:
            path.unlink()
        except OSError as exc:
            errors.append(f"{path}: {exc}")
    if errors:
        report.left.append(f"could not remove {errors[0]}")
    else:
        report.removed.append(str(path.relative_to(run_dir)) if rel else str(path))


def run_ports(run_dir: Path) -> dict[str, int]:
    """``ports.proxy/gateway/policy`` from the run's config.yaml."""
    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    ports = data.get("ports") if isinstance(data, dict) else None
    if not isinstance(ports, dict):
        return {}
    return {k: ports[k] for k in PORT_NAMES if isinstance(ports.get(k), int)}


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Free as a server would see it (a port in TIME_WAIT is free): the preflight's check."""
    from swerl.preflight.checks.host import port_error

    return port_error(port, host) is None


def port_holders(port: int) -> list[int]:
    """Pids (among those this user may inspect) with a socket listening on ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    pids = []
    for pid in _all_pids():
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in inodes:
                        pids.append(pid)
                        break
    return pids


def _group_of(pid: int) -> int | None:
    facts = proc_facts(pid)
    return facts.pgid if facts else None


def verify(run_dir: Path, report: CleanReport, *, docker_checked: bool = True) -> None:
    for t in targets(run_dir):
        if t.alive:
            report.left.append(f"{t.name} (pid {t.pid}) is still alive")
    if docker_checked:
        ids, _ = docker_containers(run_dir.name)
        if ids:
            report.left.append(f"{len(ids)} container(s) labelled {RUN_LABEL}={run_dir.name}")
    recorded = [r for r in runstate.read_processes(run_dir) if isinstance(r, dict)]
    groups = {r.get("pgid") or r.get("pid") for r in recorded}
    for name, port in run_ports(run_dir).items():
        if not port_free(port):
            holders = port_holders(port)
            by = f" by pid {', '.join(map(str, holders))}" if holders else ""
            if holders and not any(_group_of(h) in groups for h in holders):
                by += " (not a process of this run)"
            report.left.append(f"port {port} ({name}) is still in use{by}")


def clean_run(
    run_dir: Path,
    *,
    logs: bool = False,
    trials: bool = False,
    pods: bool = False,
    grace_s: float = 15.0,
    say: Say = _quiet,
) -> CleanReport:
    """Stop the run, remove its containers and transient files, then check nothing is left."""
    run_id = run_dir.name
    report = CleanReport(run_id, stop_run(run_dir, grace_s=grace_s, say=say, sandboxes=False))
    report.left += report.stop.errors

    ids, why = remove_containers(run_id)
    if ids:
        report.containers = ids
    if why:
        report.notes.append(why)
    if pods:
        ok, msg = delete_pods(run_id)
        (report.notes if ok else report.left).append(msg)
    _gpu_check(run_dir, report)

    names = list(TRANSIENT)
    if not any(t.name == "launcher" and t.alive for t in targets(run_dir)):
        names.append(runstate.LAUNCHER_PID)
    if logs:
        names.append("logs")
    if trials:
        names.append("trials")
    for name in names:
        _remove(run_dir / name, run_dir, report)
    tmp_dirs = [str(d) for d in runstate.read_status(run_dir).get("tmp_dirs") or []]
    for d in tmp_dirs:
        path = Path(d).resolve()
        inside = path.is_relative_to(run_dir.resolve())
        kept = inside and path.relative_to(run_dir.resolve()).parts[:1] in [(k,) for k in KEEP]
        if run_id not in str(path) or run_dir.resolve().is_relative_to(path) or kept:
            report.notes.append(f"not removed: {d} (not a temp folder of this run)")
            continue
        _remove(path, run_dir, report)
    if tmp_dirs:
        runstate.update_status(run_dir, tmp_dirs=[d for d in tmp_dirs if Path(d).exists()])
    verify(run_dir, report, docker_checked=ids is not None)
    return report


def render_clean(report: CleanReport, console: Console) -> None:
    render_stop(report.stop, console)
    p = console.print
    if report.containers:
        n = len(report.containers)
        p(f"removed {n} container(s) labelled {RUN_LABEL}={report.run_id}", highlight=False)
    if report.removed:
        p("removed: " + ", ".join(report.removed), highlight=False)
    for note in report.notes:
        p(f"note: {note}", highlight=False)
    if report.ok:
        p(f"[green]run {report.run_id} is clean[/]: no process, container or port left")
    else:
        p(f"[red]run {report.run_id}: {len(report.left)} thing(s) left[/]", highlight=False)
        for item in report.left:
            p(f"  - {item}", highlight=False)
