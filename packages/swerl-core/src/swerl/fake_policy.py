"""A fake policy server shaped like vLLM's token-in/token-out endpoint (tests, plugin authors).

It answers ``POST /v1/completions`` whose ``prompt`` is a list of token ids, exactly in the
fields the swerl gateway reads from vLLM (``choices[0].token_ids``, ``prompt_token_ids``,
``logprobs.token_logprobs``, ``finish_reason``), plus ``GET /health`` and ``GET /v1/models``.
Replies are scripted (``push``: the ids a test wants "sampled") or, when the script is empty,
drawn deterministically from the prompt. Every request body is kept in ``requests``; ``fail_next``
makes the next calls answer with an error, as a crashing server would.

    fake = FakePolicy(eos_token_id=2)
    fake.push([11, 12, 2])
    async with fake.serve() as url:  # http://127.0.0.1:<free port>
        ...

Run one by hand: ``python -m swerl.fake_policy --port 18004 --eos 2``.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass
class Scripted:
    token_ids: list[int]
    logprobs: list[float]


def fake_logprob(token: int, position: int) -> float:
    """A deterministic logprob in (-4, 0) that differs from token to token."""
    return -(((token * 7919 + position * 104729) % 4000) + 1) / 1000.0


class FakePolicy:
    def __init__(
        self,
        *,
        served_name: str = "policy",
        max_model_len: int = 4096,
        vocab_size: int = 4096,
        eos_token_id: int | None = None,
        seed: int = 0,
        decode: Callable[[list[int]], str] | None = None,
    ) -> None:
        self.served_name = served_name
        self.max_model_len = max_model_len
        self.vocab_size = vocab_size
        self.eos_token_id = eos_token_id
        self.seed = seed
        self.decode = decode
        self.script: deque[Scripted] = deque()
        self.requests: list[dict[str, Any]] = []
        self._failures: deque[tuple[int, str]] = deque()

    # -- scripting ----------------------------------------------------------------------------

    def push(self, token_ids: list[int], logprobs: list[float] | None = None) -> None:
        """Queue the ids the next call "samples" (logprobs default to ``fake_logprob``)."""
        if logprobs is not None and len(logprobs) != len(token_ids):
            raise ValueError("push: one logprob per token id")
        lps = logprobs or [fake_logprob(t, i) for i, t in enumerate(token_ids)]
        self.script.append(Scripted(list(token_ids), list(lps)))

    def fail_next(self, status: int = 500, message: str = "fake engine failure", times: int = 1):
        for _ in range(times):
            self._failures.append((status, message))

    def sample(self, prompt: list[int], max_tokens: int) -> tuple[Scripted, str]:
        """The reply to ``prompt``: the script's next entry, else ids drawn from the prompt."""
        if self.script:
            reply = self.script.popleft()
        else:
            rng = random.Random(zlib.crc32(repr((self.seed, prompt)).encode()))
            top = self.vocab_size
            ids = [rng.randrange(top) for _ in range(rng.randint(4, 12))]
            ids = [t for t in ids if t != self.eos_token_id]
            if self.eos_token_id is not None:
                ids.append(self.eos_token_id)
            reply = Scripted(ids, [fake_logprob(t, i) for i, t in enumerate(ids)])
        if len(reply.token_ids) > max_tokens:
            cut = Scripted(reply.token_ids[:max_tokens], reply.logprobs[:max_tokens])
            return cut, "length"
        return reply, "stop"

    # -- the server ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        return app

    @asynccontextmanager
    async def serve(self, port: int = 0) -> AsyncIterator[str]:
        from swerl.gateway.server import serve_app

        async with serve_app(self.app(), port) as url:
            yield url

    async def health(self, _request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def models(self, _request: web.Request) -> web.Response:
        card = {"id": self.served_name, "object": "model", "max_model_len": self.max_model_len}
        return web.json_response({"object": "list", "data": [card]})

    async def completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self._failures:
            status, message = self._failures.popleft()
            return error(status, message)
        prompt = body.get("prompt")
        if (
            not isinstance(prompt, list)
            or not prompt
            or not all(isinstance(t, int) for t in prompt)
        ):
            return error(400, "the fake policy takes token-id prompts only (a list of ints)")
        if any(t < 0 or t >= self.vocab_size for t in prompt):
            return error(400, f"token id out of vocabulary (size {self.vocab_size})")
        max_tokens = int(body.get("max_tokens") or 16)
        if len(prompt) + max_tokens > self.max_model_len:
            return error(
                400,
                f"This model's maximum context length is {self.max_model_len} tokens. However, "
                f"you requested {len(prompt) + max_tokens} tokens ({len(prompt)} in the "
                f"messages, {max_tokens} in the completion).",
            )
        reply, finish = self.sample(prompt, max_tokens)
        ids = reply.token_ids
        want_ids = bool(body.get("return_token_ids"))
        logprobs = None
        if body.get("logprobs") is not None:
            tokens = [f"token_id:{t}" for t in ids]
            logprobs = {
                "text_offset": list(range(len(ids))),
                "token_logprobs": reply.logprobs,
                "tokens": tokens,
                "top_logprobs": [{tok: lp} for tok, lp in zip(tokens, reply.logprobs, strict=True)],
            }
        choice = {
            "index": 0,
            "text": self.decode(ids) if self.decode else "",
            "logprobs": logprobs,
            "finish_reason": finish,
            "stop_reason": None,
            "token_ids": ids if want_ids else None,
            "prompt_logprobs": None,
            "prompt_token_ids": prompt if want_ids else None,
        }
        return web.json_response(
            {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": body.get("model") or self.served_name,
                "choices": [choice],
                "usage": {
                    "prompt_tokens": len(prompt),
                    "completion_tokens": len(ids),
                    "total_tokens": len(prompt) + len(ids),
                },
            }
        )


def error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "BadRequestError", "param": None, "code": status}}
    return web.json_response(body, status=status)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A vLLM-shaped fake policy server (token ids).")
    parser.add_argument("--port", type=int, default=18004)
    parser.add_argument("--served-name", default="policy")
    parser.add_argument("--eos", type=int, default=None, help="stop token id appended to replies")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--max-model-len", type=int, default=4096)
    args = parser.parse_args(argv)
    fake = FakePolicy(
        served_name=args.served_name,
        max_model_len=args.max_model_len,
        vocab_size=args.vocab_size,
        eos_token_id=args.eos,
    )
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, access_log=None)


if __name__ == "__main__":
    main()
