"""A scripted claude-code-like conversation for the latency benchmark.

The shape of what claude-code sends through LiteLLM, scaled to the tiny CPU model's context: a
system prompt, claude-code's tool set (Bash, Read, Edit, Write, Glob, Grep with their JSON
schemas, descriptions shortened), the task as the first user message, then one observation per
turn. The assistant turns are the ones the gateway really returned (so that the gateway stitches
every call onto the last, as in a real trial); a reply with tool calls is answered with one tool
message per call, a reply without with a user message, as claude-code does. The observations
cycle through a fixed list, so the same run is the same conversation.
"""

from __future__ import annotations

from typing import Any

SYSTEM = (
    "You are Claude Code, an interactive CLI tool that helps users with software engineering "
    "tasks. Use the tools available to you to assist the user. Be concise. When you fix a bug, "
    "read the relevant code first, make the smallest change that fixes it, then run the tests. "
    "Never guess file contents: read them. Working directory: /app. Platform: linux."
)

TASK = (
    "The function `add` in calc.py returns the wrong result for negative numbers. Fix the bug "
    "so that the tests in tests/test_calc.py pass. Do not change the tests."
)


def _tool(name: str, description: str, props: dict[str, Any], required: list[str]) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
                "$schema": "http://json-schema.org/draft-07/schema#",
            },
        },
    }


def _s(description: str) -> dict[str, str]:
    return {"type": "string", "description": description}


TOOLS = [
    _tool(
        "Bash",
        "Executes a bash command in a persistent shell session with an optional timeout.",
        {
            "command": _s("The command to execute"),
            "timeout": {"type": "number", "description": "Optional timeout in milliseconds"},
            "description": _s("Clear, concise description of what this command does"),
        },
        ["command"],
    ),
    _tool(
        "Read",
        "Reads a file from the local filesystem. Results are returned with line numbers.",
        {
            "file_path": _s("The absolute path to the file to read"),
            "offset": {"type": "number", "description": "The line number to start reading from"},
            "limit": {"type": "number", "description": "The number of lines to read"},
        },
        ["file_path"],
    ),
    _tool(
        "Edit",
        "Performs exact string replacements in files. Read the file before editing it.",
        {
            "file_path": _s("The absolute path to the file to modify"),
            "old_string": _s("The text to replace"),
            "new_string": _s("The text to replace it with"),
            "replace_all": {"type": "boolean", "default": False},
        },
        ["file_path", "old_string", "new_string"],
    ),
    _tool(
        "Write",
        "Writes a file to the local filesystem, overwriting it if it exists.",
        {"file_path": _s("The absolute path to the file"), "content": _s("The content")},
        ["file_path", "content"],
    ),
    _tool(
        "Glob",
        "Fast file pattern matching; returns matching paths sorted by modification time.",
        {"pattern": _s("The glob pattern"), "path": _s("The directory to search in")},
        ["pattern"],
    ),
    _tool(
        "Grep",
        "Searches file contents with ripgrep; supports full regex syntax.",
        {
            "pattern": _s("The regular expression to search for"),
            "path": _s("File or directory to search in"),
            "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]},
        },
        ["pattern"],
    ),
]

#: Tool outputs, as claude-code would relay them; cycled through turn after turn.
OBSERVATIONS = [
    "calc.py\nREADME.md\ntests/\ntests/test_calc.py",
    "     1\tdef add(a, b):\n     2\t    if a < 0:\n     3\t        return b - a\n"
    "     4\t    return a + b",
    "============ 1 failed, 2 passed in 0.03s ============\nFAILED tests/test_calc.py::"
    "test_negative - assert 3 == -1",
    "The file /app/calc.py has been updated. Here's the result of running `cat -n` on a "
    "snippet of the edited file:\n     2\t    return a + b",
    "============ 3 passed in 0.02s ============",
    "diff --git a/calc.py b/calc.py\n-    if a < 0:\n-        return b - a\n+    return a + b",
]


def start() -> list[dict[str, Any]]:
    """The messages of a conversation's first call."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TASK}]


def follow(
    messages: list[dict[str, Any]], reply: dict[str, Any], step: int
) -> list[dict[str, Any]]:
    """The next call's messages: these, the assistant ``reply`` as returned, an observation."""
    assistant = {"role": "assistant", "content": reply.get("content") or ""}
    calls = reply.get("tool_calls") or []
    if calls:
        assistant["tool_calls"] = calls
    out = [*messages, assistant]
    obs = OBSERVATIONS[step % len(OBSERVATIONS)]
    if calls:
        out += [{"role": "tool", "tool_call_id": c.get("id"), "content": obs} for c in calls]
    else:
        out.append({"role": "user", "content": obs})
    return out
