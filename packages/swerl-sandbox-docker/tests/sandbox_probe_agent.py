"""A Harbor agent for the sandbox tests: probes the network and limits from inside, or sleeps.

Harbor loads it by import path (``sandbox_probe_agent:ProbeAgent``) once the tests put this
folder on ``sys.path``. ``kwargs``: ``mode`` = ``probe`` (default) or ``sleep``; ``seconds``
(sleep); ``other_port`` (a host loopback port that must stay unreachable).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from harbor.agents.base import BaseAgent

# Runs inside the container with the image's python3; prints one JSON object.
PROBE = r"""
import json, os, socket, urllib.request

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
        result = await environment.exec(f"python3 -c {shlex.quote(script)}")
        (self.logs_dir / "probe.json").write_text(
            json.dumps({"rc": result.return_code, "stdout": result.stdout, "stderr": result.stderr})
        )
