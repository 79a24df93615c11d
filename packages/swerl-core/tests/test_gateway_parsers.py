"""Tool-call parsing (hermes) and the parser registry: text in, OpenAI tool calls out."""

from __future__ import annotations

import json

import pytest

from swerl.errors import UserError
from swerl.gateway.parsers import get_parser, parse_hermes


def test_hermes_content_and_two_calls() -> None:
    text = (
        "I will look first.\n"
        '<tool_call>\n{"name": "Bash", "arguments": {"command": "ls -la"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "Read", "arguments": {"path": "a.py", "limit": 3}}\n</tool_call>'
    )
    parsed = parse_hermes(text)
    assert parsed.content == "I will look first."
    assert not parsed.malformed
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [
        ("Bash", {"command": "ls -la"}),
        ("Read", {"path": "a.py", "limit": 3}),
    ]
    oa = [c.to_openai() for c in parsed.tool_calls]
    assert [o["type"] for o in oa] == ["function", "function"]
    assert json.loads(oa[1]["function"]["arguments"]) == {"path": "a.py", "limit": 3}
    assert len({o["id"] for o in oa}) == 2 and all(o["id"].startswith("call_") for o in oa)


def test_hermes_only_a_call_has_no_content_and_string_arguments_are_read() -> None:
    parsed = parse_hermes('<tool_call>{"name": "Bash", "arguments": "{\\"command\\": \\"pwd\\"}"}')
    assert parsed.malformed  # unclosed tag
    parsed = parse_hermes(
        '<tool_call>{"name": "Bash", "arguments": "{\\"command\\": \\"pwd\\"}"}</tool_call>'
    )
    assert parsed.content is None
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("Bash", {"command": "pwd"})]


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "Bash", "arguments": {"command": "ls"\n</tool_call>',  # bad JSON
        '<tool_call>\n{"arguments": {"command": "ls"}}\n</tool_call>',  # no name
        '<tool_call>\n{"name": "Bash", "arguments": [1, 2]}\n</tool_call>',  # not an object
        'ok <tool_call>\n{"name": "Bash", "arguments": {}}\n',  # never closed
        'x </tool_call> <tool_call>{"name": "Bash", "arguments": {}}</tool_call>',  # stray close
    ],
)
def test_hermes_malformed_text_becomes_content(text: str) -> None:
    parsed = parse_hermes(text)
    assert parsed.malformed
    assert parsed.tool_calls == []
    assert parsed.content == text.strip()


def test_plain_text_is_content() -> None:
    parsed = parse_hermes("  The bug is fixed.\n")
    assert (parsed.content, parsed.tool_calls, parsed.malformed) == ("The bug is fixed.", [], False)
    assert parse_hermes("   ").content is None


def test_registry_names_the_known_parsers() -> None:
    assert get_parser("hermes") is parse_hermes
    assert get_parser("none")('<tool_call>{"name": "x"}</tool_call>').tool_calls == []
    with pytest.raises(UserError, match="Did you mean 'hermes'"):
        get_parser("hermess")
