"""The claude-code scaffold: its options, and what works today."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from swerl.components import AgentSpec, ComponentOptions, Scaffold, TrialInfo

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig

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


#: Retries of a failed model call (``CLAUDE_CODE_MAX_RETRIES``). claude-code's default is 10
#: with exponential backoff (0.5 s doubling to 32 s): a trial whose policy server is gone spun
#: ~4 min before it ended. With 3 (LiteLLM also tries each attempt 3 times) it gives up after
#: ~20 s of failed calls, so a short hiccup is still ridden out (measured: README).
MAX_RETRIES = 3

#: Quiet and deterministic (notes/chain.md): no DNS or telemetry, no per-run random system block.
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_ATTRIBUTION_HEADER": "0",
    # claude-code refuses --dangerously-skip-permissions as root outside a declared sandbox.
    "IS_SANDBOX": "1",
}
#: The header the gateway keys sessions by; LiteLLM forwards it.
TRIAL_HEADER = "X-Swerl-Trial"


class ClaudeCode(Scaffold):
    name = "claude-code"
    summary = "claude-code (pinned npm release) in the sandbox, pointed at the swerl proxy"
    Options = ClaudeCodeOptions
    ready = frozenset({"run"})
    options: ClaudeCodeOptions

    def agent(self, config: SwerlConfig, trial: TrialInfo) -> AgentSpec:
        """claude-code headless, every model alias mapped to the policy, one session per trial."""
        o = self.options
        model = trial.served_name
        env = {
            "ANTHROPIC_BASE_URL": trial.model_url,
            "ANTHROPIC_API_KEY": trial.api_key,
            "ANTHROPIC_MODEL": model,
            "ANTHROPIC_SMALL_FAST_MODEL": model,
            "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
            "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
            "CLAUDE_CODE_SUBAGENT_MODEL": model,
            "ANTHROPIC_CUSTOM_HEADERS": f"{TRIAL_HEADER}: {trial.trial_id}",
            "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(o.max_output_tokens),
            "CLAUDE_CODE_MAX_RETRIES": str(MAX_RETRIES),
            "CLAUDE_CONFIG_DIR": "/logs/agent/sessions",
            **QUIET_ENV,
        }
        args = [
            "--model",
            model,
            "--session-id",
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"swerl:{trial.run_id}:{trial.trial_id}")),
            # claude-code needs at least 2 turns to reach a final answer.
            "--max-turns",
            str(max(trial.max_turns, 2)),
            "--tools",
            ",".join(o.tools),
        ]
        if o.bare:
            args.append("--bare")
        if o.system_prompt is not None:
            args += ["--system-prompt", o.system_prompt]
        return AgentSpec(
            import_path="swerl_scaffold_claude_code.harbor_agent:SwerlClaudeCode",
            model_name=f"anthropic/{model}",
            env=env,
            kwargs={"claude_args": args, "expected_version": o.version},
        )
