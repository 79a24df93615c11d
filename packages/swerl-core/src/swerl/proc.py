"""Run a short external command safely: its own process group, a timeout, never raises.

Preflight checks ask tools for versions and states (docker, node, an interpreter); a hung tool
must not hang ``swerl check``, and a timeout must also end the tool's children (a wrapper
script's child would otherwise keep the pipes open).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from typing import NamedTuple

TIMED_OUT = 124
NOT_STARTED = 127


class Result(NamedTuple):
    rc: int  # 124: timed out; 127: could not start (not installed), or the tool's own 127
    out: str
    err: str
    started: bool = True  # False when the program could not be started at all

    def message(self) -> str:
        """The first line the command printed about its failure."""
        lines = [line for line in (self.err or self.out).splitlines() if line.strip()]
        return lines[0].strip() if lines else f"exited {self.rc} without a message"


def run_command(argv: Sequence[str], timeout: float) -> Result:
    """Run ``argv`` in its own process group; on timeout end the whole group."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        return Result(NOT_STARTED, "", f"{argv[0]}: {exc.strerror or exc}", started=False)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Result(TIMED_OUT, "", f"`{' '.join(argv)}` timed out after {timeout:g} s")
    return Result(proc.returncode, out, err)
