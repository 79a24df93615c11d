"""Preflight checks of the ohsdk scaffold: the prerequisites of its mounted runtime.

The scaffold itself is not built yet (the core reports that); these rows say whether the pieces
it will need are in place: a Python ≥ 3.12 to build the runtime and openhands-sdk at the pin.
Nothing is imported: the SDK is looked up by metadata and module spec only.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import shutil
import sys
from typing import TYPE_CHECKING

from swerl.proc import TIMED_OUT, run_command
from swerl_scaffold_ohsdk.component import MIN_PYTHON, OHSDKOptions

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report

TIMEOUT_S = 10.0
WANT = ".".join(map(str, MIN_PYTHON))


def _options(config: SwerlConfig, report: Report) -> OHSDKOptions:
    opts = report.options("scaffold")
    if isinstance(opts, OHSDKOptions):
        return opts
    return OHSDKOptions.model_validate(config.scaffold.options)


def run_checks(config: SwerlConfig, report: Report) -> None:
    """Add the ohsdk rows to ``report`` (only called when the scaffold is selected)."""
    opts = _options(config, report)
    check_runtime_python(opts, report)
    check_sdk(opts, report)
    check_iterations(opts, config, report)
    check_tools(opts, report)


def _python_version(exe: str) -> tuple[tuple[int, ...] | None, str]:
    """(version, error) of an interpreter; it runs in its own process group, with a timeout."""
    rc, out, err, started = run_command(
        [exe, "-c", "import sys; print(*sys.version_info[:3])"], TIMEOUT_S
    )
    if not started:
        return None, f"cannot start {exe}: {err}"
    if rc == TIMED_OUT:
        return None, f"{exe} did not answer within {TIMEOUT_S:g} s"
    parts = out.split()
    if rc != 0 or len(parts) != 3 or not all(p.isdigit() for p in parts):
        last = err.strip().splitlines()
        return None, f"{exe} failed: {last[-1] if last else f'exit {rc}'}"
    return tuple(int(p) for p in parts), ""


def check_runtime_python(opts: OHSDKOptions, report: Report) -> None:
    name = "ohsdk runtime python"
    fix = f"install Python ≥ {WANT} and set scaffold.options.runtime_python to it"
    if opts.runtime_python is None:
        exe: str | None = sys.executable
    elif os.sep in opts.runtime_python:
        exe = opts.runtime_python if os.access(opts.runtime_python, os.X_OK) else None
    else:
        exe = shutil.which(opts.runtime_python)
    if exe is None:
        report.warn(name, f"runtime_python {opts.runtime_python!r} is not an executable", fix)
        return
    version, error = _python_version(exe)
    if version is None:
        report.warn(name, error, fix)
    elif version[:2] < MIN_PYTHON:
        shown = ".".join(map(str, version))
        report.warn(name, f"{exe} is Python {shown}; openhands-sdk needs ≥ {WANT}", fix)
    else:
        report.passed(name, f"{exe} is Python {'.'.join(map(str, version))}")


def _dist_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    """Whether ``module`` resolves in this environment (its spec only; nothing runs)."""
    return importlib.util.find_spec(module) is not None


def check_sdk(opts: OHSDKOptions, report: Report) -> None:
    name = "openhands-sdk"
    install = f"pip install openhands-sdk=={opts.version} openhands-tools=={opts.version}"
    version = _dist_version("openhands-sdk")
    if version is None:
        report.warn(name, "openhands-sdk is not installed in this environment", install)
    elif not _importable("openhands"):
        broken = f"openhands-sdk {version} is installed but `openhands` does not resolve"
        report.warn(name, broken, install)
    elif version != opts.version:
        report.warn(
            name, f"openhands-sdk {version} is installed; the pin is {opts.version}", install
        )
    else:
        report.passed(name, f"openhands-sdk {version}")


def check_iterations(opts: OHSDKOptions, config: SwerlConfig, report: Report) -> None:
    name = "ohsdk max_iterations"
    turns = config.rollout.max_turns
    if opts.max_iterations is None or opts.max_iterations <= turns:
        report.passed(name, f"{opts.max_iterations or turns} (rollout.max_turns {turns})")
        return
    report.warn(
        name,
        f"scaffold.options.max_iterations {opts.max_iterations} is more than rollout.max_turns "
        f"{turns}, which stops each trial first",
        f"set scaffold.options.max_iterations to at most {turns}, or leave it null",
    )


def check_tools(opts: OHSDKOptions, report: Report) -> None:
    name = "ohsdk tools"
    if not opts.tools:
        report.warn(
            name,
            "tools is empty: the agent can neither run commands nor edit files",
            "list at least terminal and file_editor in scaffold.options.tools",
        )
    elif any(t.startswith("browser") for t in opts.tools):
        report.warn(
            name,
            "browser tools need the internet, and sandboxes have no egress",
            "remove the browser tools from scaffold.options.tools",
        )
    else:
        report.passed(name, ", ".join(opts.tools))
