"""`swerl status`, `stop` and `clean` on a run folder with real processes.

Each process is started the way ``boot.Supervisor`` starts one (its own session, so its own
process group) and recorded in the run's ``processes.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swerl import manage, runstate
from swerl.cli import app
from swerl.testing import docker_ready, need

ROOT = Path(__file__).resolve().parents[3]
Spawn = Callable[..., subprocess.Popen[bytes]]
SLEEPER = ["swerl-base:latest", "sleep", "300"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(pid: int) -> bool:
    return runstate.pid_alive(pid)


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a process in its own session; everything started is killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], *, session: bool = True, **kw: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, start_new_session=session, **kw)  # type: ignore[call-overload]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # a group leader and its children
        with contextlib.suppress(ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def run_dir(runs: Path) -> Path:
    """A run folder with the layout a run leaves, and free ports in its config."""
    run = runs / f"t{uuid.uuid4().hex[:10]}-20250101-000000"
    for sub in ("sock", "sandbox", "logs", "trials/t1", "trajectories", "checkpoints/step_2"):
        (run / sub).mkdir(parents=True)
    for sub in ("weights", "wandb"):
        (run / sub).mkdir()
        (run / sub / "keep.bin").write_text("x")
    ports = {"proxy": free_port(), "gateway": free_port(), "policy": free_port()}
    (run / "config.yaml").write_text(json.dumps({"run": {"name": "t"}, "ports": ports}))
    (run / "litellm.yaml").write_text("model_list: []\n")
    (run / "sock" / "model.sock").write_text("")
    (run / "sandbox" / "overlay.yaml").write_text("")
    (run / "logs" / "gateway.log").write_text("log\n")
    (run / "trials" / "t1" / "result.json").write_text("{}")
    (run / "trajectories" / "rollout.jsonl").write_text("{}\n")
    (run / "checkpoints" / "step_2" / "model.pt").write_text("x")
    runstate.append_metrics(run, 1, {"reward/mean": 0.25})
    return run


def ports(run: Path) -> dict[str, int]:
    return manage.run_ports(run)


def http_server(port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]


def with_children() -> list[str]:
    """A shell that leaves two children in its group (as vLLM leaves its engine process)."""
    return ["sh", "-c", "sleep 300 & sleep 300 & wait"]


def children_of(pgid: int) -> list[int]:
    wait_until(lambda: len(manage.group_members(pgid)) >= 3)
    return [m.pid for m in manage.group_members(pgid) if m.pid != pgid]


# --- stop -------------------------------------------------------------------------------------


def test_stop_ends_recorded_processes_and_their_children(run_dir: Path, spawn: Spawn) -> None:
    port = ports(run_dir)["gateway"]
    shell = spawn(with_children())
    server = spawn(http_server(port), stderr=subprocess.DEVNULL)
    runstate.record_process(run_dir, "policy", shell.pid, "sh")
    runstate.record_process(run_dir, "gateway", server.pid, sys.executable)
    kids = children_of(shell.pid)
    assert len(kids) == 2
    assert wait_until(lambda: port_open(port))
    runstate.update_status(run_dir, phase="rollout", step=1)

    report = manage.stop_run(run_dir, grace_s=5)

    assert report.ok and not report.foreign and not report.killed
    assert [t.name for t in report.stopped] == ["gateway", "policy"]  # newest first
    pids = [shell.pid, server.pid, *kids]
    assert wait_until(lambda: not any(alive(pid) for pid in pids)), pids
    assert not port_open(port)
    assert runstate.read_status(run_dir)["phase"] == "stopped"
    again = manage.stop_run(run_dir, grace_s=1)
    assert not again.stopped and again.ok


def test_stop_escalates_to_sigkill_after_the_grace_period(run_dir: Path, spawn: Spawn) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(300)"
    )
    proc = spawn([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    runstate.record_process(run_dir, "trainer", proc.pid, sys.executable)
    start = time.monotonic()
    report = manage.stop_run(run_dir, grace_s=0.5)
    assert [t.name for t in report.killed] == ["trainer"] and report.ok
    assert time.monotonic() - start < 5
    assert wait_until(lambda: not alive(proc.pid))


def test_children_left_by_an_exited_leader_are_stopped(run_dir: Path, spawn: Spawn) -> None:
    shell = spawn(["sh", "-c", "sleep 300 & sleep 0.5"])
    runstate.record_process(run_dir, "policy", shell.pid, "sh")
    shell.wait()
    (child,) = [m.pid for m in manage.group_members(shell.pid)]
    (target,) = manage.targets(run_dir)
    assert target.state == "leftovers"
    report = manage.stop_run(run_dir, grace_s=5)
    assert [t.name for t in report.stopped] == ["policy"]
    assert wait_until(lambda: not alive(child))


@pytest.mark.parametrize(
    "why",
    ["start time differs", "argv0 differs", "started after the record"],
)
def test_a_recorded_pid_that_is_now_another_process_is_not_killed(
    run_dir: Path, spawn: Spawn, why: str
) -> None:
    other = spawn(["sleep", "300"])  # started outside the run
    ticks = runstate.start_ticks(other.pid)
    assert ticks is not None
    entry: dict[str, object] = {"name": "gateway", "pid": other.pid, "pgid": other.pid}
    if why == "start time differs":  # the recorded process had this pid earlier
        entry |= {"argv0": "sleep", "started": time.time() - 600, "start_ticks": ticks - 100}
    elif why == "argv0 differs":
        entry |= {"argv0": "/opt/venv/bin/python", "started": time.time()}
    else:  # recorded (without start_ticks) an hour before this process existed
        entry |= {"argv0": "sleep", "started": time.time() - 3600}
    runstate.write_json_atomic(run_dir / runstate.PROCESSES, [entry])

    report = manage.stop_run(run_dir, grace_s=1)

    assert [t.name for t in report.foreign] == ["gateway"] and not report.stopped
    time.sleep(0.2)
    assert alive(other.pid)
    info = manage.run_status(run_dir)
    assert info["processes"][0]["state"] == "foreign" and not info["processes"][0]["alive"]
    assert "left alone" in info["processes"][0]["note"]


def test_the_launcher_is_stopped_when_it_is_still_the_launcher(run_dir: Path, spawn: Spawn) -> None:
    launcher = spawn([sys.executable, "-c", "import time; time.sleep(300)", "swerl", "run"])
    assert wait_until(lambda: "swerl" in " ".join(manage.proc_facts(launcher.pid).cmdline))  # type: ignore[union-attr]
    runstate.write_launcher_pid(run_dir, launcher.pid)
    info = manage.run_status(run_dir)
    assert info["launcher"]["pid"] == launcher.pid and info["launcher"]["alive"]
    assert info["running"]
    report = manage.stop_run(run_dir, grace_s=5)
    assert [t.name for t in report.stopped] == ["launcher"]
    assert wait_until(lambda: not alive(launcher.pid))


def test_a_foreground_launcher_is_found_in_status_and_signalled_alone(
    run_dir: Path, spawn: Spawn
) -> None:
    # A foreground `swerl run` shares its shell's process group: only its pid is signalled.
    group = spawn(["sh", "-c", "sleep 300 & wait"], session=False, process_group=0)
    assert wait_until(lambda: len(manage.group_members(group.pid)) == 2)
    kids = [m.pid for m in manage.group_members(group.pid) if m.pid != group.pid]
    code = "import time; time.sleep(300)"
    launcher = spawn(
        [sys.executable, "-c", code, "swerl", "run"], session=False, process_group=group.pid
    )
    assert manage.proc_facts(launcher.pid).pgid == group.pid  # type: ignore[union-attr]
    runstate.update_status(run_dir, phase="train", launcher=launcher.pid)
    report = manage.stop_run(run_dir, grace_s=5)
    assert [(t.name, t.pgid) for t in report.stopped] == [("launcher", None)]
    assert wait_until(lambda: not alive(launcher.pid))
    assert alive(group.pid) and all(alive(k) for k in kids)


def test_a_bare_launcher_pid_of_another_program_is_left_alone(run_dir: Path, spawn: Spawn) -> None:
    other = spawn(["sleep", "300"])
    (run_dir / runstate.LAUNCHER_PID).write_text(f"{other.pid}\n")
    report = manage.stop_run(run_dir, grace_s=1)
    assert [t.name for t in report.foreign] == ["launcher"]
    assert "not a swerl launcher" in report.foreign[0].note
    assert alive(other.pid)


# --- clean ------------------------------------------------------------------------------------

KEPT = [
    "config.yaml",
    "metrics.jsonl",
    "checkpoints/step_2/model.pt",
    "weights/keep.bin",
    "wandb/keep.bin",
    "trajectories/rollout.jsonl",
]


def test_clean_stops_removes_transient_state_and_keeps_data(run_dir: Path, spawn: Spawn) -> None:
    port = ports(run_dir)["policy"]
    server = spawn(http_server(port), stderr=subprocess.DEVNULL)
    runstate.record_process(run_dir, "policy", server.pid, sys.executable)
    assert wait_until(lambda: port_open(port))
    stranger = spawn(["sleep", "300"])
    (run_dir / runstate.LAUNCHER_PID).write_text(f"{stranger.pid}\n")  # no swerl launcher

    report = manage.clean_run(run_dir, grace_s=5)

    assert report.ok, report.left
    assert [t.name for t in report.stop.stopped] == ["policy"]
    assert not alive(server.pid) or wait_until(lambda: not alive(server.pid))
    for gone in ("sock", "sandbox", "litellm.yaml", "launcher.pid"):
        assert not (run_dir / gone).exists(), gone
    assert {"sock", "sandbox", "litellm.yaml", "launcher.pid"} <= set(report.removed)
    for kept in [*KEPT, "logs/gateway.log", "trials/t1/result.json"]:
        assert (run_dir / kept).exists(), kept
    assert runstate.read_status(run_dir)["phase"] == "stopped"
    assert alive(stranger.pid)


def test_clean_logs_and_trials_flags(run_dir: Path) -> None:
    report = manage.clean_run(run_dir, logs=True, trials=True, grace_s=1)
    assert report.ok, report.left
    assert not (run_dir / "logs").exists() and not (run_dir / "trials").exists()
    for kept in KEPT:
        assert (run_dir / kept).exists(), kept


def test_clean_removes_recorded_temp_dirs_named_after_the_run(
    run_dir: Path, tmp_path: Path
) -> None:
    ray = tmp_path / f"ray_{run_dir.name}"
    (ray / "session").mkdir(parents=True)
    other = tmp_path / "ray_someone_else"
    other.mkdir()
    runstate.record_tmp_dir(run_dir, ray)
    runstate.record_tmp_dir(run_dir, other)
    runstate.record_tmp_dir(run_dir, run_dir / "weights")
    report = manage.clean_run(run_dir, grace_s=1)
    assert not ray.exists() and other.exists() and (run_dir / "weights" / "keep.bin").exists()
    assert sum("not removed" in n for n in report.notes) == 2


def test_clean_reports_a_port_still_in_use(run_dir: Path) -> None:
    port = ports(run_dir)["gateway"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        report = manage.clean_run(run_dir, grace_s=1)
        assert not report.ok
        (item,) = report.left
        assert item == (
            f"port {port} (gateway) is still in use by pid {os.getpid()} "
            "(not a process of this run)"
        )
        result = CliRunner().invoke(app, ["clean", str(run_dir)])
        assert result.exit_code == 1, result.output
        assert "1 thing(s) left" in result.output and f"port {port}" in result.output


@pytest.fixture
def bin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH of only this folder: no docker, no kubectl, no nvidia-smi unless written here."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    return path


def script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def test_clean_without_docker_or_kubectl_says_so_and_goes_on(run_dir: Path, bin_path: Path) -> None:
    report = manage.clean_run(run_dir, pods=True, grace_s=1)
    assert report.ok, report.left
    assert "docker is not installed: no containers to remove" in report.notes
    assert "no pods: the k8s sandbox is not available yet" in report.notes
    assert not (run_dir / "sock").exists()


def test_clean_pods_deletes_them_by_label_with_kubectl(run_dir: Path, bin_path: Path) -> None:
    log = bin_path / "kubectl.args"
    script(bin_path / "kubectl", f'echo "$@" > {log}; echo "pod/x deleted"')
    report = manage.clean_run(run_dir, pods=True, grace_s=1)
    assert log.read_text().split() == ["delete", "pods", "-l", f"swerl.run={run_dir.name}"]
    assert "kubectl: pod/x deleted" in report.notes
    script(bin_path / "kubectl", "echo 'no cluster' >&2; exit 1")
    report = manage.clean_run(run_dir, pods=True, grace_s=1)
    assert report.left == ["kubectl delete pods failed: no cluster"]


def test_gpu_processes_of_others_are_left_alone_unless_forced(
    run_dir: Path, bin_path: Path, spawn: Spawn, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = spawn(["/bin/sleep", "300"])
    ours = spawn(["/bin/sleep", "300"])
    runstate.record_process(run_dir, "trainer", ours.pid, "/bin/sleep")
    script(bin_path / "nvidia-smi", f'echo "{other.pid}, python"; echo "{ours.pid}, sleep"')

    report = manage.clean_run(run_dir, grace_s=5)
    assert report.ok, report.left
    assert any(f"left alone: GPU process {other.pid}" in n for n in report.notes)
    assert alive(other.pid)
    assert wait_until(lambda: not alive(ours.pid))

    monkeypatch.setenv(manage.FORCE_GPU_KILL_ENV, "1")
    report = manage.clean_run(run_dir, grace_s=1)
    assert any(f"killed GPU process {other.pid}" in n for n in report.notes)
    assert wait_until(lambda: not alive(other.pid))


@pytest.mark.docker
def test_clean_removes_the_runs_containers(run_dir: Path) -> None:
    reason = docker_ready()
    need(not reason, reason)
    label = f"swerl.run={run_dir.name}"
    started = subprocess.run(
        ["docker", "run", "-d", "--network", "none", "--label", label, *SLEEPER],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        ids, _ = manage.docker_containers(run_dir.name)
        assert ids == [cid]
        report = manage.clean_run(run_dir, grace_s=1)
        assert report.ok, report.left
        assert report.containers == [cid]
        assert manage.docker_containers(run_dir.name) == ([], "")
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, timeout=60)


@pytest.mark.docker
def test_stop_removes_the_runs_containers_even_one_created_after_its_process_ended(
    run_dir: Path, spawn: Spawn
) -> None:
    """A trial's ``docker compose up`` under way when the trainer is stopped: the daemon still
    creates its container a moment later. ``swerl stop`` looks again and removes it."""
    reason = docker_ready()
    need(not reason, reason)
    label = f"swerl.run={run_dir.name}"
    run = " ".join(["docker", "run", "-d", "--network", "none", "--label", label, *SLEEPER])
    # On SIGTERM the "trainer" leaves a container start behind (a child outside the signalled
    # group's lifetime, like dockerd finishing a create), then exits.
    trainer = spawn(["sh", "-c", f"trap '(sleep 0.5; {run} >/dev/null) & exit 0' TERM; "
                                 "while :; do sleep 0.1; done"])  # fmt: skip
    runstate.record_process(run_dir, "trainer", trainer.pid, "sh")
    time.sleep(0.3)  # the trap is set
    try:
        report = manage.stop_run(run_dir, grace_s=5)
        assert report.ok, report.errors
        assert [t.name for t in report.stopped] == ["trainer"]
        assert len(report.containers) == 1, report
        assert manage.docker_containers(run_dir.name) == ([], "")
    finally:
        ids, _ = manage.docker_containers(run_dir.name)
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=60)


# --- the CLI ----------------------------------------------------------------------------------


def test_status_json_fields(run_dir: Path, runs: Path, spawn: Spawn) -> None:
    proc = spawn(["sleep", "300"])
    runstate.record_process(run_dir, "gateway", proc.pid, "sleep")
    runstate.update_status(run_dir, phase="train", step=2, total_steps=10)
    metrics = {"reward/mean": 0.5, "reward/pass_rate": 0.4, "rollout_corr/kl": 3e-4}
    runstate.append_metrics(run_dir, 2, metrics | {"time/step_s": 12.5, "actor/loss": 0.1})
    with open(run_dir / runstate.METRICS, "a") as f:
        f.write('{"step": 3, "reward/mean": 0.')  # torn: the writer was killed

    result = CliRunner().invoke(app, ["status", "--runs-dir", str(runs), "--json"])

    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["run_id"] == run_dir.name and info["phase"] == "train"
    assert info["step"] == 2 and info["total_steps"] == 10 and info["running"]
    assert info["steps_done"] == 2  # the fixture's step 1 and step 2; the torn line is ignored
    assert info["metrics"]["step"] == 2 and info["metrics"]["actor/loss"] == 0.1
    assert info["key_metrics"] == {
        "reward/mean": 0.5,
        "pass_rate": 0.4,
        "rollout_corr/kl": 3e-4,
        "step_time_s": 12.5,
    }
    assert info["launcher"] is None
    (p,) = info["processes"]
    assert p["name"] == "gateway" and p["pid"] == proc.pid and p["alive"]
    assert p["log"] == str(run_dir / "logs" / "gateway.log")
    assert info["logs"] == [str(run_dir / "logs" / "gateway.log")]
    assert 0 <= info["updated_age_s"] < 60

    text = CliRunner().invoke(app, ["status", str(run_dir)])
    assert text.exit_code == 0
    assert "phase: train" in text.output and "step: 3/10 (2 finished)" in text.output
    assert "reward/mean 0.5" in text.output and "gateway" in text.output


def test_status_of_a_dead_run_says_nothing_is_alive(run_dir: Path) -> None:
    runstate.update_status(run_dir, phase="rollout")
    result = CliRunner().invoke(app, ["status", str(run_dir)])
    assert result.exit_code == 0
    assert "nothing alive" in result.output


def test_a_paused_run_is_final_for_status_and_stop(run_dir: Path) -> None:
    runstate.update_status(run_dir, phase="paused", message="paused after step 3: KL ALARM")
    result = CliRunner().invoke(app, ["status", str(run_dir)])
    assert "phase: paused" in result.output and "nothing alive" not in result.output
    manage.stop_run(run_dir, grace_s=0.1)
    assert runstate.read_status(run_dir)["phase"] == "paused"


def test_commands_without_a_run_exit_1_with_a_message(tmp_path: Path) -> None:
    for command in ("status", "stop", "clean"):
        result = CliRunner().invoke(app, [command, "--runs-dir", str(tmp_path / "none")])
        assert result.exit_code == 1, command
        assert "no runs under" in result.output
    result = CliRunner().invoke(app, ["status", "nope", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no run 'nope'" in result.output


def test_stop_and_clean_commands(run_dir: Path, runs: Path, spawn: Spawn) -> None:
    proc = spawn(["sleep", "300"])
    runstate.record_process(run_dir, "policy", proc.pid, "sleep")
    result = CliRunner().invoke(app, ["stop", run_dir.name, "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert f"stopped policy (pid {proc.pid}) with SIGTERM" in result.output
    result = CliRunner().invoke(app, ["clean", "--all-runs", "--runs-dir", str(runs), "--logs"])
    assert result.exit_code == 0, result.output
    assert "is clean" in result.output
    assert not (run_dir / "logs").exists() and (run_dir / "metrics.jsonl").exists()


def test_clean_script_passes_its_arguments(run_dir: Path, runs: Path) -> None:
    out = subprocess.run(
        [str(ROOT / "scripts" / "clean.sh"), run_dir.name, "--runs-dir", str(runs), "--trials"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "is clean" in out.stdout
    assert not (run_dir / "trials").exists() and (run_dir / "trajectories").exists()
