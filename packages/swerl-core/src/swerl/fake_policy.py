"""A fake policy server shaped like vLLM's token-in/token-out endpoint (tests, plugin authors).

It answers ``POST /v1/completions`` whose ``prompt`` is a list of token ids, exactly in the
fields the swerl gateway reads from vLLM (``choices[0].token_ids``, ``prompt_token_ids``,
``logprobs.token_logprobs``, ``finish_reason``), plus ``GET /health`` and ``GET /v1/models``.
Replies are scripted (``push``: the ids a test wants "sampled"), or chosen by a ``Dialogue``
(whole conversations, turn by turn, picked by what the prompt says: how swerl records real agent
transcripts to warm-start a tiny policy), or, when neither has one, drawn deterministically from
the prompt. Every request body is kept in ``requests``; ``fail_next`` makes the next calls answer
with an error, as a crashing server would.

    fake = FakePolicy(eos_token_id=2)
    fake.push([11, 12, 2])
    async with fake.serve() as url:  # http://127.0.0.1:<free port>
        ...

Run one by hand: ``python -m swerl.fake_policy --port 18004 --eos 2``, or with a dialogue:
``python -m swerl.fake_policy --tokenizer models/tiny-qwen2 --dialogue conversations.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web


@dataclass
class Scripted:
    token_ids: list[int]
    logprobs: list[float]


def fake_logprob(token: int, position: int) -> float:
    """A deterministic logprob in (-4, 0) that differs from token to token."""
    return -(((token * 7919 + position * 104729) % 4000) + 1) / 1000.0


# -- dialogues: scripted conversations ----------------------------------------------------------

#: A reply: the text the model "says", or ``{"when": [[regex, text], ...]}``: the text of the first
#: regex found in the latest observation (what came after the last assistant turn).
Reply = str | dict[str, list[list[str]]]


@dataclass
class Conversation:
    """One scripted conversation: used when ``match`` occurs in the prompt's text."""

    match: str
    replies: list[Reply]


class NoScript(LookupError):
    """No conversation of the dialogue continues this prompt."""


class Dialogue:
    """Whole conversations answered turn by turn, chosen by what the prompt says.

    A prompt continues a conversation when the conversation's ``match`` occurs in the prompt's
    text and the assistant turns already in the prompt are its first replies (compared as
    parsed: content and tool calls with their arguments, so the agent's re-serialisation of a
    tool call does not matter). When several conversations continue a prompt with different next
    replies, they take turns (round robin per prompt history): N trials of a task whose
    conversations branch N ways cover each branch once. The chat format is ChatML: assistant
    turns run from ``<|im_start|>assistant`` to ``<|im_end|>``; tool calls are parsed with
    ``parser`` (hermes by default).
    """

    TURN = re.compile(r"<\|im_start\|>assistant(.*?)<\|im_end\|>", re.DOTALL)

    def __init__(self, conversations: list[Conversation], parser: str = "hermes") -> None:
        from swerl.gateway.parsers import get_parser

        self.conversations = conversations
        self.parse = get_parser(parser)
        self._turn_counts: dict[tuple[Any, ...], int] = {}

    @classmethod
    def from_json(cls, data: Any) -> Dialogue:
        """``{"conversations": [{"match": str, "replies": [reply, ...]}, ...]}``."""
        if not isinstance(data, dict) or not isinstance(data.get("conversations"), list):
            raise ValueError("a dialogue is an object with a 'conversations' list")
        convs = []
        for i, c in enumerate(data["conversations"]):
            ok = isinstance(c, dict) and isinstance(c.get("match"), str) and c["match"]
            if not ok or not isinstance(c.get("replies"), list) or not c["replies"]:
                raise ValueError(f"conversations[{i}] needs a non-empty 'match' and 'replies'")
            for j, r in enumerate(c["replies"]):
                if not isinstance(r, str) and not (
                    isinstance(r, dict)
                    and isinstance(r.get("when"), list)
                    and all(isinstance(w, list) and len(w) == 2 for w in r["when"])
                ):
                    raise ValueError(
                        f"conversations[{i}].replies[{j}] must be text or "
                        '{"when": [[regex, text], ...]}'
                    )
            convs.append(Conversation(c["match"], list(c["replies"])))
        return cls(convs)

    def key(self, text: str) -> tuple[str, tuple[Any, ...]]:
        """What the model said in ``text``, comparable across re-serialisations."""
        parsed = self.parse(text)
        calls = tuple((c.name, json.dumps(c.arguments, sort_keys=True)) for c in parsed.tool_calls)
        return (parsed.content or "").strip(), calls

    @staticmethod
    def options(reply: Reply) -> list[str]:
        return [reply] if isinstance(reply, str) else [text for _, text in reply["when"]]

    def reply(self, prompt_text: str) -> str:
        """The next reply for a prompt (rendered text); ``NoScript`` when none continues it."""
        said = [self.key(t) for t in self.TURN.findall(prompt_text)]
        ends = [m.end() for m in self.TURN.finditer(prompt_text)]
        observation = prompt_text[ends[-1] :] if ends else prompt_text
        k = len(said)
        nexts: list[str] = []
        for conv in self.conversations:
            if conv.match not in prompt_text or len(conv.replies) <= k:
                continue
            if not all(
                said[i] in {self.key(o) for o in self.options(conv.replies[i])} for i in range(k)
            ):
                continue
            text = self.resolve(conv.replies[k], observation)
            if text is not None and text not in nexts:
                nexts.append(text)
        if not nexts:
            raise NoScript(
                f"no scripted conversation continues this prompt (after {k} turn(s); it ends "
                f"with {prompt_text[-300:]!r})"
            )
        history = (tuple(c.match for c in self.conversations if c.match in prompt_text), *said)
        n = self._turn_counts.get(history, 0)
        self._turn_counts[history] = n + 1
        return nexts[n % len(nexts)]

    @staticmethod
    def resolve(reply: Reply, observation: str) -> str | None:
        if isinstance(reply, str):
            return reply
        for pattern, text in reply["when"]:
            if re.search(pattern, observation):
                return text
        return None


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
        encode: Callable[[str], list[int]] | None = None,
        dialogue: Dialogue | None = None,
    ) -> None:
        self.served_name = served_name
        self.max_model_len = max_model_len
        self.vocab_size = vocab_size
        self.eos_token_id = eos_token_id
        self.seed = seed
        self.decode = decode
        self.encode = encode
        self.dialogue = dialogue
        if dialogue is not None and (decode is None or encode is None or eos_token_id is None):
            raise ValueError("a dialogue needs decode, encode and eos_token_id")
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
        elif self.dialogue is not None:
            assert self.decode and self.encode and self.eos_token_id is not None
            text = self.dialogue.reply(self.decode(prompt))
            ids = [*self.encode(text), self.eos_token_id]
            reply = Scripted(ids, [fake_logprob(t, i) for i, t in enumerate(ids)])
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
        try:
            reply, finish = self.sample(prompt, max_tokens)
        except NoScript as exc:
            return error(400, str(exc))
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


def load_tokenizer(
    model_dir: Path,
) -> tuple[Callable[[str], list[int]], Callable[[list[int]], str], int, int]:
    """(encode, decode, eos id, vocab size) of a model folder's tokenizer, loaded as the gateway
    loads it (transformers), so that scripted replies are tokenized as the gateway would."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    if tok.eos_token_id is None:
        raise ValueError(f"{model_dir}: the tokenizer has no eos_token")

    def encode(text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False))

    def decode(ids: list[int]) -> str:
        return str(tok.decode(ids, skip_special_tokens=False))

    return encode, decode, int(tok.eos_token_id), len(tok)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A vLLM-shaped fake policy server (token ids).")
    parser.add_argument("--port", type=int, default=18004)
    parser.add_argument("--served-name", default="policy")
    parser.add_argument("--eos", type=int, default=None, help="stop token id appended to replies")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument(
        "--tokenizer", type=Path, help="model folder with tokenizer.json (needed by --dialogue)"
    )
    parser.add_argument(
        "--dialogue", type=Path, help="JSON file of scripted conversations (see Dialogue)"
    )
    args = parser.parse_args(argv)
    encode = decode = dialogue = None
    eos, vocab = args.eos, args.vocab_size
    if args.tokenizer is not None:
        encode, decode, tok_eos, vocab = load_tokenizer(args.tokenizer)
        eos = tok_eos if eos is None else eos
    if args.dialogue is not None:
        if args.tokenizer is None:
            parser.error("--dialogue needs --tokenizer")
        dialogue = Dialogue.from_json(json.loads(args.dialogue.read_text()))
    fake = FakePolicy(
        served_name=args.served_name,
        max_model_len=args.max_model_len,
        vocab_size=vocab,
        eos_token_id=eos,
        decode=decode,
        encode=encode,
        dialogue=dialogue,
    )
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, access_log=None)


if __name__ == "__main__":
    main()
