"""A Harbor agent for the sandbox tests: probes the network and limits from inside, or sleeps.

Harbor loads it by import path (``sandbox_probe_agent:ProbeAgent``) once the tests put this
folder on ``sys.path``. ``kwargs``: ``mode`` = ``probe`` (default) or ``sleep``; ``seconds``
(sleep); ``other_port`` (a host loopback port that must stay unreachable).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import uuid
from typing import Any

from harbor.agents.base import BaseAgent

# Runs inside the container with the image's python3; prints one JSON object.
PROBE = r"""
import json, os, socket, time, urllib.request

def connect(host, port):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        return "connected"
    except OSError as exc:
        return type(exc).__name__ + ": " + str(exc)
    finally:
        s.close()

def read(*paths):
    for p in paths:
        try:
            with open(p) as f:
                return f.read().strip()
        except OSError:
            pass
    return None

V1 = "/sys/fs/cgroup/"  # cgroup v1 hierarchies (v2 files sit directly in it)
out = {"interfaces": sorted(os.listdir("/sys/class/net"))}
try:
    with urllib.request.urlopen("http://127.0.0.1:8002/probe", timeout=5) as r:
        out["model"] = [r.status, r.read().decode()]
except Exception as exc:
    out["model"] = ["error", repr(exc)]
out["other_port"] = connect("127.0.0.1", OTHER_PORT)
out["outside"] = connect("1.1.1.1", 443)
out["cgroup"] = {
    "memory": read("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    "pids": read("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"),
    "cpu_max": read("/sys/fs/cgroup/cpu.max"),
    "cpu_quota": read(V1 + "cpu/cpu.cfs_quota_us", V1 + "cpu,cpuacct/cpu.cfs_quota_us"),
    "cpu_period": read(V1 + "cpu/cpu.cfs_period_us", V1 + "cpu,cpuacct/cpu.cfs_period_us"),
}
out["socket_dir_writable"] = os.access("/run/swerl", os.W_OK)
try:
    open("/run/swerl/x", "w").close()
    out["socket_dir_write"] = "written"
except OSError as exc:
    out["socket_dir_write"] = str(exc)
out["env"] = {k: os.environ.get(k) for k in ("SWERL_PROBE_API_KEY", "SWERL_PROBE_PLAIN")}
time.sleep(2)  # long enough for the agent to read the host's process list meanwhile
print(json.dumps(out))
"""


class ProbeAgent(BaseAgent):
    def __init__(
        self,
        *args: Any,
        mode: str = "probe",
        seconds: float = 60,
        other_port: int = 9,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.mode = mode
        self.seconds = seconds
        self.other_port = other_port

    @staticmethod
    def name() -> str:
        return "swerl-sandbox-probe"

    def version(self) -> str:
        return "1"

    async def setup(self, environment: Any) -> None:
        return

    async def run(self, instruction: str, environment: Any, context: Any) -> None:
        if self.mode == "sleep":
            await environment.exec(f"sleep {self.seconds}")
            return
        script = PROBE.replace("OTHER_PORT", str(int(self.other_port)))
        secret = f"swerl-probe-{uuid.uuid4().hex}"
        env = {"SWERL_PROBE_API_KEY": secret, "SWERL_PROBE_PLAIN": "plain-value"}
        running = asyncio.create_task(
            environment.exec(f"python3 -c {shlex.quote(script)}", env=env)
        )
        # The host's process list while the exec runs (full width), read until the exec's
        # plain variable shows in it or the exec ends.
        host_ps = ""
        while not running.done() and "SWERL_PROBE_PLAIN=plain-value" not in host_ps:
            await asyncio.sleep(0.2)
            host_ps = subprocess.run(
                ["ps", "-eww", "-o", "args"], capture_output=True, text=True, timeout=10
            ).stdout
        result = await running
        record = {
            "rc": result.return_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "secret": secret,
            "environment_class": type(environment).__name__,
            # the host's process list while the exec ran: secrets must not be in it
            "secret_in_host_ps": secret in host_ps,
            "plain_in_host_ps": "SWERL_PROBE_PLAIN=plain-value" in host_ps,
        }
        (self.logs_dir / "probe.json").write_text(json.dumps(record))
