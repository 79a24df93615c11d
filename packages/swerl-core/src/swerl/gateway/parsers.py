"""Sampled text → OpenAI ``content`` + ``tool_calls``, per model family, in a registry by name.

The gateway answers OpenAI chat, so the model's tool-call syntax must become ``tool_calls``. A
parser only reads the decoded text; the sampled ids are kept as they are whatever it finds. Text
that looks like a tool call but does not parse is returned as plain content and counted: the
agent then sees what the model wrote, and the trial goes on.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }


@dataclass
class Parsed:
    """What the model said: ``content`` (``None`` when empty), tool calls, and whether text that
    looked like a tool call had to be passed through as content."""

    content: str | None
    tool_calls: list[ToolCall]
    malformed: bool = False


Parser = Callable[[str], Parsed]
PARSERS: dict[str, Parser] = {}


def register(name: str) -> Callable[[Parser], Parser]:
    def deco(fn: Parser) -> Parser:
        PARSERS[name] = fn
        return fn

    return deco


def get_parser(name: str) -> Parser:
    from swerl.errors import UserError, did_you_mean

    try:
        return PARSERS[name]
    except KeyError:
        raise UserError(
            f"unknown tool-call parser {name!r}; known: {', '.join(sorted(PARSERS))}."
            + did_you_mean(name, PARSERS)
        ) from None


_HERMES = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


@register("hermes")
def parse_hermes(text: str) -> Parsed:
    """``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (Qwen2.5/3, Hermes).

    Text outside the blocks is the content. An unclosed tag, JSON that does not parse, or an
    object without a string ``name`` makes the whole text plain content (``malformed``).
    """
    if "<tool_call>" not in text and "</tool_call>" not in text:
        return Parsed(text.strip() or None, [])
    calls = []
    for block in _HERMES.findall(text):
        try:
            obj = json.loads(block)
        except ValueError:
            return Parsed(text.strip() or None, [], malformed=True)
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return Parsed(text.strip() or None, [], malformed=True)
        args = obj.get("arguments", {})
        if isinstance(args, str):  # some models write the arguments as a JSON string
            try:
                args = json.loads(args)
            except ValueError:
                return Parsed(text.strip() or None, [], malformed=True)
        if not isinstance(args, dict):
            return Parsed(text.strip() or None, [], malformed=True)
        calls.append(ToolCall(obj["name"], args))
    rest = _HERMES.sub("", text)
    if not calls or "<tool_call>" in rest or "</tool_call>" in rest:
        return Parsed(text.strip() or None, [], malformed=True)
    return Parsed(rest.strip() or None, calls)


@register("none")
def parse_none(text: str) -> Parsed:
    """No tool calls: everything the model says is content."""
    return Parsed(text.strip() or None, [])
