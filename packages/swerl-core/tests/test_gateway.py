"""The gateway against the fake policy server, with the real tiny tokenizer and chat template.

Each test runs the real aiohttp gateway and the fake on loopback ports and talks HTTP to them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from swerl.fake_policy import FakePolicy, fake_logprob
from swerl.gateway.backend import VLLMHttpBackend
from swerl.gateway.render import ChatRenderer
from swerl.gateway.server import Gateway, serve_app
from swerl.gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[3]
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        # keys deliberately out of vLLM's order: the gateway must reorder them
        "function": {
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
            "name": "Bash",
            "description": "Run a shell command.",
        },
    }
]
TOOLS_VLLM_ORDER = [
    {
        "type": "function",
        "function": {k: TOOLS[0]["function"][k] for k in ("name", "description", "parameters")},
    }
]
SYSTEM: dict[str, Any] = {"role": "system", "content": "You fix bugs in small repositories."}
USER: dict[str, Any] = {
    "role": "user",
    "content": [
        {"type": "text", "text": "Fix the failing test."},
        {"type": "text", "text": "The repo is in /app.", "cache_control": {"type": "ephemeral"}},
    ],
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model `make setup` builds; built into a temp folder when it is not there."""
    path = ROOT / "models" / "tiny-qwen2"
    if (path / "tokenizer_config.json").is_file():
        return path
    out = tmp_path_factory.mktemp("model") / "tiny-qwen2"
    script = ROOT / "scripts" / "make_tiny_model.py"
    subprocess.run([sys.executable, str(script), str(out)], check=True, timeout=600)
    return out


@pytest.fixture(scope="module")
def renderer(model_dir: Path) -> ChatRenderer:
    return ChatRenderer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def tok(renderer: ChatRenderer) -> Any:
    return renderer.tokenizer


def encode(tok: Any, text: str) -> list[int]:
    return list(tok.encode(text, add_special_tokens=False))


def reference_render(tok: Any, messages: list[dict[str, Any]], gen: bool = True) -> list[int]:
    """The prompt as the tokenizer renders it directly (the test's own normalisation)."""
    text = tok.apply_chat_template(
        messages, tools=TOOLS_VLLM_ORDER, add_generation_prompt=gen, tokenize=False
    )
    return encode(tok, text)


def plain(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """USER's content parts joined as vLLM joins them."""
    out = []
    for m in messages:
        if isinstance(m.get("content"), list):
            m = {**m, "content": "\n".join(p["text"] for p in m["content"])}
        out.append(m)
    return out


@dataclass
class Stack:
    gateway: Gateway
    fake: FakePolicy
    url: str
    http: aiohttp.ClientSession

    async def chat(
        self, body: dict[str, Any], trial: str | None = "trial-1", **headers: str
    ) -> tuple[int, Any]:
        hdrs = {"x-swerl-trial": trial} if trial else {}
        hdrs |= {k.replace("_", "-"): v for k, v in headers.items()}
        async with self.http.post(f"{self.url}/v1/chat/completions", json=body, headers=hdrs) as r:
            text = await r.text()
            if r.headers.get("content-type", "").startswith("text/event-stream"):
                return r.status, parse_sse(text)
            return r.status, json.loads(text)

    async def get(self, path: str, method: str = "GET") -> tuple[int, Any]:
        async with self.http.request(method, f"{self.url}{path}") as r:
            return r.status, await r.json()


@asynccontextmanager
async def stack(
    renderer: ChatRenderer, *, backend_url: str | None = None, **settings: Any
) -> AsyncIterator[Stack]:
    fake = FakePolicy(eos_token_id=renderer.tokenizer.eos_token_id, max_model_len=4096)
    async with fake.serve() as policy_url:
        cfg = GatewaySettings(
            model_path="unused", backend_url=backend_url or policy_url, **settings
        )
        gw = Gateway(cfg, renderer, VLLMHttpBackend(cfg.backend_url, cfg.served_name))
        async with serve_app(gw.app()) as url, aiohttp.ClientSession() as http:
            yield Stack(gw, fake, url, http)


def parse_sse(text: str) -> list[Any]:
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def rebuild(events: list[Any]) -> dict[str, Any]:
    """An assistant message rebuilt from chat-completion chunks, as OpenAI clients do."""
    assert events[-1] == "[DONE]"
    msg: dict[str, Any] = {"role": None, "content": "", "tool_calls": {}, "finish": None}
    usage = None
    for ev in events[:-1]:
        assert ev["object"] == "chat.completion.chunk"
        if ev.get("usage"):
            usage = ev["usage"]
        for ch in ev["choices"]:
            d = ch["delta"]
            msg["role"] = d.get("role") or msg["role"]
            msg["content"] += d.get("content") or ""
            for tc in d.get("tool_calls") or []:
                slot = msg["tool_calls"].setdefault(tc["index"], {"arguments": ""})
                if tc.get("id"):
                    slot["id"] = tc["id"]
                fn = tc.get("function") or {}
                if fn.get("name"):
                    slot["name"] = fn["name"]
                slot["arguments"] += fn.get("arguments") or ""
            msg["finish"] = ch.get("finish_reason") or msg["finish"]
    msg["tool_calls"] = [msg["tool_calls"][i] for i in sorted(msg["tool_calls"])]
    msg["usage"] = usage
    return msg


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def as_history_call(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call as the agent sends it back (LiteLLM: arguments as a JSON string)."""
    return {"id": call["id"], "type": "function", "function": call["function"]}


# -- one call ---------------------------------------------------------------------------------


def test_non_stream_text_reply_renders_prompt_and_sends_token_ids(renderer, tok) -> None:
    sampled = [*encode(tok, "The bug is in a.py."), tok.eos_token_id]

    async def scenario() -> None:
        async with stack(renderer, temperature=0.7, top_p=0.9) as s:
            s.fake.push(sampled)
            body = {
                "model": "policy",
                "messages": [SYSTEM, USER],
                "tools": TOOLS,
                "max_tokens": 64,
                "temperature": 0.0,  # the agent's own sampling is ignored
                "return_token_ids": True,
            }
            status, resp = await s.chat(body)
            assert status == 200, resp
            choice = resp["choices"][0]
            assert choice["message"] == {"role": "assistant", "content": "The bug is in a.py."}
            assert choice["finish_reason"] == "stop"
            sent = s.fake.requests[0]
            expected_prompt = reference_render(tok, plain([SYSTEM, USER]))
            assert sent["prompt"] == expected_prompt
            assert (sent["return_token_ids"], sent["logprobs"]) == (True, 1)
            assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.7, 0.9, 64)
            assert resp["prompt_token_ids"] == expected_prompt
            assert choice["token_ids"] == sampled
            assert resp["usage"] == {
                "prompt_tokens": len(expected_prompt),
                "completion_tokens": len(sampled),
                "total_tokens": len(expected_prompt) + len(sampled),
            }

    run(scenario())


def test_stream_tool_call_rebuilds_like_an_openai_client(renderer, tok) -> None:
    text = '<tool_call>\n{"name": "Bash", "arguments": {"command": "ls -la /app"}}\n</tool_call>'
    sampled = [*encode(tok, "Looking.\n" + text), tok.eos_token_id]

    async def scenario() -> None:
        async with stack(renderer) as s:
            s.fake.push(sampled)
            body = {
                "model": "policy",
                "messages": [SYSTEM, USER],
                "tools": TOOLS,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            status, events = await s.chat(body)
            assert status == 200
            assert events[0]["choices"][0]["delta"]["role"] == "assistant"
            assert events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] == len(
                sampled
            )
            msg = rebuild(events)
            assert msg["role"] == "assistant"
            assert msg["content"] == "Looking."
            assert msg["finish"] == "tool_calls"
            (call,) = msg["tool_calls"]
            assert call["name"] == "Bash" and call["id"].startswith("call_")
            assert json.loads(call["arguments"]) == {"command": "ls -la /app"}
            # without include_usage there is no usage chunk
            s.fake.push(sampled)
            _, events = await s.chat({**body, "stream_options": None}, trial="trial-2")
            assert all(ev == "[DONE]" or "usage" not in ev for ev in events)

    run(scenario())


def test_max_tokens_is_capped_to_the_room_left(renderer, tok) -> None:
    async def scenario() -> None:
        async with stack(renderer, max_model_len=1000) as s:
            body = {"messages": [SYSTEM, USER], "tools": TOOLS}
            prompt_len = len(reference_render(tok, plain([SYSTEM, USER])))
            for asked, expect in [(5, 5), (64000, 1000 - prompt_len), (None, 1000 - prompt_len)]:
                status, _ = await s.chat({**body, "max_tokens": asked})
                assert status == 200
                assert s.fake.requests[-1]["max_tokens"] == expect

    run(scenario())


# -- stitching --------------------------------------------------------------------------------


def test_three_turns_with_tool_results_are_one_exact_sample(renderer, tok) -> None:
    eos = tok.eos_token_id
    # Sampled JSON without spaces: a fresh render of the history would print it differently,
    # so only a token-exact gateway puts these very ids into the next prompt.
    r1 = encode(tok, '<tool_call>\n{"name":"Bash","arguments":{"command":"ls"}}\n</tool_call>')
    r1 += [eos]
    r2 = (
        encode(
            tok, 'Let me read it.\n<tool_call>\n{"name":"Bash","arguments":{"command":"cat a.py"}}'
        )
        + encode(tok, "\n</tool_call>")
        + [eos]
    )
    r3 = [*encode(tok, "Fixed: a.py now prints 2."), eos]

    def observation(result: str) -> list[int]:
        # the template's glue after <|im_end|>, the tool turn, and the next generation prompt
        return encode(
            tok,
            f"\n<|im_start|>user\n<tool_response>\n{result}\n</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n",
        )

    async def scenario() -> None:
        async with stack(renderer) as s:
            for r in (r1, r2, r3):
                s.fake.push(r)
            msgs = [SYSTEM, USER]
            status, resp = await s.chat({"messages": msgs, "tools": TOOLS})
            assert status == 200
            call1 = resp["choices"][0]["message"]["tool_calls"][0]
            assert json.loads(call1["function"]["arguments"]) == {"command": "ls"}
            msgs = [
                *msgs,
                {"role": "assistant", "content": None, "tool_calls": [as_history_call(call1)]},
                {"role": "tool", "tool_call_id": call1["id"], "content": "a.py\nb.py"},
            ]
            status, events = await s.chat({"messages": msgs, "tools": TOOLS, "stream": True})
            assert status == 200
            m2 = rebuild(events)
            call2 = {
                "id": m2["tool_calls"][0]["id"],
                "type": "function",
                "function": {"name": "Bash", "arguments": m2["tool_calls"][0]["arguments"]},
            }
            msgs = [
                *msgs,
                # LiteLLM sends the text of an Anthropic text block; spacing may differ
                {"role": "assistant", "content": m2["content"] + "\n", "tool_calls": [call2]},
                {"role": "tool", "tool_call_id": call2["id"], "content": "print(1)"},
            ]
            status, resp = await s.chat({"messages": msgs, "tools": TOOLS})
            assert status == 200
            assert resp["choices"][0]["message"]["content"] == "Fixed: a.py now prints 2."

            status, rec = await s.get("/sessions/trial-1")
            assert status == 200
            (sample,) = rec["samples"]
            assert rec["stitch_breaks"] == 0 and rec["exactness"] == 1.0
            prompt = reference_render(tok, plain([SYSTEM, USER]))
            o1, o2 = observation("a.py\nb.py"), observation("print(1)")
            assert sample["prompt_ids"] == prompt
            assert sample["response_ids"] == r1 + o1 + r2 + o2 + r3
            assert sample["loss_mask"] == [1] * len(r1) + [0] * len(o1) + [1] * len(r2) + [0] * len(
                o2
            ) + [1] * len(r3)
            trained = [
                t for t, m in zip(sample["response_ids"], sample["loss_mask"], strict=True) if m
            ]
            assert trained == r1 + r2 + r3
            lps = [lp for lp, m in zip(sample["logprobs"], sample["loss_mask"], strict=True) if m]
            assert lps == [fake_logprob(t, i) for r in (r1, r2, r3) for i, t in enumerate(r)]
            assert all(
                lp == 0.0
                for lp, m in zip(sample["logprobs"], sample["loss_mask"], strict=True)
                if not m
            )
            # the policy server saw exactly the stitched prompts
            sent = [b["prompt"] for b in s.fake.requests]
            assert sent == [prompt, prompt + r1 + o1, prompt + r1 + o1 + r2 + o2]
            # and a fresh render of the last history would not have given those ids
            assert reference_render(tok, plain(msgs)) != sent[2]
            assert [t["stitched"] for t in sample["turns"]] == [False, True, True]

    run(scenario())


def test_edited_history_starts_a_second_sample(renderer, tok) -> None:
    eos = tok.eos_token_id
    r1 = encode(tok, '<tool_call>\n{"name": "Bash", "arguments": {"command": "ls"}}\n</tool_call>')
    r1 += [eos]
    r2 = [*encode(tok, "Done."), eos]

    async def scenario() -> None:
        async with stack(renderer) as s:
            s.fake.push(r1)
            s.fake.push(r2)
            status, resp = await s.chat({"messages": [SYSTEM, USER], "tools": TOOLS})
            call = resp["choices"][0]["message"]["tool_calls"][0]
            edited = {"role": "user", "content": "Fix the failing test, please."}  # compaction
            msgs = [
                SYSTEM,
                edited,
                {"role": "assistant", "content": "", "tool_calls": [as_history_call(call)]},
                {"role": "tool", "tool_call_id": call["id"], "content": "a.py"},
            ]
            status, _ = await s.chat({"messages": msgs, "tools": TOOLS})
            assert status == 200
            _, rec = await s.get("/sessions/trial-1")
            assert len(rec["samples"]) == 2
            assert rec["stitch_breaks"] == 1 and rec["break_reasons"] == ["history edited"]
            second = rec["samples"][1]
            assert second["prompt_ids"] == reference_render(tok, msgs)
            assert second["response_ids"] == r2 and second["loss_mask"] == [1] * len(r2)
            assert rec["exactness"] == 1.0
            _, stats = await s.get("/stats")
            assert (stats["samples"], stats["stitch_breaks"], stats["stitched_calls"]) == (2, 1, 0)

    run(scenario())


def test_a_side_call_does_not_break_the_main_conversation(renderer, tok) -> None:
    eos = tok.eos_token_id
    r1 = encode(tok, '<tool_call>\n{"name": "Bash", "arguments": {"command": "ls"}}\n</tool_call>')
    side, r2 = [*encode(tok, "Title: fix"), eos], [*encode(tok, "Done."), eos]

    async def scenario() -> None:
        async with stack(renderer) as s:
            for r in ([*r1, eos], side, r2):
                s.fake.push(r)
            _, resp = await s.chat({"messages": [SYSTEM, USER], "tools": TOOLS})
            call = resp["choices"][0]["message"]["tool_calls"][0]
            # e.g. a title request from the agent, in the same session, different prompt
            status, _ = await s.chat({"messages": [{"role": "user", "content": "Name this."}]})
            assert status == 200
            msgs = [
                SYSTEM,
                USER,
                {"role": "assistant", "tool_calls": [as_history_call(call)]},
                {"role": "tool", "tool_call_id": call["id"], "content": "a.py"},
            ]
            await s.chat({"messages": msgs, "tools": TOOLS})
            _, rec = await s.get("/sessions/trial-1")
            main, aside = rec["samples"]
            assert [t["stitched"] for t in main["turns"]] == [False, True]
            assert main["response_ids"][-len(r2) :] == r2 and aside["response_ids"] == side
            assert rec["stitch_breaks"] == 1

    run(scenario())


def test_a_truncated_turn_is_closed_by_an_unsampled_end_of_turn(renderer, tok) -> None:
    eos = tok.eos_token_id
    long_text = encode(tok, "I think the problem is that the loop runs one time too many")

    async def scenario() -> None:
        async with stack(renderer) as s:
            s.fake.push([*long_text, eos])
            s.fake.push([*encode(tok, "ok"), eos])
            _, resp = await s.chat({"messages": [SYSTEM, USER], "max_tokens": 5})
            assert resp["choices"][0]["finish_reason"] == "length"
            content = resp["choices"][0]["message"]["content"]
            assert content == tok.decode(long_text[:5]).strip()
            msgs = [SYSTEM, USER, {"role": "assistant", "content": content}]
            msgs.append({"role": "user", "content": "Go on."})
            await s.chat({"messages": msgs})
            _, rec = await s.get("/sessions/trial-1")
            (sample,) = rec["samples"]
            obs_start = 5
            assert sample["response_ids"][:obs_start] == long_text[:5]
            assert sample["loss_mask"][obs_start] == 0
            # the end-of-turn token the model never sampled is an observation token
            assert sample["response_ids"][obs_start] == eos

    run(scenario())


def test_malformed_tool_call_is_content_counted_and_still_stitches(renderer, tok) -> None:
    eos = tok.eos_token_id
    bad = '<tool_call>\n{"name": "Bash", "arguments": {"command": \n</tool_call>'
    r1 = [*encode(tok, bad), eos]

    async def scenario() -> None:
        async with stack(renderer) as s:
            s.fake.push(r1)
            s.fake.push([*encode(tok, "Sorry."), eos])
            _, resp = await s.chat({"messages": [SYSTEM, USER], "tools": TOOLS})
            msg = resp["choices"][0]["message"]
            assert msg == {"role": "assistant", "content": bad.strip()}
            assert resp["choices"][0]["finish_reason"] == "stop"
            msgs = [SYSTEM, USER, msg, {"role": "user", "content": "That was not a tool call."}]
            await s.chat({"messages": msgs, "tools": TOOLS})
            _, rec = await s.get("/sessions/trial-1")
            assert rec["malformed_tool_calls"] == 1
            assert len(rec["samples"]) == 1 and rec["samples"][0]["turns"][0]["malformed"]

    run(scenario())


# -- errors -----------------------------------------------------------------------------------


def test_context_overflow_is_a_400_and_a_recorded_cause(renderer) -> None:
    async def scenario() -> None:
        async with stack(renderer, max_model_len=64) as s:
            status, resp = await s.chat({"messages": [SYSTEM, USER], "tools": TOOLS})
            assert status == 400
            assert resp["error"]["code"] == "context_length_exceeded"
            assert "maximum context length is 64 tokens" in resp["error"]["message"]
            assert s.fake.requests == []  # the policy server was never asked
            _, rec = await s.get("/sessions/trial-1")
            assert [f["code"] for f in rec["failures"]] == ["context_length_exceeded"]
            assert rec["samples"] == []

    run(scenario())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_backend_down_or_failing_is_a_502_with_its_cause(renderer, tok) -> None:
    async def scenario() -> None:
        dead = f"http://127.0.0.1:{free_port()}"
        async with stack(renderer, backend_url=dead) as s:
            status, resp = await s.chat({"messages": [SYSTEM, USER]})
            assert status == 502 and resp["error"]["code"] == "backend_unreachable"
            assert dead in resp["error"]["message"]
        async with stack(renderer) as s:
            s.fake.fail_next(500, "engine dead: CUDA error")
            status, resp = await s.chat({"messages": [SYSTEM, USER]})
            assert status == 502 and "engine dead: CUDA error" in resp["error"]["message"]
            # the retry of the same call goes through and is the session's first sample
            s.fake.push([*encode(tok, "ok"), tok.eos_token_id])
            status, _ = await s.chat({"messages": [SYSTEM, USER]})
            assert status == 200
            _, rec = await s.get("/sessions/trial-1")
            assert [f["code"] for f in rec["failures"]] == ["backend_error"]
            assert rec["failures"][0]["call"] == 1 and rec["calls"] == 2
            assert len(rec["samples"]) == 1 and rec["stitch_breaks"] == 0
            _, stats = await s.get("/stats")
            assert stats["errors"] == {"backend_error": 1} and stats["ok"] == 1

    run(scenario())


def test_session_header_is_required_and_claude_code_id_is_a_fallback(renderer, tok) -> None:
    async def scenario() -> None:
        async with stack(renderer) as s:
            status, resp = await s.chat({"messages": [SYSTEM, USER]}, trial=None)
            assert status == 400 and resp["error"]["code"] == "missing_session_header"
            assert "x-swerl-trial" in resp["error"]["message"]
            assert s.fake.requests == []
            status, _ = await s.chat(
                {"messages": [SYSTEM, USER]}, trial=None, x_claude_code_session_id="cc-42"
            )
            assert status == 200
            assert (await s.get("/sessions/cc-42"))[0] == 200
            # x-swerl-trial wins over claude-code's own id
            await s.chat(
                {"messages": [SYSTEM, USER]}, trial="t-9", x_claude_code_session_id="cc-42"
            )
            _, rec = await s.get("/sessions/t-9")
            assert rec["calls"] == 1

    run(scenario())


def test_bad_requests_are_400s_naming_the_field(renderer) -> None:
    async def scenario() -> None:
        async with stack(renderer) as s:
            image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
            status, resp = await s.chat({"messages": [image]})
            assert status == 400 and "messages[0].content[0]" in resp["error"]["message"]
            status, resp = await s.chat({"messages": [SYSTEM, USER], "n": 2})
            assert status == 400 and "n must be 1" in resp["error"]["message"]
            status, resp = await s.chat({"messages": []})
            assert status == 400 and "messages" in resp["error"]["message"]
            _, rec = await s.get("/sessions/trial-1")
            assert [f["code"] for f in rec["failures"]] == ["bad_request"] * 3

    run(scenario())


def test_sessions_stats_health_and_models(renderer, tok) -> None:
    async def scenario() -> None:
        async with stack(renderer, served_name="policy") as s:
            assert (await s.get("/sessions/nobody"))[0] == 404
            s.fake.push([*encode(tok, "hi"), tok.eos_token_id])
            await s.chat({"messages": [SYSTEM, USER]})
            _, stats = await s.get("/stats")
            assert stats["sessions_open"] == 1 and stats["sampled_tokens"] == 2
            assert stats["exactness"] == 1.0 and stats["latency_ms"]["calls"] == 1
            status, rec = await s.get("/sessions/trial-1", method="DELETE")
            assert status == 200 and rec["samples"][0]["response_ids"][-1] == tok.eos_token_id
            assert (await s.get("/sessions/trial-1"))[0] == 404
            _, stats = await s.get("/stats")
            assert stats["sessions_open"] == 0 and stats["exactness"] == 1.0
            status, health = await s.get("/health")
            assert status == 200 and health["status"] == "ok"
            _, models = await s.get("/v1/models")
            assert [m["id"] for m in models["data"]] == ["policy"]

    run(scenario())


async def wait_healthy(http: Any, url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            async with http.get(url) as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer in 120 s"
        await asyncio.sleep(0.5)


def test_uncollected_sessions_expire(renderer) -> None:
    async def scenario() -> None:
        async with stack(renderer, session_ttl_s=0.0) as s:
            await s.chat({"messages": [SYSTEM, USER]}, trial="left-behind")
            await s.chat({"messages": [SYSTEM, USER]}, trial="next")
            assert (await s.get("/sessions/left-behind"))[0] == 404
            assert (await s.get("/sessions/next"))[0] == 200
            _, stats = await s.get("/stats")
            assert stats["sessions_expired"] == 1 and stats["sessions_open"] == 1

    run(scenario())


# -- the command ------------------------------------------------------------------------------


@pytest.mark.slow
def test_swerl_gateway_command_serves_and_never_logs_headers(tmp_path, model_dir, tok) -> None:
    """`swerl gateway --config` in a subprocess, as the boot supervisor starts it."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"model: {{path: {model_dir}, served_name: policy}}\n"
        f"tasks: {{path: {tmp_path}}}\n"
        "engine: {name: local}\n"
        "trainer: {n_gpus_per_node: 0}\n"
        "rollout: {max_model_len: 4096}\n"  # as the fake's
    )
    port = free_port()
    secret = "sk-do-not-log-7f3a"

    async def scenario() -> None:
        fake = FakePolicy(eos_token_id=tok.eos_token_id)
        fake.push([*encode(tok, "hello"), tok.eos_token_id])
        log_path = tmp_path / "gateway.log"
        async with fake.serve() as policy_url:
            with open(log_path, "w") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "swerl.cli", "gateway", "--config", str(config),
                     "--port", str(port), "--backend-url", f"{policy_url}/v1"],
                    stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )  # fmt: skip
                try:
                    url = f"http://127.0.0.1:{port}"
                    async with aiohttp.ClientSession() as http:
                        await wait_healthy(http, f"{url}/health", proc, log_path)
                        headers = {"x-swerl-trial": "cli-1", "x-api-key": secret,
                                   "authorization": f"Bearer {secret}"}  # fmt: skip
                        body = {"messages": [SYSTEM, USER], "model": "policy"}
                        async with http.post(f"{url}/v1/chat/completions", json=body,
                                             headers=headers) as r:  # fmt: skip
                            resp = await r.json()
                        assert resp["choices"][0]["message"]["content"] == "hello"
                finally:
                    proc.send_signal(signal.SIGINT)
                    assert proc.wait(timeout=30) == 0
        text = log_path.read_text()
        assert "session cli-1 call 1" in text
        assert secret not in text

    run(scenario())
