"""The gateway behind LiteLLM's real adapters (1.106.2), as claude-code reaches it.

claude-code speaks Anthropic Messages, always streamed; LiteLLM translates to OpenAI chat for its
``hosted_vllm`` provider. These tests run LiteLLM's own translation code (no proxy process)
against the gateway and the fake policy: the tool call must survive the stream, and LiteLLM's
rewrite of the history must still stitch.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from swerl.fake_policy import FakePolicy
from swerl.gateway.backend import VLLMHttpBackend
from swerl.gateway.render import ChatRenderer
from swerl.gateway.server import Gateway, serve_app
from swerl.gateway.settings import GatewaySettings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "models" / "tiny-qwen2"
ANTHROPIC_TOOLS = [
    {
        "name": "Bash",
        "description": "Run a shell command.",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    }
]


@pytest.fixture(scope="module")
def renderer() -> ChatRenderer:
    if not (MODEL / "tokenizer_config.json").is_file():
        pytest.skip("models/tiny-qwen2 is missing: run `make setup` to build it")
    return ChatRenderer.from_pretrained(MODEL)


@pytest.fixture(scope="module")
def litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch
    import litellm

    return litellm


def anthropic_events(chunks: list[bytes]) -> list[dict[str, Any]]:
    events = []
    for raw in chunks:
        for line in raw.decode().splitlines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    return events


def content_blocks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The assistant content an Anthropic client (claude-code) rebuilds from the events."""
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    for ev in events:
        if ev["type"] == "content_block_start":
            blocks[ev["index"]] = dict(ev["content_block"])
        elif ev["type"] == "content_block_delta":
            d, i = ev["delta"], ev["index"]
            if d["type"] == "text_delta":
                blocks[i]["text"] = blocks[i].get("text", "") + d["text"]
            elif d["type"] == "input_json_delta":
                partial[i] = partial.get(i, "") + d["partial_json"]
    for i, text in partial.items():
        blocks[i]["input"] = json.loads(text)
    return [blocks[i] for i in sorted(blocks)]


def test_claude_code_path_tool_use_round_trip_stitches(renderer: ChatRenderer, litellm) -> None:
    tok = renderer.tokenizer
    eos = tok.eos_token_id
    call = '<tool_call>\n{"name": "Bash", "arguments": {"command": "ls"}}\n</tool_call>'
    r1 = [*tok.encode("I will list the files.\n" + call, add_special_tokens=False), eos]
    r2 = [*tok.encode("Done.", add_special_tokens=False), eos]

    async def scenario() -> None:
        fake = FakePolicy(eos_token_id=eos)
        fake.push(r1)
        fake.push(r2)
        async with fake.serve() as policy_url:
            settings = GatewaySettings(model_path=str(MODEL), backend_url=policy_url)
            gw = Gateway(settings, renderer, VLLMHttpBackend(policy_url, "policy"))
            async with serve_app(gw.app()) as url:
                kwargs = {
                    "model": "hosted_vllm/policy",
                    "api_base": f"{url}/v1",
                    "api_key": "worthless",
                    "max_tokens": 256,
                    "tools": ANTHROPIC_TOOLS,
                    "system": [{"type": "text", "text": "You fix bugs."}],
                    "extra_headers": {"x-swerl-trial": "cc-trial"},
                }
                messages: list[dict[str, Any]] = [
                    {"role": "user", "content": [{"type": "text", "text": "Fix a.py"}]}
                ]
                stream = await litellm.anthropic.messages.acreate(
                    messages=messages, stream=True, **kwargs
                )
                events = anthropic_events([chunk async for chunk in stream])
                blocks = content_blocks(events)
                assert [b["type"] for b in blocks] == ["text", "tool_use"]
                assert blocks[0]["text"] == "I will list the files."
                assert (blocks[1]["name"], blocks[1]["input"]) == ("Bash", {"command": "ls"})
                (stop,) = [e for e in events if e["type"] == "message_delta"]
                assert stop["delta"]["stop_reason"] == "tool_use"
                assert stop["usage"]["output_tokens"] == len(r1)

                messages += [
                    {"role": "assistant", "content": blocks},
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": blocks[1]["id"],
                                "content": "a.py\nb.py",
                            },
                        ],
                    },
                ]
                stream = await litellm.anthropic.messages.acreate(
                    messages=messages, stream=True, **kwargs
                )
                events = anthropic_events([chunk async for chunk in stream])
                assert content_blocks(events) == [{"type": "text", "text": "Done."}]
                record = gw.sessions["cc-trial"].to_json()

        assert record["stitch_breaks"] == 0 and record["exactness"] == 1.0
        (sample,) = record["samples"]
        obs = tok.encode(
            "\n<|im_start|>user\n<tool_response>\na.py\nb.py\n</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n",
            add_special_tokens=False,
        )
        assert sample["response_ids"] == r1 + list(obs) + r2
        assert [b["prompt"] for b in fake.requests][1] == sample["prompt_ids"] + r1 + list(obs)

    asyncio.run(scenario())


def test_openai_path_returns_token_ids_when_asked(renderer: ChatRenderer, litellm) -> None:
    """Non-streamed hosted_vllm calls keep vLLM's id fields (what a live check can show)."""
    tok = renderer.tokenizer
    sampled = [*tok.encode("hello", add_special_tokens=False), tok.eos_token_id]

    async def scenario() -> None:
        fake = FakePolicy(eos_token_id=tok.eos_token_id)
        fake.push(sampled)
        async with fake.serve() as policy_url:
            settings = GatewaySettings(model_path=str(MODEL), backend_url=policy_url)
            gw = Gateway(settings, renderer, VLLMHttpBackend(policy_url, "policy"))
            async with serve_app(gw.app()) as url:
                resp = await litellm.acompletion(
                    model="hosted_vllm/policy",
                    api_base=f"{url}/v1",
                    api_key="worthless",
                    messages=[{"role": "user", "content": "hi"}],
                    extra_body={"return_token_ids": True},
                    extra_headers={"x-swerl-trial": "live"},
                )
        assert resp.choices[0].message.content == "hello"
        assert resp.choices[0].provider_specific_fields["token_ids"] == sampled
        assert resp.prompt_token_ids == fake.requests[0]["prompt"]

    asyncio.run(scenario())
