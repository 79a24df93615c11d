"""The runner's parts without an engine: the overlay, failure causes, container bookkeeping."""

from __future__ import annotations

import json
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from swerl.components import AgentSpec
from swerl.errors import UserError
from swerl.proc import Result
from swerl_sandbox_docker import containers
from swerl_sandbox_docker.containers import ContainerState, DockerError
from swerl_sandbox_docker.overlay import listen_probe, overlay, socket_mount, write_overlay
from swerl_sandbox_docker.runner import (
    AGENT_ERROR,
    AGENT_TIMEOUT,
    CANCELLED,
    MODEL_ERROR,
    SANDBOX_ERROR,
    VERIFIER_ERROR,
    DockerTrialRunner,
    _harbor_agent_config,
    classify,
    new_trial_id,
)

# --- overlay -------------------------------------------------------------------------------------


def test_overlay_takes_the_container_off_the_network_with_limits_and_labels():
    main = overlay(run_id="r1", trial_id="t1", cpus=1.5, memory_mb=2048, pids_limit=300)[
        "services"
    ]["main"]
    assert main["network_mode"] == "none"
    assert main["init"] is True
    assert (main["cpus"], main["mem_limit"], main["memswap_limit"], main["pids_limit"]) == (
        1.5,
        "2048m",
        "2048m",
        300,
    )
    assert main["labels"] == {"swerl.run": "r1", "swerl.trial": "t1"}
    assert main["entrypoint"] == []  # an image's own ENTRYPOINT would swallow the command
    cmd = main["command"][-1]
    assert "TCP-LISTEN:8002,bind=127.0.0.1" in cmd
    assert "UNIX-CONNECT:/run/swerl/model.sock" in cmd
    assert cmd.endswith("exec sleep infinity")
    assert main["healthcheck"]["test"][-1] == listen_probe(8002)


def test_listen_probe_finds_a_loopback_listener_and_only_while_it_listens():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert subprocess.run(["sh", "-c", listen_probe(port)]).returncode == 0
    assert subprocess.run(["sh", "-c", listen_probe(port)]).returncode != 0


def test_overlay_file_is_json_that_compose_reads_and_the_mount_is_read_only(tmp_path):
    path = write_overlay(
        tmp_path / "a" / "t.json", run_id="r", trial_id="t", cpus=1, memory_mb=64, pids_limit=16
    )
    assert json.loads(path.read_text())["services"]["main"]["labels"]["swerl.trial"] == "t"
    mount = socket_mount(tmp_path / "sock")
    assert mount == {
        "type": "bind",
        "source": str((tmp_path / "sock").resolve()),
        "target": "/run/swerl",
        "read_only": True,
    }


# --- failure causes ------------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _timing(start_s: float, end_s: float):
    from harbor.models.trial.result import TimingInfo

    return TimingInfo(
        started_at=T0 + timedelta(seconds=start_s), finished_at=T0 + timedelta(seconds=end_s)
    )


def _result(exc_type: str | None = None, at: float = 0.0, phases: int = 4, message: str = "boom"):
    """A finished trial: phases 1..4 = env setup, agent setup, agent run, verifier, 10 s each."""
    from harbor.models.trial.result import ExceptionInfo

    names = ["environment_setup", "agent_setup", "agent_execution", "verifier"]
    timings = {
        n: (_timing(10 * i, 10 * i + 9) if i < phases else None) for i, n in enumerate(names)
    }
    exc = None
    if exc_type is not None:
        exc = ExceptionInfo(
            exception_type=exc_type,
            exception_message=message,
            exception_traceback="",
            occurred_at=T0 + timedelta(seconds=at),
        )
    return SimpleNamespace(exception_info=exc, **timings)


STOPPED = ContainerState(id="c", exit_code=143, oom_killed=False)


@pytest.mark.parametrize(
    ("exc_type", "at", "phases", "cause"),
    [
        (None, 0, 4, None),
        ("RuntimeError", 5, 1, SANDBOX_ERROR),  # compose up failed: no agent setup
        ("EnvironmentStartTimeoutError", 5, 1, SANDBOX_ERROR),
        ("RuntimeError", 15, 2, AGENT_ERROR),  # agent install failed
        ("AgentSetupTimeoutError", 15, 2, AGENT_ERROR),
        ("NonZeroAgentExitCodeError", 25, 4, AGENT_ERROR),
        ("AgentTimeoutError", 29, 4, AGENT_TIMEOUT),
        ("ApiConnectionError", 25, 4, MODEL_ERROR),
        ("RewardFileNotFoundError", 35, 4, VERIFIER_ERROR),
        ("VerifierTimeoutError", 39, 4, VERIFIER_ERROR),
        ("AddTestsDirError", 31, 4, SANDBOX_ERROR),
        ("CancelledError", 25, 3, CANCELLED),
    ],
)
def test_the_phase_and_type_of_harbors_exception_give_the_cause(exc_type, at, phases, cause):
    got, detail = classify(_result(exc_type, at, phases), STOPPED)
    assert got == cause
    assert detail == ("" if exc_type is None else f"{exc_type}: boom")


@pytest.mark.parametrize(
    ("state", "detail"),
    [
        (ContainerState("c", 137, False), "the sandbox container exited 137 during the trial"),
        (ContainerState("c", 137, True), "the sandbox container was OOM-killed during the trial"),
        (ContainerState("c", 0, False), "the sandbox container exited 0 during the trial"),
    ],
)
def test_a_container_that_died_is_the_cause_whatever_harbor_saw_next(state, detail):
    # Harbor saw a missing reward file (its verifier could not run): the sandbox is to blame.
    assert classify(_result("RewardFileNotFoundError", 35), state) == (SANDBOX_ERROR, detail)
    assert classify(_result(None), state) == (SANDBOX_ERROR, detail)


def test_a_container_stopped_by_harbor_running_or_never_started_did_not_die():
    assert not ContainerState("c", 143, False).died
    assert not ContainerState("c", 0, False, running=True).died
    assert not ContainerState("c", 0, False, started=False).died
    assert classify(_result(None), None) == (None, "")


# --- containers (scripted docker CLI) ------------------------------------------------------------


class Docker:
    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv, timeout):
        self.calls.append(list(argv))
        for prefix, result in self.answers:
            if list(argv[: len(prefix)]) == prefix:
                return result
        raise AssertionError(f"unexpected {argv}")


def test_containers_are_found_by_label_and_removed_with_their_volumes():
    docker = Docker(
        [
            (["docker", "ps"], Result(0, "aaa\nbbb\n", "")),
            (["docker", "rm"], Result(0, "aaa\nbbb\n", "")),
        ]
    )
    assert containers.remove_containers(run_id="r1", run=docker) == ["aaa", "bbb"]
    assert docker.calls == [
        ["docker", "ps", "-aq", "--no-trunc", "--filter", "label=swerl.run=r1"],
        ["docker", "rm", "-f", "-v", "aaa", "bbb"],
    ]
    docker = Docker([(["docker", "ps"], Result(0, "", ""))])
    assert containers.remove_containers(trial_id="t1", run=docker) == []
    assert docker.calls == [
        ["docker", "ps", "-aq", "--no-trunc", "--filter", "label=swerl.trial=t1"]
    ]


def test_a_container_gone_in_between_is_not_an_error_but_a_dead_daemon_is():
    gone = Result(1, "", "Error response from daemon: No such container: aaa")
    docker = Docker([(["docker", "ps"], Result(0, "aaa\n", "")), (["docker", "rm"], gone)])
    assert containers.remove_containers(run_id="r", run=docker) == ["aaa"]
    dead = Result(1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
    with pytest.raises(DockerError, match=r"docker ps.*Cannot connect to the Docker daemon"):
        containers.remove_containers(run_id="r", run=Docker([(["docker", "ps"], dead)]))
    with pytest.raises(ValueError, match="exactly one"):
        containers.find_containers(run_id="r", trial_id="t")


def test_container_state_reads_exit_code_oom_and_start():
    docker = Docker(
        [
            (["docker", "ps"], Result(0, "abc\n", "")),
            (["docker", "inspect"], Result(0, "abc 137 true false 2026-01-01T00:00:00Z\n", "")),
        ]
    )
    state = containers.container_state("t1", run=docker)
    assert state == ContainerState("abc", 137, True, running=False, started=True)
    assert state.died
    never = Result(0, "abc 0 false false 0001-01-01T00:00:00Z\n", "")
    docker = Docker([(["docker", "ps"], Result(0, "abc\n", "")), (["docker", "inspect"], never)])
    assert containers.container_state("t1", run=docker).started is False
    assert (
        containers.container_state("t1", run=Docker([(["docker", "ps"], Result(0, "", ""))]))
        is None
    )


def test_compose_project_is_harbors_name_for_the_trial():
    assert containers.compose_project("Fix-Add__1a2b") == "fix-add__1a2b__env"
    assert containers.compose_project("_x.y") == "0_x-y__env"


# --- runner arguments ----------------------------------------------------------------------------


def test_trial_ids_are_unique_and_safe_for_folders_labels_and_compose():
    a, b = new_trial_id("fix add/öl"), new_trial_id("fix add/öl")
    assert a != b
    assert a.startswith("fix-add-l__") and len(a.split("__")[1]) == 8


def test_bad_ids_and_paths_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="run id"):
        DockerTrialRunner(run_id="a b", run_dir=tmp_path)
    runner = DockerTrialRunner(run_id="r", run_dir=tmp_path)
    import asyncio

    with pytest.raises(UserError, match=r"has no task\.toml"):
        asyncio.run(runner.run_trial(tmp_path, {"name": "nop"}))
    (tmp_path / "task.toml").write_text("")
    with pytest.raises(UserError, match="trial id"):
        asyncio.run(runner.run_trial(tmp_path, {"name": "nop"}, trial_id="../x"))


def test_agent_specs_become_harbor_agent_configs():
    spec = AgentSpec(
        import_path="pkg.mod:Agent", model_name="anthropic/p", env={"K": "v"}, kwargs={"a": 1}
    )
    config = _harbor_agent_config(spec)
    assert (config.import_path, config.name, config.model_name) == (
        "pkg.mod:Agent",
        None,
        "anthropic/p",
    )
    assert (config.env, config.kwargs) == ({"K": "v"}, {"a": 1})
    assert _harbor_agent_config({"name": "oracle"}).name == "oracle"
    assert _harbor_agent_config(config) is config
    with pytest.raises(TypeError, match="AgentSpec"):
        _harbor_agent_config("oracle")


# -- secrets off the host's process list ------------------------------------------------------


def test_secret_variables_go_to_compose_by_name_and_the_command_is_left_alone():
    from swerl_sandbox_docker.environment import hide_secrets

    args = [
        "exec", "-w", "/app",
        "-e", "ANTHROPIC_API_KEY=sk-1", "-e", "ANTHROPIC_MODEL=policy", "-e", "GH_TOKEN=t=2",
        "-u", "root", "main", "bash", "-c", "env -e X_KEY=3",
    ]  # fmt: skip
    out, secrets = hide_secrets(args)
    assert out == [
        "exec", "-w", "/app",
        "-e", "ANTHROPIC_API_KEY", "-e", "ANTHROPIC_MODEL=policy", "-e", "GH_TOKEN",
        "-u", "root", "main", "bash", "-c", "env -e X_KEY=3",
    ]  # fmt: skip
    assert secrets == {"ANTHROPIC_API_KEY": "sk-1", "GH_TOKEN": "t=2"}
    assert hide_secrets(["up", "-e", "A_KEY=1"]) == (["up", "-e", "A_KEY=1"], {})


def test_the_runner_names_an_environment_harbor_can_import():
    from harbor.environments.docker.docker import DockerEnvironment
    from harbor.utils.import_path import import_symbol

    from swerl_sandbox_docker.runner import ENVIRONMENT

    assert issubclass(import_symbol(ENVIRONMENT), DockerEnvironment)
