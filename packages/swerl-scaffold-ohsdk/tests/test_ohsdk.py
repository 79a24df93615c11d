"""ohsdk options and the preflight checks of its prerequisites."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from swerl.config.load import ConfigError
from swerl.errors import NotYetAvailable
from swerl.preflight import Status
from swerl_scaffold_ohsdk import checks
from swerl_scaffold_ohsdk.component import SDK_VERSION, OHSDKOptions


def ohsdk(**options):
    return {"name": "ohsdk", "options": options}


def row(report, name):
    (found,) = [c for c in report.checks if c.name == name]
    return found


def script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# --- options ------------------------------------------------------------------------------------


def test_bad_options_name_their_key_path(load, cfg):
    text = cfg(scaffold=ohsdk(version=">=1.58", runtime_mount="opt/ohsdk", max_iterations=0))
    with pytest.raises(ConfigError) as info:
        load(text)
    issues = {i.path: i.message for i in info.value.issues}
    assert set(issues) == {
        "scaffold.options.version",
        "scaffold.options.runtime_mount",
        "scaffold.options.max_iterations",
    }
    assert "not an exact release" in issues["scaffold.options.version"]
    assert "must be an absolute path" in issues["scaffold.options.runtime_mount"]


@pytest.mark.parametrize("mount", ["/", "/opt/../etc", "relative"])
def test_mounts_that_would_escape_or_shadow_are_refused(mount):
    with pytest.raises(ValueError, match="absolute path below /"):
        OHSDKOptions(runtime_mount=mount)


def test_mount_path_is_normalised():
    assert OHSDKOptions(runtime_mount="/opt//swerl/ohsdk/").runtime_mount == "/opt/swerl/ohsdk"


@pytest.mark.parametrize("version", ["1.58.2", "1.59.0rc1", "1.58.2.post1"])
def test_exact_releases_are_accepted(version):
    assert OHSDKOptions(version=version).version == version


def test_running_is_not_available_yet(pm):
    with pytest.raises(NotYetAvailable, match=r"scaffold 'ohsdk' cannot run yet: .*not built yet"):
        pm.get("scaffold", "ohsdk").cls.require("run")


# --- preflight ----------------------------------------------------------------------------------


def test_checks_only_run_when_ohsdk_is_selected(check, cfg):
    assert [c for c in check(cfg()).checks if c.source == "ohsdk"] == []


def test_default_runtime_python_is_the_one_running_swerl(check, cfg):
    found = row(check(cfg(scaffold=ohsdk())), "ohsdk runtime python")
    assert found.status is Status.PASS
    shown = ".".join(map(str, sys.version_info[:3]))
    assert found.detail == f"{sys.executable} is Python {shown}"


def test_old_runtime_python_warns(check, cfg, tmp_path):
    old = script(tmp_path / "python3.11", "echo 3 11 7")
    found = row(check(cfg(scaffold=ohsdk(runtime_python=str(old)))), "ohsdk runtime python")
    assert found.status is Status.WARN
    assert found.detail == f"{old} is Python 3.11.7; openhands-sdk needs ≥ 3.12"
    assert "scaffold.options.runtime_python" in found.fix


def test_broken_interpreter_shim_warns_with_its_message(check, cfg, tmp_path, monkeypatch):
    # What a pyenv shim prints for a version that is installed but not selected.
    script(tmp_path / "python3.12", "echo 'pyenv: python3.12: command not found' >&2; exit 127")
    monkeypatch.setenv("PATH", str(tmp_path))
    found = row(check(cfg(scaffold=ohsdk(runtime_python="python3.12"))), "ohsdk runtime python")
    assert found.status is Status.WARN
    assert found.detail.endswith("failed: pyenv: python3.12: command not found")


def test_runtime_python_that_does_not_exist_warns(check, cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    found = row(check(cfg(scaffold=ohsdk(runtime_python="python3.99"))), "ohsdk runtime python")
    assert found.status is Status.WARN
    assert "'python3.99' is not an executable" in found.detail


@pytest.mark.parametrize(
    ("installed", "importable", "status", "detail"),
    [
        (None, False, Status.WARN, "openhands-sdk is not installed in this environment"),
        (
            "1.40.0",
            True,
            Status.WARN,
            f"openhands-sdk 1.40.0 is installed; the pin is {SDK_VERSION}",
        ),
        (SDK_VERSION, False, Status.WARN, "but `openhands` does not resolve"),
        (SDK_VERSION, True, Status.PASS, f"openhands-sdk {SDK_VERSION}"),
    ],
)
def test_sdk_is_found_by_metadata_and_spec(
    check, cfg, monkeypatch, installed, importable, status, detail
):
    monkeypatch.setattr(checks, "_dist_version", lambda name: installed)
    monkeypatch.setattr(checks, "_importable", lambda module: importable)
    found = row(check(cfg(scaffold=ohsdk())), "openhands-sdk")
    assert found.status is status
    assert detail in found.detail
    if status is Status.WARN:
        want = f"pip install openhands-sdk=={SDK_VERSION} openhands-tools=={SDK_VERSION}"
        assert found.fix == want


def test_sdk_lookup_imports_nothing(check, cfg):
    before = set(sys.modules)
    check(cfg(scaffold=ohsdk()))
    assert not {m for m in set(sys.modules) - before if m.startswith("openhands")}


def test_iterations_above_max_turns_warn(check, cfg):
    text = cfg(scaffold=ohsdk(max_iterations=80), rollout={"max_turns": 50})
    found = row(check(text), "ohsdk max_iterations")
    assert found.status is Status.WARN
    assert "80 is more than rollout.max_turns 50" in found.detail
    found = row(check(cfg(scaffold=ohsdk(), rollout={"max_turns": 50})), "ohsdk max_iterations")
    assert (found.status, found.detail) == (Status.PASS, "50 (rollout.max_turns 50)")


@pytest.mark.parametrize(
    ("tools", "expected"),
    [([], "neither run commands nor edit files"), (["terminal", "browser_tool_set"], "egress")],
)
def test_tools_that_cannot_work_warn(check, cfg, tools, expected):
    found = row(check(cfg(scaffold=ohsdk(tools=tools))), "ohsdk tools")
    assert found.status is Status.WARN
    assert expected in found.detail
