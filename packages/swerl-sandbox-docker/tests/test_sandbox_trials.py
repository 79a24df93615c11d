"""Real trials through the docker sandbox (real Docker, real Harbor): isolation, limits, labels,
a sandbox killed mid-trial, an agent timeout, and cleanup by run id.

The three trials run concurrently in one module fixture; each test then checks one thing.
Skipped without a running engine or without the base image (``make setup`` builds both);
with ``SWERL_REQUIRE_SETUP=1`` (CI) that is a failure instead.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from swerl.testing import docker_ready, need
from swerl_sandbox_docker.component import DockerSandboxOptions
from swerl_sandbox_docker.containers import cleanup_run, find_containers
from swerl_sandbox_docker.runner import (
    AGENT_TIMEOUT,
    SANDBOX_ERROR,
    DockerTrialRunner,
    TrialOutcome,
)

HERE = Path(__file__).parent
TASK = HERE.parents[2] / "tasks" / "fix-add"
IMAGE = "swerl-base:latest"
PROBE = "sandbox_probe_agent:ProbeAgent"
OPTIONS = DockerSandboxOptions(cpus=0.5, memory_mb=256, pids_limit=64)


def require_docker() -> None:
    """Skip without an engine and the base image; under SWERL_REQUIRE_SETUP=1 (CI) fail."""
    reason = docker_ready(IMAGE)
    need(not reason, reason)


pytestmark = [pytest.mark.docker, pytest.mark.slow]


class _Model(http.server.BaseHTTPRequestHandler):
    """Stands in for the proxy: answers every GET with a fixed body."""

    def do_GET(self) -> None:
        body = b"swerl-model-ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> http.server.HTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _inspect(trial_id: str) -> dict:
    ids = find_containers(trial_id=trial_id)
    out = subprocess.run(
        ["docker", "inspect", *ids], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    return json.loads(out)[0]


class Trials:
    run_id: str
    probe: TrialOutcome
    killed: TrialOutcome
    timed_out: TrialOutcome
    inspected: dict
    model_port: int
    other_port: int
    forwarded: int
    left_after: list[str]


@pytest.fixture(scope="module")
def trials(tmp_path_factory: pytest.TempPathFactory) -> Trials:
    require_docker()
    t = Trials()
    t.run_id = f"test-{uuid.uuid4().hex[:8]}"
    run_dir = tmp_path_factory.mktemp("run")
    model = _serve(_Model)
    other = socket.create_server(("127.0.0.1", 0))  # a host service the sandbox must not reach
    t.model_port = model.server_address[1]
    t.other_port = other.getsockname()[1]
    runner = DockerTrialRunner(OPTIONS, run_id=t.run_id, run_dir=run_dir)
    probe_id, kill_id = f"probe-{t.run_id}", f"kill-{t.run_id}"

    async def inspect_when_running(event: object) -> None:
        t.inspected = await asyncio.to_thread(_inspect, probe_id)

    async def kill_when_running(event: object) -> None:
        async def kill() -> None:
            await asyncio.sleep(1.0)
            ids = await asyncio.to_thread(find_containers, trial_id=kill_id)
            await asyncio.to_thread(
                subprocess.run, ["docker", "kill", *ids], capture_output=True, timeout=10
            )

        asyncio.get_running_loop().create_task(kill())

    async def main() -> None:
        import sys

        sys.path.insert(0, str(HERE))  # Harbor imports the probe agent by path
        try:
            async with runner.model_forwarder(t.model_port) as fwd:
                t.probe, t.killed, t.timed_out = await asyncio.gather(
                    runner.run_trial(
                        TASK,
                        {"import_path": PROBE, "kwargs": {"other_port": t.other_port}},
                        trial_id=probe_id,
                        hooks={"agent-start": inspect_when_running},
                    ),
                    runner.run_trial(
                        TASK,
                        {"import_path": PROBE, "kwargs": {"mode": "sleep", "seconds": 60}},
                        trial_id=kill_id,
                        hooks={"agent-start": kill_when_running},
                    ),
                    runner.run_trial(
                        TASK,
                        {"import_path": PROBE, "kwargs": {"mode": "sleep", "seconds": 60}},
                        agent_timeout_sec=2,
                    ),
                )
                t.forwarded = fwd.connections
        finally:
            sys.path.remove(str(HERE))
            t.left_after = find_containers(run_id=t.run_id)
            runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        model.shutdown()
        other.close()
    return t


def _probe(t: Trials) -> dict:
    record = json.loads((t.probe.trial_dir / "agent" / "probe.json").read_text())
    assert record["rc"] == 0, record["stderr"]
    return json.loads(record["stdout"])


def test_secrets_reach_the_sandbox_but_not_the_hosts_process_list(trials: Trials) -> None:
    record = json.loads((trials.probe.trial_dir / "agent" / "probe.json").read_text())
    assert record["environment_class"] == "SwerlDockerEnvironment"
    assert _probe(trials)["env"] == {
        "SWERL_PROBE_API_KEY": record["secret"],
        "SWERL_PROBE_PLAIN": "plain-value",
    }
    # The plain variable shows that the snapshot was taken while `docker compose exec` ran.
    assert record["plain_in_host_ps"] is True
    assert record["secret_in_host_ps"] is False


def test_the_sandbox_reaches_the_model_through_the_socket(trials: Trials) -> None:
    probe = _probe(trials)
    assert probe["model"] == [200, "swerl-model-ok"]
    assert trials.forwarded >= 1


def test_the_sandbox_has_no_network_but_loopback(trials: Trials) -> None:
    probe = _probe(trials)
    assert probe["interfaces"] == ["lo"]
    # The container's 127.0.0.1 is its own: a port listening on the host's loopback is not there.
    assert probe["other_port"].startswith("ConnectionRefusedError"), probe["other_port"]
    assert probe["outside"].startswith("OSError: [Errno 101] Network is unreachable"), probe
    assert trials.inspected["HostConfig"]["NetworkMode"] == "none"


def test_the_socket_folder_is_read_only_inside(trials: Trials) -> None:
    probe = _probe(trials)
    assert "Read-only file system" in probe["socket_dir_write"]


def test_limits_and_labels_are_on_the_container(trials: Trials) -> None:
    host = trials.inspected["HostConfig"]
    assert host["NanoCpus"] == int(OPTIONS.cpus * 1e9)
    assert host["Memory"] == OPTIONS.memory_mb * 2**20
    assert host["MemorySwap"] == OPTIONS.memory_mb * 2**20  # no swap on top
    assert host["PidsLimit"] == OPTIONS.pids_limit
    assert host["Init"] is True
    labels = trials.inspected["Config"]["Labels"]
    assert labels["swerl.run"] == trials.run_id
    assert labels["swerl.trial"] == trials.probe.trial_id
    cgroup = _probe(trials)["cgroup"]
    assert int(cgroup["memory"]) == OPTIONS.memory_mb * 2**20
    assert int(cgroup["pids"]) == OPTIONS.pids_limit
    quota, period = (
        cgroup["cpu_max"].split()
        if cgroup["cpu_max"]
        else (cgroup["cpu_quota"], cgroup["cpu_period"])
    )
    assert int(quota) / int(period) == OPTIONS.cpus


def test_a_clean_trial_ends_with_its_reward_and_phase_timings(trials: Trials) -> None:
    out = trials.probe
    assert (out.failure_cause, out.reward) == (None, 0.0)  # the probe fixes nothing
    assert out.container is not None and not out.container.died
    assert {"env_setup", "agent_run", "verifier", "teardown", "total"} <= set(out.timings)
    assert out.timings["total"] >= out.timings["env_setup"] + out.timings["verifier"]
    assert (out.trial_dir / "result.json").is_file()


def test_a_sandbox_killed_mid_trial_is_a_sandbox_error(trials: Trials) -> None:
    out = trials.killed
    assert out.failure_cause == SANDBOX_ERROR, out.failure_detail
    assert "exited 137" in out.failure_detail
    assert out.reward is None
    assert out.timings["agent_run"] < 30  # the kill ended the 60 s sleep
    assert (out.trial_dir / "result.json").is_file()


def test_an_agent_timeout_is_recorded_and_still_verified(trials: Trials) -> None:
    out = trials.timed_out
    assert out.failure_cause == AGENT_TIMEOUT, out.failure_detail
    assert out.reward == 0.0  # the verifier ran after the timeout
    assert out.timings["agent_run"] < 10


def test_no_container_of_the_run_is_left(trials: Trials) -> None:
    assert trials.left_after == []
    assert find_containers(run_id=trials.run_id) == []


def test_cleanup_by_run_id_removes_what_a_crashed_run_left() -> None:
    require_docker()
    run_id = f"test-crash-{uuid.uuid4().hex[:8]}"
    started = subprocess.run(
        [
            *("docker", "run", "-d", "--network", "none", "--label", f"swerl.run={run_id}"),
            *("--label", f"swerl.trial={run_id}-t", IMAGE, "sleep", "60"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert started.returncode == 0, started.stderr
    try:
        assert find_containers(run_id=run_id) == [started.stdout.strip()]
        assert cleanup_run(run_id) == [started.stdout.strip()]
        assert find_containers(run_id=run_id) == []
        assert cleanup_run(run_id) == []
    finally:
        subprocess.run(["docker", "rm", "-f", started.stdout.strip()], capture_output=True)
