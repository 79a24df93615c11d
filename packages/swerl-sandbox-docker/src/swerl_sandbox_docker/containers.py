"""Find, inspect and remove sandbox containers by their swerl labels.

Every trial container carries ``swerl.run=<run_id>`` and ``swerl.trial=<trial_id>`` (see
``overlay.py``), so cleanup needs no record of what was started: after a trial, after a crash of
the whole run, or from ``swerl clean``, the labels find everything. A trial's compose project
has no networks or volumes (``network_mode: none``, bind mounts only), so removing its
containers removes the project.

Every docker command has a timeout and runs in its own process group (``swerl.proc``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from swerl.proc import Result, run_command
from swerl_sandbox_docker.overlay import RUN_LABEL, STOPPED_EXIT_CODE, TRIAL_LABEL

TIMEOUT_S = 30.0
Runner = Callable[[Sequence[str], float], Result]
_NEVER_STARTED = "0001-01-01T00:00:00Z"


class DockerError(RuntimeError):
    """A docker command failed; the message is docker's own first line."""


@dataclass
class ContainerState:
    """How a trial's container ended, read before it is removed."""

    id: str
    exit_code: int
    oom_killed: bool
    running: bool = False
    started: bool = True

    @property
    def died(self) -> bool:
        """True when something other than Harbor's stop ended it (a kill, OOM, a crash)."""
        if self.running or not self.started:
            return False
        return self.oom_killed or self.exit_code != STOPPED_EXIT_CODE


def _selector(run_id: str | None, trial_id: str | None) -> list[str]:
    if (run_id is None) == (trial_id is None):
        raise ValueError("give exactly one of run_id and trial_id")
    label = f"{RUN_LABEL}={run_id}" if run_id is not None else f"{TRIAL_LABEL}={trial_id}"
    return ["--filter", f"label={label}"]


def _check(res: Result, what: str) -> str:
    if res.rc != 0:
        raise DockerError(f"`{what}` failed: {res.message()}")
    return res.out


def find_containers(
    *, run_id: str | None = None, trial_id: str | None = None, run: Runner = run_command
) -> list[str]:
    """Ids of the containers (running or not) labelled with the run or the trial."""
    out = _check(
        run(["docker", "ps", "-aq", "--no-trunc", *_selector(run_id, trial_id)], TIMEOUT_S),
        "docker ps",
    )
    return out.split()


def container_state(trial_id: str, run: Runner = run_command) -> ContainerState | None:
    """State of the trial's container, or None when there is none (never created, or gone)."""
    ids = find_containers(trial_id=trial_id, run=run)
    if not ids:
        return None
    fmt = "{{.Id}} {{.State.ExitCode}} {{.State.OOMKilled}} {{.State.Running}} {{.State.StartedAt}}"
    out = _check(run(["docker", "inspect", "--format", fmt, ids[0]], TIMEOUT_S), "docker inspect")
    cid, code, oom, running, started_at = out.split()[:5]
    return ContainerState(
        id=cid,
        exit_code=int(code),
        oom_killed=oom == "true",
        running=running == "true",
        started=started_at != _NEVER_STARTED,
    )


def remove_containers(
    *, run_id: str | None = None, trial_id: str | None = None, run: Runner = run_command
) -> list[str]:
    """Force-remove the containers labelled with the run or the trial; returns their ids."""
    ids = find_containers(run_id=run_id, trial_id=trial_id, run=run)
    if ids:
        res = run(["docker", "rm", "-f", "-v", *ids], TIMEOUT_S)
        # A container that went away in between is not an error.
        if res.rc != 0 and "no such container" not in res.message().lower():
            _check(res, "docker rm")
    return ids


def remove_trial_image(trial_id: str, run: Runner = run_command) -> bool:
    """Remove the image a Dockerfile task built for this trial (compose names it
    ``<project>-main``); Harbor leaves it when it only stops the container."""
    project = compose_project(trial_id)
    res = run(["docker", "image", "rm", "-f", f"{project}-main"], TIMEOUT_S)
    return res.rc == 0


def compose_project(trial_id: str) -> str:
    """The compose project Harbor 0.25 names a trial's environment (``<trial>__env``)."""
    import re

    name = f"{trial_id}__env".lower()
    if not re.match(r"^[a-z0-9]", name):
        name = "0" + name
    return re.sub(r"[^a-z0-9_-]", "-", name)


def cleanup_run(run_id: str, run: Runner = run_command) -> list[str]:
    """Remove every container of a run: at its end, after a crash, from ``swerl clean``."""
    return remove_containers(run_id=run_id, run=run)
