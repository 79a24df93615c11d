"""The LiteLLM proxy in front of the gateway: its config file and its process.

The agents speak Anthropic Messages (claude-code) or OpenAI chat; LiteLLM translates, checks the
master key and forwards to the swerl gateway as ``hosted_vllm``. LiteLLM drops vLLM's token ids on
streamed calls, so token capture happens behind it, in the gateway, never in a LiteLLM callback.
Measured with litellm 1.106.2 (notes/chain.md): ``additional_drop_params`` is a per-deployment
setting (``litellm_params``), not a module setting, so it goes on every model entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.plan import PlanContext, ProcessSpec

#: Request fields claude-code sends that vLLM rejects or that would change sampling.
DROP_PARAMS = ["reasoning_effort", "prompt_cache_key"]
#: The gateway needs no key; LiteLLM's hosted_vllm client sends this one as a bearer token.
UPSTREAM_KEY = "swerl-gateway-no-auth"
CONFIG_NAME = "litellm.yaml"


def litellm_config(config: SwerlConfig, routes: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """LiteLLM proxy config: the served name plus a ``claude-*`` wildcard, both to the gateway,
    then the engine's extra ``routes`` (:meth:`swerl.components.Engine.proxy_routes`)."""
    served = config.model.served_name

    def params() -> dict[str, Any]:
        return {
            "model": f"hosted_vllm/{served}",
            "api_base": f"http://127.0.0.1:{config.ports.gateway}/v1",
            "api_key": UPSTREAM_KEY,
            "additional_drop_params": list(DROP_PARAMS),
        }

    return {
        "model_list": [
            {"model_name": served, "litellm_params": params()},
            # claude-code asks for claude-* model names unless told otherwise; route them all.
            {"model_name": "claude-*", "litellm_params": params()},
            *routes,
        ],
        "litellm_settings": {"drop_params": True},
        "general_settings": {
            # LiteLLM reads the key from the environment; it is never written to disk.
            "master_key": f"os.environ/{config.proxy.master_key_env}",
            # Forwards X-Claude-Code-Session-Id and x-swerl-* headers, which key the gateway's
            # sessions.
            "forward_client_headers_to_llm_api": True,
        },
    }


def litellm_yaml(config: SwerlConfig, routes: Sequence[dict[str, Any]] = ()) -> str:
    head = "# Written by swerl for this run; the master key comes from the environment.\n"
    return head + yaml.safe_dump(litellm_config(config, routes), sort_keys=False)


def proxy_process(
    config: SwerlConfig, ctx: PlanContext, routes: Sequence[dict[str, Any]] = ()
) -> ProcessSpec:
    """``litellm --config <run_dir>/litellm.yaml`` on 127.0.0.1:<ports.proxy>; ``routes`` are
    the engine's extra model entries."""
    from swerl.plan import ProcessSpec, env_ref

    path = ctx.run_dir / CONFIG_NAME
    key = config.proxy.master_key_env
    return ProcessSpec(
        name="litellm-proxy",
        argv=[
            ctx.venv_bin(config, "litellm"),
            "--config",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(config.ports.proxy),
        ],
        env={
            "LITELLM_MASTER_KEY": env_ref(key),
            # Without it LiteLLM retries a network fetch of its cost map for ~7 s at start.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        },
        cwd=str(ctx.run_dir),
        files={str(path): litellm_yaml(config, routes)},
        # Unauthenticated liveness probe; the proxy answers after ~20 s on 2 cores.
        health=f"http://127.0.0.1:{config.ports.proxy}/health/liveliness",
        ready_timeout_s=180.0,
        note=(
            f"the agents' model endpoint (http://127.0.0.1:{config.ports.proxy}); forwards to the "
            f"swerl gateway on :{config.ports.gateway}. LITELLM_MASTER_KEY is set from ${key}."
        ),
    )
