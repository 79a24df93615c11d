"""Checks on this machine: loopback ports, disk for checkpoints, wandb credentials."""

from __future__ import annotations

import errno
import os
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from swerl.preflight.checks.model_info import estimate_params

if TYPE_CHECKING:
    from swerl.preflight.checks.context import Context

#: Checkpoint bytes per parameter: fp32 weights plus Adam's two fp32 moments.
CHECKPOINT_BYTES_PER_PARAM = 4 * 3
#: Checkpoints assumed on disk at once (the newest and the one being written).
CHECKPOINTS_KEPT = 2
GB = 1e9

_ROLES = {
    "proxy": "LiteLLM proxy, the agents' model endpoint",
    "gateway": "swerl gateway, token capture",
    "policy": "policy server, vLLM on the CPU path",
}


#: Where the kernel picks ports for outgoing connections and port-0 binds (Linux's default).
EPHEMERAL = (32768, 60999)


def ephemeral_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> tuple[int, int]:
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return EPHEMERAL
    return low, high


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports nobody listens on now (another stack may hold the defaults),
    taken below the kernel's ephemeral range: a port the kernel hands out itself (port 0) can be
    given again to another process's socket (vLLM's internal ones, an outgoing connection)
    before our server binds it, which a port outside that range cannot."""
    import random

    low, _ = ephemeral_range()
    candidates = list(range(max(1024, low - 12000), low))
    random.SystemRandom().shuffle(candidates)
    ports = [p for p in candidates[: 50 * n] if port_error(p) is None][:n]
    if len(ports) < n:  # no room below the range: fall back to the kernel's choice
        socks = [socket.socket() for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        ports = [s.getsockname()[1] for s in socks]
        for s in socks:
            s.close()
    return ports


def port_error(port: int, host: str = "127.0.0.1") -> OSError | None:
    """Bind ``host:port`` and close at once; the error if a server could not bind it.

    SO_REUSEADDR matches what servers set, so a port lingering in TIME_WAIT counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def check_ports(ctx: Context) -> None:
    """The run's loopback ports are free to bind."""
    ports = ctx.config.ports
    for key in ("proxy", "gateway", "policy"):
        name = f"port {key}"
        port = getattr(ports, key)
        if key == "policy" and ctx.uses_gpus:
            ctx.report.skip(name, "on GPU the policy servers run inside verl on ports it picks")
            continue
        where = f"ports.{key}={port} ({_ROLES[key]})"
        exc = port_error(port)
        if exc is None:
            ctx.report.passed(name, f"{where} is free on 127.0.0.1")
        elif exc.errno == errno.EADDRINUSE:
            ctx.report.fail(
                name,
                f"{where} is already in use on 127.0.0.1",
                f"see who holds it: ss -ltnp 'sport = :{port}'; stop it or set ports.{key} "
                "to a free port",
            )
        elif exc.errno == errno.EACCES:
            ctx.report.fail(
                name,
                f"{where}: binding 127.0.0.1:{port} is not permitted (ports below 1024 need root)",
                f"set ports.{key} to a port above 1023",
            )
        else:
            ctx.report.fail(
                name,
                f"{where}: cannot bind 127.0.0.1:{port}: {exc.strerror or exc}",
                f"set ports.{key} to another port",
            )


def nearest_existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (the run creates the rest)."""
    path = path.expanduser()
    path = path if path.is_absolute() else Path.cwd() / path
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or "/")


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem holding ``path`` for an unprivileged writer."""
    return shutil.disk_usage(path).free


def _count(n: int) -> str:
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def _gb(n: float) -> str:
    return f"{n / GB:.1f} GB" if n >= GB else f"{n / GB:.2g} GB"


def check_disk(ctx: Context) -> None:
    """Room under run.output_dir for the checkpoints a run keeps."""
    name = "disk"
    out = ctx.config.run.output_dir
    where = nearest_existing(out)
    free = free_bytes(where)
    if ctx.model is None:
        ctx.report.skip(
            name, f"{_gb(free)} free at {where}; model size unknown (see the model row)"
        )
        return
    params, how = estimate_params(ctx.model)
    if params is None:
        ctx.report.warn(
            name,
            f"{_gb(free)} free at {where}; the model's size cannot be estimated ({how})",
            "make sure run.output_dir has room for checkpoints (12 bytes per parameter each)",
        )
        return
    one = params * CHECKPOINT_BYTES_PER_PARAM
    kept = one * CHECKPOINTS_KEPT
    sizes = (
        f"{_gb(free)} free at {where} (run.output_dir={out}); one checkpoint of "
        f"{_count(params)} params ({how}; fp32 weights + 2 Adam moments) takes "
        f"{_gb(one)}, {CHECKPOINTS_KEPT} kept {_gb(kept)}"
    )
    fix = f"free space there or point run.output_dir at a disk with {_gb(kept)} free"
    if free < one:
        ctx.report.fail(name, f"not enough disk for one checkpoint: {sizes}", fix)
    elif free < kept:
        ctx.report.warn(name, f"disk is low: {sizes}", fix)
    else:
        ctx.report.passed(name, sizes)


def wandb_credentials(env: Mapping[str, str]) -> tuple[str | None, str]:
    """(where a wandb key was found or None, a note). Never returns the key itself."""
    if env.get("WANDB_API_KEY"):
        return "WANDB_API_KEY", ""
    host = urlparse(env.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    if env.get("NETRC"):
        rc = Path(env["NETRC"]).expanduser()
    else:
        home = env.get("HOME")
        rc = (Path(home) if home else Path.home()) / ".netrc"
    if not rc.is_file():
        return None, f"no WANDB_API_KEY and no {rc}"
    import netrc

    try:
        entry = netrc.netrc(str(rc)).authenticators(host)
    except netrc.NetrcParseError as exc:
        # The parser's message can quote a token from the file; show the line only.
        return None, f"{rc} could not be parsed (line {exc.lineno})"
    except OSError as exc:
        return None, f"{rc} could not be read ({exc.strerror})"
    if entry and entry[2]:
        return f"{rc} entry for {host}", ""
    return None, f"no WANDB_API_KEY and no {host} entry in {rc}"


def check_wandb(ctx: Context, env: Mapping[str, str] | None = None) -> None:
    """wandb credentials when wandb logging is on; the key itself is never shown."""
    name = "wandb"
    env = os.environ if env is None else env
    w = ctx.config.logging.wandb
    if not w.enabled:
        ctx.report.skip(name, "logging.wandb.enabled is false")
        return
    mode = (env.get("WANDB_MODE") or "").lower()
    if mode == "disabled":
        ctx.report.warn(
            name,
            "logging.wandb.enabled is true but WANDB_MODE=disabled turns wandb off",
            "unset WANDB_MODE, or set logging.wandb.enabled: false",
        )
        return
    if mode in ("offline", "dryrun"):
        ctx.report.passed(name, f"project '{w.project}' logs offline (WANDB_MODE={mode})")
        return
    found, note = wandb_credentials(env)
    if found is None:
        ctx.report.warn(
            name,
            f"wandb will log offline: {note}",
            "run `wandb login` (writes ~/.netrc) or export WANDB_API_KEY; or set "
            "logging.wandb.enabled: false",
        )
        return
    ctx.report.passed(name, f"project '{w.project}': credentials from {found}")
