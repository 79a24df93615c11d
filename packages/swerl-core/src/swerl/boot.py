"""Start a run's processes in order, wait for each to be healthy, and stop them all cleanly.

Each process runs in its own session (process group) with its output in
``<log_dir>/<name>.log``. ``${NAME}`` references in a plan's env are expanded from the
launcher's environment here, at start, so that secret values never enter a plan, a log or a file.
On exit, Ctrl-C or an error, the supervisor stops everything it started, newest first:
SIGTERM to the group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from swerl.errors import UserError
from swerl.plan import ProcessSpec

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
POLL_S = 0.5


class BootError(UserError):
    """A process did not start, died, or did not become healthy in time."""


@dataclass
class Running:
    spec: ProcessSpec
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


def expand_env(env: Mapping[str, str], source: Mapping[str, str]) -> dict[str, str]:
    """Replace ``${NAME}`` with ``source[NAME]``; a missing name is an error naming it."""

    def one(key: str, value: str) -> str:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in source:
                raise BootError(f"{key} needs ${name}, which is not set in the environment")
            return source[name]

        return _REF.sub(sub, value)

    return {k: one(k, v) for k, v in env.items()}


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Supervisor:
    """Owns the processes of one run; use as a context manager."""

    def __init__(
        self,
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        on_wait: Callable[[str, float], None] | None = None,
        on_started: Callable[[Running], None] | None = None,
        grace_s: float = 10.0,
    ) -> None:
        self.log_dir = log_dir
        self.env = dict(os.environ if env is None else env)
        self.on_wait = on_wait
        #: Called right after a process is spawned, before its health wait (to record it).
        self.on_started = on_started
        self.grace_s = grace_s
        self.running: list[Running] = []

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(self, spec: ProcessSpec) -> Running:
        """Write the spec's files, start the process, and wait until its health URL answers."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for path, text in spec.files.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        env = {**self.env, **expand_env(spec.env, self.env)}
        log_path = self.log_dir / f"{spec.name}.log"
        with open(log_path, "ab") as log:
            try:
                popen = subprocess.Popen(
                    spec.argv,
                    cwd=spec.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BootError(f"{spec.name}: cannot start {spec.argv[0]}: {exc}") from None
        proc = Running(spec, popen, log_path)
        self.running.append(proc)
        if self.on_started:
            self.on_started(proc)
        if spec.health:
            self._wait_healthy(proc)
        return proc

    def _wait_healthy(self, proc: Running) -> None:
        spec = proc.spec
        assert spec.health
        start = time.monotonic()
        while True:
            waited = time.monotonic() - start
            if not proc.alive():
                raise BootError(
                    f"{spec.name} exited with status {proc.popen.returncode} before it was "
                    f"ready; last lines of {proc.log_path}:\n{log_tail(proc.log_path)}"
                )
            if http_ok(spec.health):
                return
            if waited > spec.ready_timeout_s:
                self.stop(proc)
                raise BootError(
                    f"{spec.name} did not answer {spec.health} within {spec.ready_timeout_s:g} s; "
                    f"last lines of {proc.log_path}:\n{log_tail(proc.log_path)}"
                )
            if self.on_wait:
                self.on_wait(spec.name, waited)
            time.sleep(POLL_S)

    def dead(self) -> list[Running]:
        """Processes that have exited on their own."""
        return [p for p in self.running if not p.alive()]

    def stop(self, proc: Running) -> None:
        if proc.alive():
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.popen.wait()
        else:
            _signal_group(proc.pid, signal.SIGKILL)  # children it may have left behind
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        """Stop everything, newest first."""
        for proc in reversed(list(self.running)):
            self.stop(proc)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
