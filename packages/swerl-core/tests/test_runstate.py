"""The run folder's state files: atomic JSON, merged status, process records, metrics, lookup."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from swerl import runstate
from swerl.errors import UserError


def test_atomic_write_replaces_the_file_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "status.json"
    runstate.write_json_atomic(path, {"a": 1})
    runstate.write_json_atomic(path, {"a": 2, "when": Path("/x")})
    assert json.loads(path.read_text()) == {"a": 2, "when": "/x"}
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]


def test_a_failed_atomic_write_keeps_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "status.json"
    runstate.write_json_atomic(path, {"phase": "train"})

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(runstate.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        runstate.write_json_atomic(path, {"phase": "sync"})
    assert json.loads(path.read_text()) == {"phase": "train"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_read_json_of_a_missing_or_broken_file_is_the_default(tmp_path: Path) -> None:
    assert runstate.read_json(tmp_path / "none.json", {"d": 1}) == {"d": 1}
    (tmp_path / "bad.json").write_text('{"half": ')
    assert runstate.read_json(tmp_path / "bad.json") is None


def test_update_status_merges_and_stamps(tmp_path: Path) -> None:
    runstate.update_status(tmp_path, phase="boot", step=0, total_steps=5)
    before = time.time()
    status = runstate.update_status(tmp_path, phase="rollout", step=1)
    assert status == runstate.read_status(tmp_path)
    assert status["phase"] == "rollout" and status["step"] == 1 and status["total_steps"] == 5
    assert status["updated"] >= before
    assert runstate.read_status(tmp_path / "nothing") == {}


def test_record_process_keeps_pid_group_argv0_and_start_time(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        runstate.record_process(tmp_path, "policy", proc.pid, "sleep")
        runstate.record_process(tmp_path, "gateway", proc.pid, "sleep")
        procs = runstate.read_processes(tmp_path)
        assert [p["name"] for p in procs] == ["policy", "gateway"]
        rec = procs[0]
        assert rec["pid"] == rec["pgid"] == proc.pid and rec["argv0"] == "sleep"
        assert rec["start_ticks"] == runstate.start_ticks(proc.pid) is not None
        assert abs(rec["started"] - time.time()) < 30
    finally:
        proc.kill()
        proc.wait()
    assert runstate.read_processes(tmp_path / "nothing") == []


def test_pid_alive_is_false_for_a_zombie_and_a_gone_pid() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    assert runstate.pid_alive(proc.pid)
    proc.kill()
    deadline = time.monotonic() + 5
    while runstate.pid_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not runstate.pid_alive(proc.pid)  # a zombie until reaped
    proc.wait()
    assert not runstate.pid_alive(proc.pid)
    assert runstate.start_ticks(proc.pid) is None


def test_metrics_are_appended_and_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    assert runstate.read_metrics(tmp_path) == []
    runstate.append_metrics(tmp_path, 1, {"reward/mean": 0.25})
    runstate.append_metrics(tmp_path, 2, {"reward/mean": 0.5})
    with open(tmp_path / runstate.METRICS, "a") as f:
        f.write('{"step": 3, "reward/me')  # killed mid-write
    rows = runstate.read_metrics(tmp_path)
    assert rows == [{"step": 1, "reward/mean": 0.25}, {"step": 2, "reward/mean": 0.5}]


def test_launcher_pid_as_json_or_a_bare_pid(tmp_path: Path) -> None:
    assert runstate.read_launcher_pid(tmp_path) is None
    runstate.write_launcher_pid(tmp_path)
    rec = runstate.read_launcher_pid(tmp_path)
    assert rec is not None
    assert rec["pid"] == os.getpid() and rec["start_ticks"] == runstate.start_ticks(os.getpid())
    (tmp_path / runstate.LAUNCHER_PID).write_text("4242\n")
    rec = runstate.read_launcher_pid(tmp_path)
    assert rec is not None and rec["pid"] == 4242
    assert rec["started"] == pytest.approx((tmp_path / runstate.LAUNCHER_PID).stat().st_mtime)
    (tmp_path / runstate.LAUNCHER_PID).write_text("not a pid")
    assert runstate.read_launcher_pid(tmp_path) is None


def test_record_tmp_dir_keeps_each_once(tmp_path: Path) -> None:
    runstate.record_tmp_dir(tmp_path, Path("/tmp/ray_x"))
    runstate.record_tmp_dir(tmp_path, Path("/tmp/ray_x"))
    assert runstate.read_status(tmp_path)["tmp_dirs"] == ["/tmp/ray_x"]


def make_run(output: Path, name: str, mtime: float) -> Path:
    run = output / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("run: {}\n")
    os.utime(run / "config.yaml", (mtime, mtime))
    return run


def test_find_run_by_path_id_or_newest(tmp_path: Path) -> None:
    output = tmp_path / "runs"
    with pytest.raises(UserError, match="no runs under"):
        runstate.find_run(None, output)
    old = make_run(output, "a-1", 1000)
    new = make_run(output, "b-2", 2000)
    (output / "not-a-run").mkdir()
    assert runstate.run_dirs(output) == [old, new]
    assert runstate.find_run(None, output) == new
    assert runstate.find_run("a-1", output) == old
    assert runstate.find_run(str(old), tmp_path / "elsewhere") == old
    with pytest.raises(UserError, match="no run 'zzz'"):
        runstate.find_run("zzz", output)
