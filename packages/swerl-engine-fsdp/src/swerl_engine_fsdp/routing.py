"""Where each verl agent-loop worker's swerl gateway listens, and how the proxy reaches it.

verl runs ``agent.num_workers`` AgentLoopWorker actors; each hosts its own swerl gateway (see
``agent_loop.py``), because a gateway's sessions live in the process that runs the trial and pops
them. Worker ``k``'s gateway listens on ``ports.gateway + k`` and is reached through its own model
name (alias): worker 0 keeps the served name itself, worker ``k > 0`` gets ``<served>-w<k>``.
The agent of a trial run by worker ``k`` is told that alias (``TrialInfo.served_name``), so
LiteLLM, which routes by model name, sends the trial's calls to the gateway that records them.

The core's proxy config (``swerl.proxy.litellm_config``) routes the served name and ``claude-*``
to ``ports.gateway`` (worker 0); the verl engines add :func:`worker_model_list`'s entries through
``Engine.proxy_routes``. Nothing here imports verl.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig


def gateway_port(config: SwerlConfig, worker: int) -> int:
    """The loopback port of worker ``worker``'s gateway."""
    return config.ports.gateway + worker


def worker_alias(served_name: str, worker: int) -> str:
    """The model name that routes to worker ``worker``'s gateway."""
    return served_name if worker == 0 else f"{served_name}-w{worker}"


def gateway_routes(config: SwerlConfig, num_workers: int) -> dict[str, int]:
    """Model name → gateway port, one entry per agent-loop worker."""
    served = config.model.served_name
    return {worker_alias(served, k): gateway_port(config, k) for k in range(num_workers)}


def port_range_problem(config: SwerlConfig, num_workers: int) -> str | None:
    """Why ``ports.gateway .. +num_workers-1`` cannot hold the gateways (None: it can)."""
    last = gateway_port(config, num_workers - 1)
    if last > 65535:
        return f"gateway ports {config.ports.gateway}..{last} run past 65535"
    if config.ports.gateway <= config.ports.proxy <= last:
        return (
            f"the proxy's port {config.ports.proxy} lies in the gateway ports "
            f"{config.ports.gateway}..{last} (one per agent-loop worker)"
        )
    return None


def worker_model_list(config: SwerlConfig, num_workers: int) -> list[dict[str, Any]]:
    """LiteLLM ``model_list`` entries for workers 1..N-1 (worker 0 is the served name, which
    ``swerl.proxy.litellm_config`` routes already); each as the core's own entries are."""
    from swerl.proxy import litellm_config

    base = litellm_config(config)["model_list"][0]["litellm_params"]
    served = config.model.served_name
    out = []
    for k in range(1, num_workers):
        alias = worker_alias(served, k)
        params = {
            **base,
            "model": f"hosted_vllm/{alias}",
            "api_base": f"http://127.0.0.1:{gateway_port(config, k)}/v1",
        }
        out.append({"model_name": alias, "litellm_params": params})
    return out


def litellm_config_for_workers(config: SwerlConfig, num_workers: int) -> dict[str, Any]:
    """The proxy config a verl run with ``num_workers`` agent-loop workers needs: the core's,
    plus one alias per extra worker."""
    from swerl.proxy import litellm_config

    return litellm_config(config, worker_model_list(config, num_workers))
