"""A Harbor agent that runs the pinned claude-code inside the sandbox with swerl's flags.

Harbor's own claude-code agent cannot pass ``--tools``, ``--bare``, ``--system-prompt`` or
``--session-id``, which swerl needs for short prompts and per-trial sessions, so this one runs
``claude -p`` itself. The binary is baked into the sandbox image (no install at trial time, no
network); ``setup`` only checks its version. claude-code's stream-json output lands in
``/logs/agent/claude-code.jsonl`` and its final ``result`` event is summarised in the context.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from harbor.agents.base import BaseAgent
from harbor.environments.base import BaseEnvironment
from harbor.models.agent.context import AgentContext

OUTPUT = "claude-code.jsonl"
STDERR = "claude-code.stderr"


class AgentSetupError(RuntimeError):
    """The sandbox image cannot run the pinned claude-code."""


class SwerlClaudeCode(BaseAgent):
    def __init__(
        self,
        logs_dir: Path,
        model_name: str | None = None,
        *,
        claude_args: list[str] | None = None,
        expected_version: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(logs_dir, model_name, **kwargs)
        self.claude_args = list(claude_args or [])
        self.expected_version = expected_version
        self.exit_code: int | None = None

    @staticmethod
    def name() -> str:
        return "swerl-claude-code"

    def version(self) -> str | None:
        return self.expected_version

    async def setup(self, environment: BaseEnvironment) -> None:
        res = await environment.exec(command="claude --version", timeout_sec=60)
        out = (res.stdout or "") + (res.stderr or "")
        if res.return_code != 0:
            raise AgentSetupError(
                f"`claude --version` failed in the sandbox image ({out.strip()[:200]}): the image "
                "must carry claude-code on PATH; rebuild it with `make setup`"
            )
        if self.expected_version and self.expected_version not in out:
            raise AgentSetupError(
                f"the sandbox image has claude-code {out.strip()[:80]!r}, not the pinned "
                f"{self.expected_version}; rebuild the image with `make setup`"
            )

    def command(self) -> str:
        logs = self.environment_logs_dir.as_posix()
        return (
            'printf "%s" "$SWERL_INSTRUCTION" | claude -p --output-format stream-json --verbose '
            f"--dangerously-skip-permissions {shlex.join(self.claude_args)} "
            f"> {logs}/{OUTPUT} 2> {logs}/{STDERR}"
        )

    async def run(
        self, instruction: str, environment: BaseEnvironment, context: AgentContext
    ) -> None:
        env = {**self.extra_env, "SWERL_INSTRUCTION": instruction}
        res = await environment.exec(command=self.command(), env=env)
        # The context stays empty here: Harbor fills it through populate_context_post_run only
        # if it is empty, once the logs are back on the host.
        self.exit_code = res.return_code

    def populate_context_post_run(self, context: AgentContext) -> None:
        """Harbor calls this once the agent's logs are back on the host."""
        summary = {"exit_code": self.exit_code, **summarize(self.logs_dir / OUTPUT)}
        context.metadata = {**(context.metadata or {}), "claude_code": summary}
        usage = summary.get("usage") or {}
        context.n_input_tokens = usage.get("input_tokens")
        context.n_output_tokens = usage.get("output_tokens")


def summarize(path: Path) -> dict[str, Any]:
    """The final ``result`` event of a stream-json transcript, and the number of events."""
    summary: dict[str, Any] = {"events": 0, "result": None}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return summary
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        summary["events"] += 1
        if isinstance(event, dict) and event.get("type") == "result":
            summary["result"] = {
                k: event.get(k) for k in ("subtype", "is_error", "num_turns", "duration_ms")
            }
            summary["usage"] = event.get("usage")
    return summary
