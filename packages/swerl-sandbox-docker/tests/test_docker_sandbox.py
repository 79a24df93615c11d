"""docker sandbox options and preflight checks.

Scripted engines (a fake runner) cover each failure mode; the real docker CLI covers what a user
sees: no CLI, a daemon that is not there, and (marker ``docker``) a daemon that is.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import time

import pytest

from swerl.config.load import ConfigError
from swerl.preflight import Report, Status
from swerl_sandbox_docker import checks
from swerl_sandbox_docker.checks import Result
from swerl_sandbox_docker.component import DockerSandboxOptions

VERSION = ("docker", "version", "--format", "{{.Server.Version}}")
COMPOSE = ("docker", "compose", "version")
INFO = ("docker", "info", "--format", "{{.NCPU}} {{.MemTotal}}")
DEAD = Result(
    1,
    "",
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
    "Is the docker daemon running?",
)


class Engine:
    """A scripted docker CLI: argv -> Result; records every call with its timeout."""

    def __init__(self, **overrides: Result) -> None:
        self.answers = {
            ("docker", "--version"): Result(0, "Docker version 28.2.2, build e6534b4\n", ""),
            VERSION: Result(0, "28.2.2\n", ""),
            COMPOSE: Result(0, "Docker Compose version v2.40.3\n", ""),
            INFO: Result(0, f"16 {64 * 2**30}\n", ""),
        }
        self.image = Result(0, "sha256:0123456789abcdef0123\n", "")
        self.calls: list[tuple[tuple[str, ...], float]] = []
        for key, value in overrides.items():
            setattr(self, key, value)

    def __call__(self, argv, timeout):
        argv = tuple(argv)
        self.calls.append((argv, timeout))
        if argv[:3] == ("docker", "image", "inspect"):
            return self.image
        return self.answers[argv]


def docker(**options):
    return {"name": "docker", "options": options}


def rows(report):
    return {c.name: (c.status, c.detail, c.fix) for c in report.checks}


@pytest.fixture
def scripted(monkeypatch):
    """Install a scripted engine as the default runner, so checks run through the real hook."""

    def install(engine: Engine) -> Engine:
        monkeypatch.setattr(checks, "run_command", engine)
        return engine

    return install


# --- options ------------------------------------------------------------------------------------


def test_bad_options_name_their_key_path(load, cfg):
    text = cfg(sandbox=docker(cpus=0, network="bridge", memory=2048))
    with pytest.raises(ConfigError) as info:
        load(text)
    issues = {i.path: i.message for i in info.value.issues}
    assert set(issues) == {
        "sandbox.options.cpus",
        "sandbox.options.network",
        "sandbox.options.memory",
    }
    assert "greater than 0" in issues["sandbox.options.cpus"]
    assert "none-with-model-socket" in issues["sandbox.options.network"]
    assert "Did you mean 'memory_mb'?" in issues["sandbox.options.memory"]


def test_defaults(load, cfg):
    opts = load(cfg(sandbox=docker())).options["sandbox"]
    assert isinstance(opts, DockerSandboxOptions)
    assert (opts.base_image, opts.keep_containers, opts.network) == (
        "swerl-base:latest",
        False,
        "none-with-model-socket",
    )


def test_the_sandbox_runs_trials_with_its_options(pm, load, cfg, tmp_path):
    cls = pm.get("sandbox", "docker").cls
    cls.require("run")  # raises NotYetAvailable when the capability is not ready
    opts = load(cfg(sandbox=docker(cpus=2, pids_limit=99))).options["sandbox"]
    runner = cls(opts).runner(run_id="r1", run_dir=tmp_path)
    assert (runner.options.cpus, runner.options.pids_limit) == (2, 99)
    assert (runner.sock_dir, runner.trials_dir) == (tmp_path / "sock", tmp_path / "trials")


# --- scripted engine ----------------------------------------------------------------------------


def test_checks_only_run_when_docker_is_selected(check, cfg, scripted):
    engine = scripted(Engine())
    report = check(cfg())
    assert engine.calls == []
    assert [c for c in report.checks if c.source == "docker"] == []


def test_healthy_engine_passes_every_row(check, cfg, scripted):
    engine = scripted(Engine())
    report = check(cfg(sandbox=docker(cpus=2, memory_mb=8192)))
    found = rows(report)
    assert {name: s for name, (s, _, _) in found.items()} == {
        "docker CLI": Status.PASS,
        "docker daemon": Status.PASS,
        "sandbox base image": Status.PASS,
        "sandbox resources": Status.PASS,
        "docker compose v2": Status.PASS,
        "harbor": Status.PASS,
        "model socket path": Status.PASS,
    }
    assert "engine 28.2.2" in found["docker daemon"][1]
    assert found["docker compose v2"][1] == "compose 2.40.3"
    assert all(timeout <= 5 for _, timeout in engine.calls)
    assert (("docker", "image", "inspect", "--format", "{{.Id}}", "swerl-base:latest"), 5.0) in (
        engine.calls
    )


def test_a_run_folder_too_deep_for_the_model_socket_fails(check, cfg, scripted, tmp_path):
    scripted(Engine())
    deep = tmp_path / ("d" * 60) / ("e" * 40)
    status, detail, fix = rows(check(cfg(sandbox=docker(), run={"output_dir": str(deep)})))[
        "model socket path"
    ]
    assert status is Status.FAIL
    assert str(deep) in detail and "107-byte limit" in detail
    assert "shorter run.output_dir" in fix
    ok = rows(check(cfg(sandbox=docker(), run={"output_dir": "runs"})))["model socket path"]
    assert ok[0] is Status.PASS


def test_dead_daemon_fails_and_skips_what_needs_it(check, cfg, scripted):
    engine = scripted(Engine(answers={**Engine().answers, VERSION: DEAD}))
    found = rows(check(cfg(sandbox=docker())))
    status, detail, fix = found["docker daemon"]
    assert status is Status.FAIL
    assert detail.startswith("not reachable: Cannot connect to the Docker daemon")
    assert "dockerd" in fix and "DOCKER_HOST" in fix
    assert found["sandbox base image"][0] is Status.SKIP
    assert found["sandbox resources"][0] is Status.SKIP
    # Nothing that needs the daemon was asked once it was known to be down.
    assert not any(argv[1] in ("image", "info") for argv, _ in engine.calls)


def test_hanging_daemon_is_a_failure_not_a_hang(check, cfg, scripted):
    stuck = Result(124, "", "`docker version` timed out after 5 s")
    scripted(Engine(answers={**Engine().answers, VERSION: stuck}))
    status, detail, _ = rows(check(cfg(sandbox=docker())))["docker daemon"]
    assert status is Status.FAIL
    assert "timed out after 5 s" in detail


def test_socket_permission_problem_gets_the_group_fix(check, cfg, scripted):
    denied = Result(1, "", "permission denied while trying to connect to the Docker daemon socket")
    scripted(Engine(answers={**Engine().answers, VERSION: denied}))
    _, _, fix = rows(check(cfg(sandbox=docker())))["docker daemon"]
    assert "usermod -aG docker" in fix


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            Result(
                1, "", "docker: unknown command: docker compose\n\nRun 'docker --help' for more"
            ),
            "`docker compose` is missing: docker: unknown command: docker compose",
        ),
        (
            Result(0, "docker-compose version 1.29.2, build unknown\n", ""),
            "compose 1.29.2 is not v2",
        ),
    ],
)
def test_compose_v1_or_none_fails_with_the_plugin_install_line(
    check, cfg, scripted, answer, expected
):
    scripted(Engine(answers={**Engine().answers, COMPOSE: answer}))
    status, detail, fix = rows(check(cfg(sandbox=docker())))["docker compose v2"]
    assert status is Status.FAIL
    assert expected in detail
    assert "~/.docker/cli-plugins/docker-compose" in fix


def test_missing_base_image_warns_to_run_make_setup(check, cfg, scripted):
    missing = Result(1, "[]\n", "Error response from daemon: No such image: swerl-base:dev")
    scripted(Engine(image=missing))
    status, detail, fix = rows(check(cfg(sandbox=docker(base_image="swerl-base:dev"))))[
        "sandbox base image"
    ]
    assert status is Status.WARN
    assert detail == "swerl-base:dev is not built"
    assert "make setup" in fix


def test_limits_beyond_the_engine_fail(check, cfg, scripted):
    scripted(Engine(answers={**Engine().answers, INFO: Result(0, f"2 {4 * 2**30}\n", "")}))
    status, detail, fix = rows(check(cfg(sandbox=docker(cpus=4))))["sandbox resources"]
    assert status is Status.FAIL
    assert "cpus 4 is more than the engine's 2 CPUs" in detail
    assert fix == "set sandbox.options.cpus to at most 2"
    status, detail, fix = rows(check(cfg(sandbox=docker(memory_mb=8192))))["sandbox resources"]
    assert status is Status.FAIL
    assert fix == "set sandbox.options.memory_mb to at most 4096"


def test_harbor_is_checked_from_metadata(load, cfg, monkeypatch):
    loaded = load(cfg(sandbox=docker()))
    for version, status in [("0.25.0", Status.PASS), ("0.26.1", Status.WARN), (None, Status.FAIL)]:
        monkeypatch.setattr(checks, "_dist_version", lambda name, v=version: v)
        report = Report(loaded=loaded)
        checks.check_harbor(report)
        assert report.checks[0].status is status, version
    assert "harbor==0.25.0" in report.checks[0].fix


def test_installed_harbor_is_the_pin(check, cfg, scripted):
    scripted(Engine())
    assert rows(check(cfg(sandbox=docker())))["harbor"][:2] == (Status.PASS, "harbor 0.25.0")


# --- the real docker CLI ------------------------------------------------------------------------

needs_cli = pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")


@needs_cli
def test_real_cli_against_a_socket_that_does_not_exist(check, cfg, tmp_path, monkeypatch):
    socket = tmp_path / "nowhere" / "docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    start = time.monotonic()
    found = rows(check(cfg(sandbox=docker())))
    assert time.monotonic() - start < 10
    assert found["docker CLI"][0] is Status.PASS
    status, detail, fix = found["docker daemon"]
    assert status is Status.FAIL
    assert "dockerd" in fix
    assert f"unix://{socket}" in detail
    assert "Cannot connect to the Docker daemon" in detail
    assert found["sandbox base image"] == (
        Status.SKIP,
        "not checked: the docker daemon is not reachable",
        "",
    )


def test_real_runner_without_docker_on_path(check, cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    found = rows(check(cfg(sandbox=docker())))
    assert found["docker CLI"][:2] == (Status.FAIL, "docker is not on PATH")
    assert "apt-get install docker.io" in found["docker CLI"][2]
    assert found["docker compose v2"][0] is Status.SKIP


def test_real_runner_ends_a_hanging_cli_and_its_children(check, cfg, tmp_path, monkeypatch):
    fake = tmp_path / "docker"
    fake.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo "Docker version 0"; exit 0; fi\n'
        "/bin/sleep 30 & wait\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(checks, "TIMEOUT_S", 0.3)
    start = time.monotonic()
    found = rows(check(cfg(sandbox=docker())))
    assert time.monotonic() - start < 5
    assert found["docker daemon"][0] is Status.FAIL
    assert "timed out after 0.3 s" in found["docker daemon"][1]


def _daemon_up() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        proc = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


@pytest.mark.docker
@pytest.mark.skipif(not _daemon_up(), reason="no running Docker engine")
def test_real_daemon_is_reported_with_its_version(check, cfg):
    server = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        timeout=5,
    ).stdout.strip()
    found = rows(check(cfg(sandbox=docker())))
    assert found["docker daemon"][0] is Status.PASS
    assert f"engine {server} reachable" in found["docker daemon"][1]
    assert found["sandbox resources"][0] in (Status.PASS, Status.FAIL)
    assert found["sandbox base image"][0] in (Status.PASS, Status.WARN)
