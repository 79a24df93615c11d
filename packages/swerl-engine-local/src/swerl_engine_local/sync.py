"""Make the running vLLM CPU server serve new weights, in place, between rollouts.

The server runs with ``VLLM_SERVER_DEV_MODE=1``. One sync: ``POST /pause?mode=wait`` (in-flight
requests finish, new ones queue) → ``POST /collective_rpc`` with vLLM's built-in
``reload_weights`` reading ``<weights dir>/model.safetensors`` → ``POST /reset_prefix_cache``
(cached prefixes would otherwise be served from the old weights) → ``POST /resume``. The model
must have untied input/output embeddings (the built-in reload keeps a tied output layer stale).
Measured on this kind of machine: ~60-70 ms server-side; a restart costs 50-130 s.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class SyncError(RuntimeError):
    """The policy server refused or failed a step of the weight sync."""


def _post(url: str, body: dict[str, Any] | None = None, timeout: float = 300.0) -> Any:
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise SyncError(f"POST {url}: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SyncError(f"POST {url}: {exc}") from None
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def sync_weights(policy_url: str, weights_dir: Path) -> dict[str, float]:
    """Reload ``weights_dir`` into the server; returns seconds per phase and in total."""
    base = policy_url.rstrip("/")
    times: dict[str, float] = {}
    start = time.perf_counter()
    _post(f"{base}/pause?mode=wait")
    times["pause_s"] = time.perf_counter() - start
    try:
        t = time.perf_counter()
        _post(
            f"{base}/collective_rpc",
            {"method": "reload_weights", "kwargs": {"weights_path": str(weights_dir.resolve())}},
        )
        times["reload_s"] = time.perf_counter() - t
        t = time.perf_counter()
        _post(f"{base}/reset_prefix_cache")
        times["reset_cache_s"] = time.perf_counter() - t
    finally:
        _post(f"{base}/resume")
    times["total_s"] = time.perf_counter() - start
    return times
