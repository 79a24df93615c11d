"""Messages and tools → prompt token ids, with the model's own chat template.

The gateway renders prompts itself (vLLM only ever sees token ids), so it must render them the
way vLLM's chat endpoint would: what LiteLLM sends is first normalised the way vLLM normalises it
(content parts joined with newlines, tool-call arguments parsed into objects, each tool's keys in
vLLM's order ``name, description, parameters``), then rendered with ``apply_chat_template`` to
text and tokenized without extra special tokens. Sampled text is never tokenized here: the
stitcher only uses renders to find template glue and observation tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Message keys a chat template may read; anything else (cache_control, ...) is dropped.
MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "reasoning_content")
ROLES = {"system", "developer", "user", "assistant", "tool"}
TOOL_KEYS = ("name", "description", "parameters")


class RequestError(ValueError):
    """The request cannot be rendered; the message says which field and why (HTTP 400)."""


def content_text(content: Any, where: str) -> str:
    """A message's content as one string: OpenAI content parts are joined with newlines (vLLM)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "input_text"):
                texts.append(str(part.get("text", "")))
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise RequestError(
                    f"{where}.content[{i}]: content of type {kind!r} is not supported"
                )
        return "\n".join(texts)
    raise RequestError(f"{where}.content must be a string or a list of parts")


def tool_arguments(raw: Any) -> Any:
    """Tool-call arguments as an object: templates render ``arguments | tojson`` (as vLLM)."""
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return raw
        return parsed if isinstance(parsed, dict) else raw
    return raw if raw is not None else {}


def normalise_tool_call(call: Any, where: str) -> dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise RequestError(f"{where} must be an object with a 'function' object")
    fn = call["function"]
    if not isinstance(fn.get("name"), str):
        raise RequestError(f"{where}.function.name must be a string")
    out: dict[str, Any] = {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": fn["name"], "arguments": tool_arguments(fn.get("arguments"))},
    }
    return out


def normalise_messages(messages: Any) -> list[dict[str, Any]]:
    """The request's messages in the form the chat template gets (and the stitcher compares)."""
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list")
    out = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            raise RequestError(f"{where}.role must be one of {sorted(ROLES)}")
        m: dict[str, Any] = {k: msg[k] for k in MESSAGE_KEYS if msg.get(k) is not None}
        m["content"] = content_text(msg.get("content"), where)
        if "tool_calls" in m:
            calls = m["tool_calls"]
            if not isinstance(calls, list):
                raise RequestError(f"{where}.tool_calls must be a list")
            if calls:
                m["tool_calls"] = [
                    normalise_tool_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(calls)
                ]
            else:
                del m["tool_calls"]
        out.append(m)
    return out


def normalise_tools(tools: Any) -> list[dict[str, Any]] | None:
    """OpenAI function tools with keys in vLLM's order; ``None`` when there are none."""
    if not tools:
        return None
    if not isinstance(tools, list):
        raise RequestError("tools must be a list")
    out = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RequestError(f"tools[{i}] must be a function tool with a name")
        out.append(
            {"type": "function", "function": {k: fn[k] for k in TOOL_KEYS if fn.get(k) is not None}}
        )
    return out


class ChatRenderer:
    """The model's tokenizer and chat template, plus the ids that end a turn.

    ``stop_ids`` are the ids the policy server stops on (the tokenizer's EOS and every
    ``eos_token_id`` of ``generation_config.json``), which vLLM includes in the sampled ids.
    """

    def __init__(self, tokenizer: Any, stop_ids: set[int]) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = stop_ids

    @classmethod
    def from_pretrained(cls, path: str | Path, *, trust_remote_code: bool = False) -> ChatRenderer:
        """Load the tokenizer with transformers (slow: ~20 s of imports on a small CPU box)."""
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        if not getattr(tok, "chat_template", None):
            raise RequestError(f"{path}: the tokenizer has no chat template")
        stop = {tok.eos_token_id} if tok.eos_token_id is not None else set()
        gen_cfg = Path(path) / "generation_config.json"
        if gen_cfg.is_file():
            eos = json.loads(gen_cfg.read_text()).get("eos_token_id")
            stop |= set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if not stop:
            raise RequestError(f"{path}: no EOS token in the tokenizer or generation_config.json")
        return cls(tok, stop)

    def template(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        *,
        add_generation_prompt: bool,
    ) -> str:
        """The templated conversation as text (what vLLM's chat endpoint renders)."""
        try:
            text = self.tokenizer.apply_chat_template(
                messages,
                tools=tools,
                add_generation_prompt=add_generation_prompt,
                tokenize=False,
            )
        except Exception as exc:  # jinja2 errors, raise_exception() in templates
            raise RequestError(f"the chat template failed on these messages: {exc}") from exc
        return str(text)

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of template texts, no special tokens added (as vLLM tokenizes chat prompts).

        One batch call: the Rust tokenizer encodes the texts in parallel, and tokenizing long
        conversations is most of the gateway's own time.
        """
        batch = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [list(ids) for ids in batch]

    def render(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        *,
        add_generation_prompt: bool,
    ) -> list[int]:
        """Token ids of the templated conversation."""
        text = self.template(messages, tools, add_generation_prompt=add_generation_prompt)
        return self.encode([text])[0]

    def decode(self, ids: list[int]) -> str:
        """Text of sampled ids with special tokens kept (tool-call tags may be special tokens)."""
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))

    def tokens(self, ids: list[int]) -> list[str]:
        return [str(t) for t in self.tokenizer.convert_ids_to_tokens(ids)]

    def response_text(self, ids: list[int]) -> str:
        """Decoded sampled ids without the trailing stop token (what the agent should see)."""
        if ids and ids[-1] in self.stop_ids:
            ids = ids[:-1]
        return self.decode(ids)
