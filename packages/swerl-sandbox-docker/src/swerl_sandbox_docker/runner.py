"""Run one Harbor trial in a swerl docker sandbox and say how it went.

One :class:`DockerTrialRunner` serves one run: it writes each trial's compose overlay into the
run folder, runs the trial through Harbor's own docker environment (``type="docker"``, Harbor
unmodified), and returns a :class:`TrialOutcome`: reward, failure cause, seconds per phase and
the trial folder.

Harbor is told to keep the container (``keep_containers``): at the end it only stops it. The
runner then reads the container's exit status before removing it itself, which is how a sandbox
killed mid-trial is told apart from one that Harbor stopped (exit 143, SIGTERM through tini).
The container is removed in every case (unless the ``keep_containers`` option asks otherwise),
also when the trial is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swerl.components import AgentSpec
from swerl.errors import UserError
from swerl_sandbox_docker import containers
from swerl_sandbox_docker.component import DockerSandboxOptions
from swerl_sandbox_docker.containers import ContainerState
from swerl_sandbox_docker.forwarder import ModelSocketForwarder
from swerl_sandbox_docker.overlay import MODEL_PORT, socket_mount, write_overlay

if TYPE_CHECKING:
    from harbor.models.trial.result import TrialResult
    from harbor.trial.hooks import TrialHookEvent

#: The Harbor environment class trials run in (environment.py: Harbor's Docker environment with
#: secrets kept off the host's process list).
ENVIRONMENT = "swerl_sandbox_docker.environment:SwerlDockerEnvironment"

#: Failure causes a trial can end with (``None``: it ran to a reward).
SANDBOX_ERROR = "sandbox_error"  # the container did not start, or died / was killed mid-trial
AGENT_TIMEOUT = "agent_timeout"  # the agent ran past its time limit (the verifier still ran)
AGENT_ERROR = "agent_error"  # the agent failed to set up, or exited non-zero
MODEL_ERROR = "model_error"  # the model endpoint failed (connection, 5xx, bad request)
VERIFIER_ERROR = "verifier_error"  # the tests timed out or wrote no valid reward
CANCELLED = "cancelled"  # the trial was cancelled (Ctrl-C, shutdown)
HARBOR_ERROR = "harbor_error"  # anything else Harbor reported
CAUSES = (
    SANDBOX_ERROR,
    AGENT_TIMEOUT,
    AGENT_ERROR,
    MODEL_ERROR,
    VERIFIER_ERROR,
    CANCELLED,
    HARBOR_ERROR,
)

#: Trial events a caller may hook (Harbor's TrialEvent values).
EVENTS = ("start", "environment-start", "agent-start", "agent-end", "verification-start", "end")

Hook = Callable[["TrialHookEvent"], Awaitable[None]]


@dataclass
class TrialOutcome:
    """What one trial produced, in plain data (``to_dict`` is JSON-ready)."""

    trial_id: str
    task_name: str
    trial_dir: Path
    #: The verifier's ``reward`` (or its only reward); None when it wrote none, or when the
    #: sandbox died under the trial (such a reward measures nothing).
    reward: float | None
    rewards: dict[str, float] = field(default_factory=dict)
    failure_cause: str | None = None
    failure_detail: str = ""
    #: Seconds per phase: env_setup, agent_setup, agent_run, verifier, teardown, total.
    timings: dict[str, float] = field(default_factory=dict)
    container: ContainerState | None = None
    #: Docker's complaint when the container could not be inspected or removed ("" when fine).
    cleanup_error: str = ""
    #: Harbor's own result (agent context, token counts, exception info); not in ``to_dict``.
    result: TrialResult | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("result")
        data["trial_dir"] = str(self.trial_dir)
        return data


def _harbor_agent_config(agent: AgentSpec | Mapping[str, Any] | Any) -> Any:
    """Harbor's TrialAgentConfig from a swerl AgentSpec, a mapping, or one already built."""
    from harbor import TrialAgentConfig

    if isinstance(agent, TrialAgentConfig):
        return agent
    if isinstance(agent, AgentSpec):
        data: dict[str, Any] = {
            "name": agent.name,
            "import_path": agent.import_path,
            "model_name": agent.model_name,
            "env": dict(agent.env),
            "kwargs": dict(agent.kwargs),
        }
        return TrialAgentConfig(**{k: v for k, v in data.items() if v is not None})
    if isinstance(agent, Mapping):
        return TrialAgentConfig(**dict(agent))
    raise TypeError(f"agent must be an AgentSpec, a mapping or a TrialAgentConfig, not {agent!r}")


_ID_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def new_trial_id(task_name: str) -> str:
    """``<task>__<8 hex>``: unique, readable, valid as a folder, label and compose name."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", task_name).strip("-.") or "trial"
    return f"{base}__{uuid.uuid4().hex[:8]}"


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def phase_timings(result: TrialResult) -> dict[str, float]:
    """Seconds per phase from Harbor's result (phases that never ran are left out)."""
    phases = {
        "env_setup": result.environment_setup,
        "agent_setup": result.agent_setup,
        "agent_run": result.agent_execution,
        "verifier": result.verifier,
    }
    out: dict[str, float] = {}
    for name, timing in phases.items():
        if timing is not None and (s := _seconds(timing.started_at, timing.finished_at)):
            out[name] = s
        elif timing is not None and timing.started_at and timing.finished_at:
            out[name] = 0.0
    return out


def _harbor_stop_seconds(result: TrialResult | None) -> float:
    """Time Harbor spent after the last phase (stopping the container), 0 when unknown."""
    if result is None or result.finished_at is None:
        return 0.0
    phases = (result.environment_setup, result.agent_setup, result.agent_execution, result.verifier)
    ends = [t.finished_at for t in phases if t is not None and t.finished_at is not None]
    if not ends:
        return 0.0
    return max(0.0, (result.finished_at - max(ends)).total_seconds())


def classify(
    result: TrialResult | None, container: ContainerState | None
) -> tuple[str | None, str]:
    """(failure cause, one-line detail) of a finished trial; (None, "") when nothing failed.

    A container that died under the trial wins over whatever Harbor saw next (an agent exec that
    failed, a missing reward file): the sandbox is the cause. Otherwise the phase in which
    Harbor recorded the exception decides, refined by its type.
    """
    if container is not None and container.died:
        how = "was OOM-killed" if container.oom_killed else f"exited {container.exit_code}"
        return SANDBOX_ERROR, f"the sandbox container {how} during the trial"
    if result is None:
        return HARBOR_ERROR, "harbor returned no result"
    exc = result.exception_info
    if exc is None:
        return None, ""
    from harbor.models.trial.error_policy import FailureCause

    name = exc.exception_type
    message = (exc.exception_message or "").strip().splitlines()
    detail = f"{name}: {message[0]}" if message else name
    cause = exc.policy.cause
    at = exc.occurred_at

    def before(timing: Any) -> bool:
        return timing is None or timing.started_at is None or at < timing.started_at

    if name == "CancelledError" or cause == FailureCause.CANCELLED:
        return CANCELLED, detail
    if name == "AgentTimeoutError":
        return AGENT_TIMEOUT, detail
    if cause == FailureCause.MODEL_PROVIDER_FAILED:
        return MODEL_ERROR, detail
    if cause == FailureCause.SANDBOX_FAILED and name != "AgentSetupTimeoutError":
        return SANDBOX_ERROR, detail
    if before(result.agent_setup):
        return SANDBOX_ERROR, detail  # the environment did not come up
    if before(result.agent_execution) or name == "AgentSetupTimeoutError":
        return AGENT_ERROR, detail
    if before(result.verifier):
        return AGENT_ERROR, detail
    if cause == FailureCause.HARBOR_FAILED:
        return HARBOR_ERROR, detail
    return VERIFIER_ERROR, detail


def _reward(result: TrialResult | None) -> tuple[float | None, dict[str, float]]:
    if result is None or result.verifier_result is None or not result.verifier_result.rewards:
        return None, {}
    rewards = {k: float(v) for k, v in result.verifier_result.rewards.items()}
    if "reward" in rewards:
        return rewards["reward"], rewards
    return (next(iter(rewards.values())) if len(rewards) == 1 else None), rewards


class DockerTrialRunner:
    """Runs the trials of one run, each in its own no-network container.

    ``run_dir`` gets the per-trial compose overlays (``sandbox/``) and, unless ``trials_dir`` is
    given, Harbor's trial folders (``trials/``). ``sock_dir`` is the folder of the host's model
    socket (see :class:`~swerl_sandbox_docker.forwarder.ModelSocketForwarder`); it is created if
    missing, so trials whose agent needs no model (Harbor's ``oracle``, ``nop``) run without one.
    """

    def __init__(
        self,
        options: DockerSandboxOptions | None = None,
        *,
        run_id: str,
        run_dir: Path,
        sock_dir: Path | None = None,
        trials_dir: Path | None = None,
        model_port: int = MODEL_PORT,
    ) -> None:
        if not _ID_OK.match(run_id):
            raise UserError(f"run id {run_id!r} may only hold letters, digits, '_', '.', '-'")
        self.options = options or DockerSandboxOptions()
        self.run_id = run_id
        self.run_dir = Path(run_dir).resolve()
        self.sock_dir = Path(sock_dir).resolve() if sock_dir else self.run_dir / "sock"
        self.trials_dir = Path(trials_dir).resolve() if trials_dir else self.run_dir / "trials"
        self.model_port = model_port

    async def run_trial(
        self,
        task_dir: Path,
        agent: AgentSpec | Mapping[str, Any] | Any,
        *,
        trial_id: str | None = None,
        agent_timeout_sec: float | None = None,
        hooks: Mapping[str, Hook] | None = None,
    ) -> TrialOutcome:
        """Run one trial of the task in ``task_dir`` with ``agent``; never raises for a failed
        trial (the outcome says why), only for bad arguments or a cancellation.

        ``hooks`` maps event names (:data:`EVENTS`) to async callbacks that get Harbor's
        ``TrialHookEvent``; the container of a running trial carries the label
        ``swerl.trial=<trial_id>``.
        """
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        from harbor import (
            Trial,
            TrialConfig,
            TrialEnvironmentConfig,
            TrialTaskConfig,
        )
        from harbor.trial.hooks import TrialEvent

        task_dir = Path(task_dir).resolve()
        if not (task_dir / "task.toml").is_file():
            raise UserError(f"{task_dir} is not a Harbor task: it has no task.toml")
        trial_id = trial_id or new_trial_id(task_dir.name)
        if not _ID_OK.match(trial_id):
            raise UserError(f"trial id {trial_id!r} may only hold letters, digits, '_', '.', '-'")
        opts = self.options
        self.sock_dir.mkdir(parents=True, exist_ok=True)
        overlay = write_overlay(
            self.run_dir / "sandbox" / f"{trial_id}.compose.json",
            run_id=self.run_id,
            trial_id=trial_id,
            cpus=opts.cpus,
            memory_mb=opts.memory_mb,
            pids_limit=opts.pids_limit,
            port=self.model_port,
        )
        agent_config = _harbor_agent_config(agent)
        if agent_timeout_sec is not None:
            agent_config = agent_config.model_copy(
                update={"override_timeout_sec": agent_timeout_sec}
            )
        config = TrialConfig(
            task=TrialTaskConfig(path=task_dir),
            trial_name=trial_id,
            trials_dir=self.trials_dir,
            agent=agent_config,
            environment=TrialEnvironmentConfig(
                type="docker",
                import_path=ENVIRONMENT,
                delete=True,
                # Harbor only stops the container; the runner reads how it ended, then removes it.
                kwargs={"keep_containers": True},
                extra_docker_compose=[overlay],
                mounts=[socket_mount(self.sock_dir)],
            ),
        )

        started = time.monotonic()
        result: TrialResult | None = None
        container: ContainerState | None = None
        cleanup_error = ""
        error = ""
        prebuilt = True
        try:
            trial = await Trial.create(config)
            prebuilt = bool(trial.task.config.environment.docker_image)
            for event, callback in (hooks or {}).items():
                trial.add_hook(TrialEvent(event), callback)
            result = await trial.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Harbor could not even set the trial up (bad task, agent)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            teardown = time.monotonic()
            container, cleanup_error = await asyncio.shield(
                self._end_containers(trial_id, prebuilt)
            )
            teardown = time.monotonic() - teardown
            if not opts.keep_containers:
                with contextlib.suppress(OSError):
                    overlay.unlink()

        cause, detail = classify(result, container)
        if result is None and error:
            cause, detail = HARBOR_ERROR, error
        reward, rewards = _reward(result)
        timings = phase_timings(result) if result is not None else {}
        timings["teardown"] = round(teardown + _harbor_stop_seconds(result), 3)
        timings["total"] = round(time.monotonic() - started, 3)
        return TrialOutcome(
            trial_id=trial_id,
            task_name=result.task_name if result is not None else task_dir.name,
            trial_dir=self.trials_dir / trial_id,
            # A reward from a sandbox that died under the trial measures nothing.
            reward=None if cause == SANDBOX_ERROR else reward,
            rewards=rewards,
            failure_cause=cause,
            failure_detail=detail,
            timings=timings,
            container=container,
            cleanup_error=cleanup_error,
            result=result,
        )

    async def _end_containers(
        self, trial_id: str, prebuilt: bool
    ) -> tuple[ContainerState | None, str]:
        """Read how the trial's container ended, then remove it (and a per-trial image).

        Returns the state and docker's complaint when it could not do either (the engine died):
        a trial's outcome is reported even then, and ``cleanup()`` can try again later.
        """
        state, problem = None, ""
        try:
            state = await asyncio.to_thread(containers.container_state, trial_id)
            if not self.options.keep_containers:
                await asyncio.to_thread(containers.remove_containers, trial_id=trial_id)
                if not prebuilt:
                    await asyncio.to_thread(containers.remove_trial_image, trial_id)
        except containers.DockerError as exc:
            problem = str(exc)
        return state, problem

    def cleanup(self) -> list[str]:
        """Remove every container of this run (after a crash, or at the end of the run)."""
        return containers.cleanup_run(self.run_id)

    def model_forwarder(self, port: int, host: str = "127.0.0.1") -> ModelSocketForwarder:
        """The host side of this run's model socket, forwarding to the proxy on ``host:port``
        (start it before the first trial whose agent calls the model, stop it after the last)."""
        return ModelSocketForwarder(self.sock_dir, port, host)


def outcome_json(outcome: TrialOutcome) -> str:
    """One line of JSON for a trial outcome."""
    return json.dumps(outcome.to_dict(), sort_keys=True, default=str)
