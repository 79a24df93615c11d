"""The gateway's settings, taken from the run config (plus command-line overrides)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig


@dataclass(frozen=True)
class GatewaySettings:
    model_path: str
    served_name: str = "policy"
    #: Prompt + response must fit: longer prompts are refused, ``max_tokens`` is capped to fit.
    max_model_len: int = 4096
    #: The RL sampling distribution. The agent's own temperature/top_p are ignored unless
    #: ``honor_request_sampling``: the recorded logprobs must be those of the trained policy.
    temperature: float = 1.0
    top_p: float = 1.0
    honor_request_sampling: bool = False
    port: int = 8003
    backend_url: str = "http://127.0.0.1:8004"
    backend_timeout_s: float = 600.0
    tool_parser: str = "hermes"
    trust_remote_code: bool = False
    #: Sessions nobody collected (a call that arrived after its trial ended) are dropped after
    #: this long without a call, so a long run does not grow without bound.
    session_ttl_s: float = 6 * 3600.0

    @classmethod
    def from_config(
        cls,
        config: SwerlConfig,
        *,
        port: int | None = None,
        backend_url: str | None = None,
        tool_parser: str | None = None,
    ) -> GatewaySettings:
        return cls(
            model_path=config.model.path,
            served_name=config.model.served_name,
            max_model_len=config.rollout.model_len,
            temperature=config.rollout.temperature,
            top_p=config.rollout.top_p,
            port=port or config.ports.gateway,
            backend_url=backend_url or f"http://127.0.0.1:{config.ports.policy}",
            tool_parser=tool_parser or "hermes",
            trust_remote_code=config.model.trust_remote_code,
        )
