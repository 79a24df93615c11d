"""The `swerl run` launcher with real processes: a server with a health URL and a scripted
trainer that writes metrics the way the training loop does. The stack's real parts are covered by
tests/test_e2e_train.py; this pins down the launcher's own behaviour quickly."""

from __future__ import annotations

import io
import json
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from swerl import train
from swerl.errors import UserError
from swerl.plan import LaunchPlan, ProcessSpec
from swerl.runstate import pid_alive, read_processes, read_status
from swerl.testing import free_ports

TRAINER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    run, steps, rc = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    for step in range(steps):
        time.sleep(0.3)
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "reward/mean": step / 10}) + "\\n")
    sys.exit(rc)
    """
)


def fake_prepare(tmp_path: Path, steps: int, rc: int, server_dies: bool = False) -> Any:
    run_dir = tmp_path / "runs" / "fake-1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("{}\n")
    (port,) = free_ports(1)
    server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    if server_dies:  # answers its health URL, then exits 3 s later
        code = (
            "import http.server as h, threading, os, time\n"
            f"s = h.HTTPServer(('127.0.0.1', {port}), h.SimpleHTTPRequestHandler)\n"
            "threading.Thread(target=s.serve_forever, daemon=True).start()\n"
            "time.sleep(3); os._exit(1)\n"
        )
        server = [sys.executable, "-c", code]
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    plan = LaunchPlan(
        run_id="fake-1",
        run_dir=str(run_dir),
        mode="sync",
        engine="fake",
        source="<test>",
        processes=[
            ProcessSpec("gateway", server, cwd=str(tmp_path), health=f"http://127.0.0.1:{port}/"),
            ProcessSpec(
                "trainer",
                [sys.executable, str(script), str(run_dir), str(steps), str(rc)],
                cwd=str(tmp_path),
            ),
        ],
    )
    loaded = SimpleNamespace(config=SimpleNamespace(algorithm=SimpleNamespace(total_steps=steps)))

    def prepare(_loaded: Any, _pm: Any, _resume: Any) -> Any:
        return loaded, plan, {"PATH": "/usr/bin:/bin"}

    return run_dir, loaded, prepare


def launch(monkeypatch: pytest.MonkeyPatch, prepare: Any, loaded: Any) -> tuple[Any, str]:
    monkeypatch.setattr(train, "prepare", prepare)
    monkeypatch.setattr(train, "POLL_S", 0.1)
    out = io.StringIO()
    result = train.run_training(loaded, None, console=Console(file=out, width=200))  # type: ignore[arg-type]
    return result, out.getvalue()


def test_follows_the_trainer_prints_each_step_and_stops_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, loaded, prepare = fake_prepare(tmp_path, steps=3, rc=0)
    result, out = launch(monkeypatch, prepare, loaded)
    assert result.returncode == 0 and result.steps == 3
    assert [line.split()[1] for line in out.splitlines() if line.startswith("step ")] == [
        "1/3",
        "2/3",
        "3/3",
    ]
    procs = read_processes(run_dir)
    assert [p["name"] for p in procs] == ["gateway", "trainer"]
    assert not any(pid_alive(p["pid"]) for p in procs)  # the server was stopped too
    assert read_status(run_dir)["launcher"] > 0


def test_a_failing_trainer_is_reported_with_its_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, loaded, prepare = fake_prepare(tmp_path, steps=1, rc=3)
    result, out = launch(monkeypatch, prepare, loaded)
    assert result.returncode == 3 and result.steps == 1
    assert "the trainer exited with status 3" in out
    status = read_status(run_dir)
    assert status["phase"] == "failed" and "status 3" in status["error"]
    assert not any(pid_alive(p["pid"]) for p in read_processes(run_dir))


def test_a_dying_stack_process_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, loaded, prepare = fake_prepare(tmp_path, steps=200, rc=0, server_dies=True)
    with pytest.raises(UserError, match="died during the run: gateway"):
        launch(monkeypatch, prepare, loaded)
    assert read_status(run_dir)["phase"] == "failed"
    assert not any(pid_alive(p["pid"]) for p in read_processes(run_dir))  # trainer stopped
    metrics = run_dir / "metrics.jsonl"
    rows = metrics.read_text().splitlines() if metrics.exists() else []
    assert len(rows) < 200  # the run did not go on to the end
    assert all(json.loads(r)["step"] == i for i, r in enumerate(rows))


def test_a_paused_run_says_why_and_the_alarm_shows_on_the_step_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, loaded, prepare = fake_prepare(tmp_path, steps=3, rc=0)
    (tmp_path / "trainer.py").write_text(
        textwrap.dedent(
            """
            import json, sys
            from pathlib import Path
            run = Path(sys.argv[1])
            with open(run / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"step": 0, "is_token/kl_alarm": 1.0}) + "\\n")
            status = json.loads((run / "status.json").read_text())
            status.update(phase="paused", message="paused after step 1: KL ALARM")
            (run / "status.json").write_text(json.dumps(status))
            """
        )
    )
    result, out = launch(monkeypatch, prepare, loaded)
    assert result.returncode == 0 and result.steps == 1
    (line,) = [x for x in out.splitlines() if x.startswith("step ")]
    assert line.endswith("KL ALARM")
    assert "paused after step 1: KL ALARM" in out
    assert read_status(run_dir)["phase"] == "paused"
