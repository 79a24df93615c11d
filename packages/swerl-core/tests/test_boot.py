"""The boot supervisor with real subprocesses: health waits, logs, failures, clean stop."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from swerl.boot import BootError, Supervisor, expand_env
from swerl.plan import ProcessSpec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_server(port: int, delay: float = 0.0) -> list[str]:
    code = (
        f"import time, http.server; time.sleep({delay}); "
        f"print('serving', flush=True); "
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler)"
        ".serve_forever()"
    )
    return [sys.executable, "-c", code]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] == "Z"


def test_waits_for_health_then_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    spec = ProcessSpec(
        "web", http_server(port, delay=1.0), health=f"http://127.0.0.1:{port}/", ready_timeout_s=30
    )
    waits: list[float] = []
    with Supervisor(tmp_path / "logs", on_wait=lambda name, s: waits.append(s)) as sup:
        proc = sup.start(spec)
        assert proc.alive()
        assert waits, "the start waited for the health URL"
        pid = proc.pid
    assert gone(pid)
    assert "serving" in (tmp_path / "logs/web.log").read_text()


def test_process_that_dies_before_ready_is_reported_with_its_log(tmp_path: Path) -> None:
    spec = ProcessSpec(
        "broken",
        [sys.executable, "-c", "import sys; print('bad model path'); sys.exit(3)"],
        health="http://127.0.0.1:9/",
    )
    with Supervisor(tmp_path) as sup, pytest.raises(BootError) as err:
        sup.start(spec)
    assert "broken exited with status 3" in str(err.value)
    assert "bad model path" in str(err.value)


def test_health_timeout_stops_the_process(tmp_path: Path) -> None:
    spec = ProcessSpec(
        "slow",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        health=f"http://127.0.0.1:{free_port()}/",
        ready_timeout_s=1.0,
    )
    sup = Supervisor(tmp_path, grace_s=2)
    start = time.monotonic()
    with pytest.raises(BootError, match="did not answer"):
        sup.start(spec)
    assert time.monotonic() - start < 15
    assert sup.running == []


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    spec = ProcessSpec("parent", ["bash", "-c", f"sleep 60 & echo $! > {pidfile}; wait"])
    sup = Supervisor(tmp_path, grace_s=2)
    sup.start(spec)
    for _ in range(50):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.1)
    child = int(pidfile.read_text())
    sup.stop_all()
    time.sleep(0.2)
    assert gone(child)


def test_env_references_are_expanded_at_start_and_never_written(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    spec = ProcessSpec(
        "echo",
        [sys.executable, "-c", f"import os; open({str(out)!r}, 'w').write(os.environ['K'])"],
        env={"K": "${SECRET_FOR_TEST}"},
        files={str(tmp_path / "cfg.yaml"): "master_key: os.environ/SECRET_FOR_TEST\n"},
    )
    with Supervisor(tmp_path / "logs", env={"SECRET_FOR_TEST": "s3cr3t", "PATH": "/bin"}) as sup:
        proc = sup.start(spec)
        proc.popen.wait(timeout=10)
    assert out.read_text() == "s3cr3t"
    assert "s3cr3t" not in (tmp_path / "cfg.yaml").read_text()
    with pytest.raises(BootError, match=r"K needs \$MISSING"):
        expand_env({"K": "${MISSING}"}, {})
