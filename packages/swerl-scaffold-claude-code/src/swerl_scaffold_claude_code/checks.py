"""Preflight checks of the claude-code scaffold: quick, read-only, each with a fix.

They look at what `make setup` needs to fetch the pinned release (Node and npm), at a `claude`
already on PATH, and at option values that would silently do less than asked.
"""

from __future__ import annotations

import re
import shutil
from typing import TYPE_CHECKING

from swerl.errors import did_you_mean
from swerl.proc import run_command
from swerl_scaffold_claude_code.scaffold import PINNED_VERSION, ClaudeCodeOptions

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report

NPM_PACKAGE = "@anthropic-ai/claude-code"
MIN_NODE = 18
#: claude-code's built-in tool names (the strings `--tools` takes), as of the 2.1 releases.
KNOWN_TOOLS = frozenset(
    {
        "Agent", "AskUserQuestion", "Bash", "CronCreate", "CronDelete", "CronList", "Edit",
        "EnterPlanMode", "EnterWorktree", "ExitPlanMode", "ExitWorktree", "Glob", "Grep",
        "ListMcpResourcesTool", "LSP", "NotebookEdit", "Read", "ReadMcpResourceTool", "Skill",
        "TaskCreate", "TaskGet", "TaskList", "TaskOutput", "TaskStop", "TaskUpdate", "TodoWrite",
        "ToolSearch", "WebFetch", "WebSearch", "Write",
    }
)  # fmt: skip
#: Tools that need the internet, which a sandbox never has.
NEEDS_EGRESS = frozenset({"WebFetch", "WebSearch"})
TIMEOUT_S = 10.0


def _version_of(exe: str) -> tuple[str | None, str]:
    """(version text, error) from ``exe --version``."""
    rc, out, err, _ = run_command([exe, "--version"], TIMEOUT_S)
    if rc in (124, 127):
        return None, f"`{exe} --version` {err}"
    if rc != 0:
        last = (err or out).strip().splitlines()
        return None, f"`{exe} --version` exited {rc}: {last[-1] if last else 'no output'}"
    return out.strip(), ""


def _options(config: SwerlConfig, report: Report) -> ClaudeCodeOptions:
    opts = report.options("scaffold")
    if isinstance(opts, ClaudeCodeOptions):
        return opts
    return ClaudeCodeOptions.model_validate(config.scaffold.options)


def run_checks(config: SwerlConfig, report: Report) -> None:
    """Add the claude-code rows to ``report`` (only called when the scaffold is selected)."""
    opts = _options(config, report)
    check_pin(opts, report)
    check_node(opts, report)
    check_installed_claude(opts, report)
    check_output_tokens(opts, config, report)
    check_tools(opts, report)


def check_pin(opts: ClaudeCodeOptions, report: Report) -> None:
    name = "claude-code version"
    if opts.version == PINNED_VERSION:
        report.passed(name, f"{NPM_PACKAGE}@{opts.version} (the tested pin)")
        return
    report.warn(
        name,
        f"{NPM_PACKAGE}@{opts.version} is not the tested pin {PINNED_VERSION}: prompts, flags "
        "and the Node it needs may differ",
        f"keep scaffold.options.version: {PINNED_VERSION} unless you have tested {opts.version}",
    )


def check_node(opts: ClaudeCodeOptions, report: Report) -> None:
    """Node ≥ 18 and npm: `make setup` fetches the pinned release with npm."""
    why = f"`make setup` uses them to fetch {NPM_PACKAGE}@{opts.version}"
    fix = f"install Node.js ≥ {MIN_NODE} with npm (Debian 12 and later: apt-get install nodejs npm)"
    node = shutil.which("node")
    if node is None:
        report.warn("node", f"node is not on PATH; {why}", fix)
    else:
        text, error = _version_of(node)
        match = re.match(r"v?(\d+)\.", text or "")
        if match is None:
            report.warn("node", error or f"cannot read node's version from {text!r}", fix)
        elif int(match.group(1)) < MIN_NODE:
            report.warn("node", f"node {text} is older than {MIN_NODE}; {why}", fix)
        else:
            report.passed("node", f"node {text} at {node}")
    npm = shutil.which("npm")
    if npm is None:
        report.warn("npm", f"npm is not on PATH; {why}", "apt-get install npm")
    else:
        report.passed("npm", f"npm at {npm}")


def check_installed_claude(opts: ClaudeCodeOptions, report: Report) -> None:
    """A `claude` on PATH is not required; when there is one, say whether it is the pin."""
    name = "claude on PATH"
    claude = shutil.which("claude")
    if claude is None:
        report.skip(name, "no claude on PATH (not needed: the sandbox image carries the pin)")
        return
    fix = f"npm install -g {NPM_PACKAGE}@{opts.version}"
    text, error = _version_of(claude)
    if text is None:
        report.warn(name, f"{claude}: {error}", fix)
        return
    found = text.split()[0] if text.split() else ""
    if not found:
        report.warn(name, f"`{claude} --version` printed no version", fix)
    elif found == opts.version:
        report.passed(name, f"claude {found} at {claude} matches the pin")
    else:
        report.warn(
            name,
            f"claude {found} at {claude}, but the pin is {opts.version} (runs use the pin)",
            fix,
        )


def check_output_tokens(opts: ClaudeCodeOptions, config: SwerlConfig, report: Report) -> None:
    name = "claude-code max_output_tokens"
    limit = config.rollout.max_response_length
    if opts.max_output_tokens <= limit:
        report.passed(name, f"{opts.max_output_tokens} ≤ rollout.max_response_length {limit}")
        return
    report.warn(
        name,
        f"scaffold.options.max_output_tokens {opts.max_output_tokens} is larger than "
        f"rollout.max_response_length {limit}: the policy server caps each call at {limit}",
        f"set scaffold.options.max_output_tokens to at most {limit}",
    )


def check_tools(opts: ClaudeCodeOptions, report: Report) -> None:
    name = "claude-code tools"
    if not opts.tools:
        report.warn(
            name,
            "tools is empty: the agent can neither run commands nor edit files",
            "list at least Bash in scaffold.options.tools",
        )
        return
    unknown = [t for t in opts.tools if t not in KNOWN_TOOLS and not t.startswith("mcp__")]
    offline = [t for t in opts.tools if t in NEEDS_EGRESS]
    for tool in unknown:
        report.warn(
            name,
            f"{tool!r} is not a claude-code tool known to swerl.{did_you_mean(tool, KNOWN_TOOLS)}",
            "use claude-code's tool names in scaffold.options.tools, e.g. "
            "Bash, Read, Edit, Write, Glob, Grep",
        )
    if offline:
        report.warn(
            name,
            f"{', '.join(offline)} need the internet, and sandboxes have no egress",
            f"remove {', '.join(offline)} from scaffold.options.tools",
        )
    if not unknown and not offline:
        report.passed(name, ", ".join(opts.tools))
