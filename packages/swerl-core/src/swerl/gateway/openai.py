"""OpenAI chat-completions bodies: the JSON response, its SSE chunk form, and error bodies.

The gateway samples a whole turn before answering, so a streamed answer is the same message cut
into the chunks OpenAI clients (LiteLLM's ``hosted_vllm`` provider among them) rebuild: the role,
the content, each tool call (id, type and name first, then its arguments, with its ``index``), the
finish reason, the usage chunk when ``stream_options.include_usage`` is set, then ``[DONE]``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from swerl.gateway.parsers import Parsed


@dataclass
class Reply:
    """One assistant turn, ready to be sent either way."""

    model: str
    parsed: Parsed
    finish_reason: str
    prompt_ids: list[int]
    sampled_ids: list[int]
    logprobs: list[float]
    tokens: list[str] | None = None  # token strings, only when the client asked for logprobs

    def __post_init__(self) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    @property
    def usage(self) -> dict[str, int]:
        p, c = len(self.prompt_ids), len(self.sampled_ids)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": self.parsed.content}
        if self.parsed.tool_calls:
            msg["tool_calls"] = [c.to_openai() for c in self.parsed.tool_calls]
        return msg

    def logprobs_content(self) -> list[dict[str, Any]] | None:
        if self.tokens is None:
            return None
        return [
            {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
            for t, lp in zip(self.tokens, self.logprobs, strict=True)
        ]

    def to_json(self, *, token_ids: bool) -> dict[str, Any]:
        lp = self.logprobs_content()
        choice: dict[str, Any] = {
            "index": 0,
            "message": self.message(),
            "logprobs": {"content": lp} if lp is not None else None,
            "finish_reason": self.finish_reason,
        }
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage,
        }
        if token_ids:  # vLLM's return_token_ids fields, where LiteLLM looks for them
            body["prompt_token_ids"] = self.prompt_ids
            choice["token_ids"] = self.sampled_ids
        return body

    def chunks(self, *, include_usage: bool, token_ids: bool) -> Iterator[dict[str, Any]]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        first = chunk({"role": "assistant", "content": ""})
        if token_ids:
            first["prompt_token_ids"] = self.prompt_ids
        yield first
        if self.parsed.content:
            yield chunk({"content": self.parsed.content})
        for i, call in enumerate(self.parsed.tool_calls):
            oa = call.to_openai()
            head = {"name": oa["function"]["name"], "arguments": ""}
            yield chunk({"tool_calls": [{"index": i, "id": oa["id"], "type": "function",
                                         "function": head}]})  # fmt: skip
            args = {"arguments": oa["function"]["arguments"]}
            yield chunk({"tool_calls": [{"index": i, "function": args}]})
        last = chunk({}, self.finish_reason)
        if token_ids:
            last["choices"][0]["token_ids"] = self.sampled_ids
        yield last
        if include_usage:
            usage = chunk({})
            usage["choices"] = []
            usage["usage"] = self.usage
            yield usage


def sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def error_body(message: str, *, status: int, code: str) -> dict[str, Any]:
    """An OpenAI-style error body; LiteLLM relays ``error.message`` to the agent."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
