"""Where the gateway's token ids go to be continued: the policy backend interface.

The gateway speaks token ids to the policy, never text, so that every trained token is the one
that was sampled. A backend takes prompt ids and sampling limits and returns the sampled ids with
the logprob each was sampled at. Today that is vLLM's ``POST /v1/completions`` with a token-id
prompt (CPU smoke, standalone eval); the training issue adds verl's ``server_manager.generate``
behind the same two methods.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Request fields of vLLM's completions endpoint the gateway relies on (vLLM >= 0.10.2).
#: ``logprobs: 1`` returns the sampled token's logprob in ``choices[0].logprobs.token_logprobs``.
VLLM_TOKEN_FIELDS = {"return_token_ids": True, "logprobs": 1}


@dataclass(frozen=True)
class SamplingParams:
    """What the gateway asks for: the RL sampling distribution plus a token budget."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0


@dataclass
class Generation:
    """Sampled ids, their logprobs (one each) and why sampling stopped (``stop``/``length``)."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    #: Anything a backend wants to pass on for the records (e.g. the server's request id).
    info: dict[str, Any] = field(default_factory=dict)


class BackendError(Exception):
    """The policy backend failed. ``cause`` is the failure cause recorded on the session."""

    def __init__(self, message: str, *, cause: str = "backend_error", status: int = 502) -> None:
        super().__init__(message)
        self.cause = cause
        self.status = status


class PolicyBackend(Protocol):
    """Token-in/token-out generation. Implementations must not re-tokenize anything."""

    name: str

    async def generate(
        self, prompt_ids: list[int], sampling: SamplingParams, *, session: str | None = None
    ) -> Generation:
        """Continue ``prompt_ids``; ``session`` lets a load balancer keep a trial on one server."""
        ...

    async def close(self) -> None: ...


class VLLMHttpBackend:
    """vLLM's OpenAI server, ``POST {base}/v1/completions`` with ``prompt`` = token ids.

    Shapes relied on (vLLM ``CompletionResponseChoice``): ``choices[0].token_ids`` (sampled ids,
    the stop token included), ``choices[0].prompt_token_ids`` (what the server really ran, checked
    against what was sent), ``choices[0].logprobs.token_logprobs`` (one float per sampled id),
    ``choices[0].finish_reason``. Errors come back as ``{"error": {"message": ...}}``.
    """

    name = "vllm-http"

    def __init__(self, base_url: str, model: str, *, timeout_s: float = 600.0) -> None:
        self.base_url = normalise_base_url(base_url)
        self.model = model
        self.timeout_s = timeout_s
        self._session: Any = None  # aiohttp.ClientSession, made on first use inside the loop

    def _client(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=0),
            )
        return self._session

    async def generate(
        self, prompt_ids: list[int], sampling: SamplingParams, *, session: str | None = None
    ) -> Generation:
        import aiohttp

        body = {
            "model": self.model,
            "prompt": prompt_ids,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            **VLLM_TOKEN_FIELDS,
        }
        url = f"{self.base_url}/v1/completions"
        try:
            async with self._client().post(url, json=body) as resp:
                text = await resp.text()
                status = resp.status
        except TimeoutError as exc:
            raise BackendError(
                f"policy server at {self.base_url} did not answer within {self.timeout_s:.0f} s",
                cause="backend_timeout",
                status=504,
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise BackendError(
                f"policy server at {self.base_url} is unreachable: {type(exc).__name__}: {exc}",
                cause="backend_unreachable",
            ) from exc
        if status >= 500 or status in (404, 405):
            raise BackendError(f"policy server answered {status}: {error_message(text)}")
        if status != 200:
            # The server refused this request (e.g. a limit): the client's fault, not an outage.
            raise BackendError(
                f"policy server rejected the request ({status}): {error_message(text)}",
                cause="backend_rejected",
                status=400,
            )
        return parse_completion(text, prompt_ids)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            # Let the connector's transports close before the loop goes away.
            await asyncio.sleep(0)


def normalise_base_url(url: str) -> str:
    """``http://h:p``, ``http://h:p/`` and ``http://h:p/v1`` all name the same server."""
    url = url.rstrip("/")
    return url.removesuffix("/v1")


def error_message(text: str) -> str:
    """The message of an OpenAI/vLLM error body, else the first 300 characters of it."""
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300] or "(empty body)"
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return text.strip()[:300]


def parse_completion(text: str, prompt_ids: list[int]) -> Generation:
    """A ``Generation`` from a vLLM completions body; anything off is a ``BackendError``."""
    import json

    try:
        data = json.loads(text)
        choice = data["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise BackendError(f"policy server sent an unreadable completion: {text[:200]!r}") from exc
    ids = choice.get("token_ids")
    if not isinstance(ids, list):
        raise BackendError(
            "policy server returned no token_ids; it must be vLLM >= 0.10.2 "
            "(return_token_ids) serving /v1/completions"
        )
    echoed = choice.get("prompt_token_ids")
    if echoed is not None and echoed != prompt_ids:
        raise BackendError(
            f"policy server ran a different prompt than it was sent ({len(echoed)} ids vs "
            f"{len(prompt_ids)}); token fidelity would be lost"
        )
    lps = (choice.get("logprobs") or {}).get("token_logprobs")
    if not isinstance(lps, list) or len(lps) != len(ids) or any(x is None for x in lps):
        raise BackendError(
            f"policy server returned {len(lps) if isinstance(lps, list) else 'no'} logprobs for "
            f"{len(ids)} sampled ids"
        )
    info = {"id": data.get("id")} if data.get("id") else {}
    return Generation(
        token_ids=[int(t) for t in ids],
        logprobs=[float(x) for x in lps],
        finish_reason=str(choice.get("finish_reason") or "stop"),
        info=info,
    )
