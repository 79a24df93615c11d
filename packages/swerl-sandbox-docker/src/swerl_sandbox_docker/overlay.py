"""The compose overlay that makes a Harbor trial container a swerl sandbox.

Harbor's docker environment runs ``docker compose`` with its own files first, then the task's,
then ``extra_docker_compose`` (this overlay), so every key here wins over the task's (measured
with Harbor 0.25.0; see the package README). The overlay gives the ``main`` service:

- ``network_mode: none``: only ``lo``; no bridge, no DNS, no other host port;
- ``init: true`` and a 1 s stop grace: tini as PID 1, so a stop takes well under a second;
- the in-container forwarder as its command: ``127.0.0.1:<port>`` -> ``/run/swerl/model.sock``
  (the entrypoint is reset, so images with their own ENTRYPOINT work too);
- a healthcheck that passes once the forwarder listens (``up --wait`` waits for it);
- CPU, memory (no swap) and process limits, and the ``swerl.run`` / ``swerl.trial`` labels that
  cleanup finds containers by.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Where the run's socket folder is mounted inside the container.
SOCKET_MOUNT = "/run/swerl"
#: The port the agent's model URL points at inside the container.
MODEL_PORT = 8002
RUN_LABEL = "swerl.run"
TRIAL_LABEL = "swerl.trial"
#: Exit status of the container when Harbor stops it (SIGTERM through tini: 128 + 15).
STOPPED_EXIT_CODE = 143


def forwarder_command(port: int = MODEL_PORT) -> str:
    """Shell line of the in-container forwarder, then the keep-alive process Harbor expects."""
    return (
        f"socat TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr "
        f"UNIX-CONNECT:{SOCKET_MOUNT}/model.sock & exec sleep infinity"
    )


def listen_probe(port: int = MODEL_PORT) -> str:
    """A healthcheck that needs no tools: 127.0.0.1:<port> in LISTEN state in /proc/net/tcp."""
    return f"grep -q '0100007F:{port:04X} 00000000:0000 0A' /proc/net/tcp"


def overlay(
    *,
    run_id: str,
    trial_id: str,
    cpus: float,
    memory_mb: int,
    pids_limit: int,
    port: int = MODEL_PORT,
) -> dict[str, Any]:
    """The overlay as a compose document (services.main only)."""
    return {
        "services": {
            "main": {
                "network_mode": "none",
                "init": True,
                "stop_grace_period": "1s",
                "entrypoint": [],
                "command": ["sh", "-c", forwarder_command(port)],
                "healthcheck": {
                    "test": ["CMD", "sh", "-c", listen_probe(port)],
                    "interval": "1s",
                    "timeout": "2s",
                    "retries": 30,
                },
                "cpus": cpus,
                "mem_limit": f"{memory_mb}m",
                "memswap_limit": f"{memory_mb}m",
                "pids_limit": pids_limit,
                "labels": {RUN_LABEL: run_id, TRIAL_LABEL: trial_id},
            }
        }
    }


def write_overlay(path: Path, **kwargs: Any) -> Path:
    """Write :func:`overlay` to ``path`` (JSON, which compose reads as YAML)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(overlay(**kwargs), indent=2) + "\n")
    return path


def socket_mount(sock_dir: Path) -> dict[str, Any]:
    """Harbor mount entry for the run's socket folder: the folder, read-only.

    The folder rather than the socket file, so that a restarted host forwarder is picked up.
    """
    return {
        "type": "bind",
        "source": str(Path(sock_dir).resolve()),
        "target": SOCKET_MOUNT,
        "read_only": True,
    }
