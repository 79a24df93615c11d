"""The claude-code scaffold: its options, and what works today."""

from __future__ import annotations

from pydantic import Field

from swerl.components import ComponentOptions, Scaffold

#: Node 20 here, so this is the newest release that installs (see docs/development.md).
PINNED_VERSION = "2.1.197"


class ClaudeCodeOptions(ComponentOptions):
    """Options of the claude-code scaffold (`scaffold.options`)."""

    version: str = Field(PINNED_VERSION, description="npm version of @anthropic-ai/claude-code.")
    max_output_tokens: int = Field(
        8192, ge=1, description="CLAUDE_CODE_MAX_OUTPUT_TOKENS: cap per model call."
    )
    tools: list[str] = Field(
        default_factory=lambda: ["Bash", "Read", "Edit", "Write"],
        description="Tools offered to the model (`--tools`; fewer tools, shorter prompts).",
    )
    system_prompt: str | None = Field(
        None, description="Replace claude-code's system prompt (`--system-prompt`); null keeps it."
    )
    bare: bool = Field(False, description="Pass `--bare` (no CLAUDE.md, hooks or MCP).")


class ClaudeCode(Scaffold):
    name = "claude-code"
    summary = "claude-code (pinned npm release) in the sandbox, pointed at the swerl proxy"
    Options = ClaudeCodeOptions
    ready = frozenset()
    pending = "running claude-code in a sandbox arrives with the rollouts issue (#3)"
