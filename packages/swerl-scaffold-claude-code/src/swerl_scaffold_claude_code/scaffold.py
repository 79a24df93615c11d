"""The claude-code scaffold: its options, and what works today."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from swerl.components import ComponentOptions, Scaffold

#: Node 20 here, so this is the newest release that installs (see docs/development.md).
PINNED_VERSION = "2.1.197"

#: Semantic Versioning 2.0.0 (the regex from semver.org): npm versions are semver.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


class ClaudeCodeOptions(ComponentOptions):
    """Options of the claude-code scaffold (`scaffold.options`)."""

    version: str = Field(
        PINNED_VERSION,
        description="Exact npm version of @anthropic-ai/claude-code baked into the sandbox image "
        "(semver; tags such as `latest` are refused: runs must be reproducible).",
    )
    max_output_tokens: int = Field(
        8192,
        ge=1,
        description="`CLAUDE_CODE_MAX_OUTPUT_TOKENS`: most tokens per model call (claude-code's "
        "own default is 64000); keep it ≤ `rollout.max_response_length`.",
    )
    tools: list[str] = Field(
        default_factory=lambda: ["Bash", "Read", "Edit", "Write"],
        description="Tools offered to the model (`--tools`); fewer tools, shorter prompts "
        "(24 tools ≈ 28k prompt tokens, `Bash` alone ≈ 3k).",
    )
    system_prompt: str | None = Field(
        None, description="Replace claude-code's system prompt (`--system-prompt`); null keeps it."
    )
    bare: bool = Field(
        False, description="Pass `--bare` (no CLAUDE.md, hooks or MCP; short tool descriptions)."
    )

    @field_validator("version")
    @classmethod
    def exact_semver(cls, value: str) -> str:
        if not SEMVER.match(value):
            raise ValueError(
                f"{value!r} is not an exact semver version; pin a release such as "
                f"{PINNED_VERSION!r} (npm tags like 'latest' change under a run)"
            )
        return value


class ClaudeCode(Scaffold):
    name = "claude-code"
    summary = "claude-code (pinned npm release) in the sandbox, pointed at the swerl proxy"
    Options = ClaudeCodeOptions
    ready = frozenset[str]()
    pending = "running claude-code in a sandbox arrives with the rollouts issue (#3)"
