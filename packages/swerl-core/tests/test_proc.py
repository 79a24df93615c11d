"""swerl.proc.run_command: a hung tool and its children end at the timeout; nothing raises."""

from __future__ import annotations

import time
from pathlib import Path

from swerl.proc import NOT_STARTED, TIMED_OUT, run_command


def test_timeout_ends_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # A wrapper whose child would keep the pipes open after the wrapper dies.
    script = f"sleep 30 & echo $! > {pidfile}; wait"
    start = time.monotonic()
    res = run_command(["bash", "-c", script], timeout=0.5)
    assert res.rc == TIMED_OUT and "timed out after 0.5 s" in res.err
    assert time.monotonic() - start < 10
    child = int(pidfile.read_text())
    time.sleep(0.2)
    gone = not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text()
    assert gone, "the child of the timed-out command is still running"


def test_missing_program_is_not_started() -> None:
    res = run_command(["no-such-program-swerl"], timeout=5)
    assert (res.rc, res.started) == (NOT_STARTED, False)
    assert "no-such-program-swerl" in res.err


def test_a_tool_that_exits_127_itself_still_counts_as_started() -> None:
    res = run_command(["bash", "-c", "echo shim says no >&2; exit 127"], timeout=5)
    assert (res.rc, res.started) == (127, True)
    assert res.message() == "shim says no"
