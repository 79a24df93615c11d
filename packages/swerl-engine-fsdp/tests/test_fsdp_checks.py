"""Preflight checks of the verl engines: versions from package metadata, never imports."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from swerl.config.schema import SwerlConfig
from swerl.preflight.report import Report, Status
from swerl_engine_fsdp import checks, plugin


def config(engine: str = "fsdp", gpus: int = 8) -> SwerlConfig:
    return SwerlConfig.model_validate(
        {
            "model": {"path": "m"},
            "tasks": {"path": "t"},
            "engine": {"name": engine},
            "trainer": {"n_gpus_per_node": gpus},
        }
    )


def fake_versions(monkeypatch: pytest.MonkeyPatch, **versions: str | None) -> None:
    monkeypatch.setattr(checks, "installed", lambda dist: versions.get(dist))


def status(report: Report, name: str) -> Status:
    (check,) = report.by_name(name)
    return check.status


def test_pinned_versions_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_versions(monkeypatch, verl="0.9.1", vllm="0.24.0")
    report = Report()
    plugin.swerl_preflight_checks(config(), report)
    assert status(report, "verl") is Status.PASS
    assert status(report, "vllm") is Status.PASS
    assert not report.failed


@pytest.mark.parametrize(
    ("versions", "name", "expected"),
    [
        ({"verl": "0.8.0", "vllm": "0.24.0"}, "verl", Status.FAIL),
        ({"verl": None, "vllm": "0.24.0"}, "verl", Status.FAIL),
        ({"verl": "0.9.1", "vllm": None}, "vllm", Status.FAIL),
        ({"verl": "0.9.1", "vllm": "0.17.2"}, "vllm", Status.FAIL),
        ({"verl": "0.9.1", "vllm": "0.25.1rc1"}, "vllm", Status.WARN),
    ],
)
def test_wrong_versions_are_reported_with_a_fix(
    monkeypatch: pytest.MonkeyPatch, versions: dict[str, str | None], name: str, expected: Status
) -> None:
    fake_versions(monkeypatch, **versions)
    report = Report()
    plugin.swerl_preflight_checks(config(), report)
    (check,) = report.by_name(name)
    assert check.status is expected
    assert check.fix


def test_checks_only_run_for_this_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_versions(monkeypatch)
    report = Report()
    plugin.swerl_preflight_checks(config(engine="local"), report)
    assert report.checks == []


def test_verl_engine_without_gpus_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_versions(monkeypatch, verl="0.9.1", vllm="0.24.0")
    report = Report()
    plugin.swerl_preflight_checks(config(gpus=0), report)
    (check,) = report.by_name("engine fsdp")
    assert check.status is Status.FAIL and "local" in check.fix


def test_use_new_verl_checks_the_checkout_not_the_wheel(tmp_path: Path) -> None:
    report = Report()
    env = {"USE_NEW_VERL": "1", "SWERL_VERL_PATH": str(tmp_path / "missing")}
    checks.check_verl(report, env)
    (check,) = report.by_name("verl checkout")
    assert check.status is Status.FAIL and "git clone" in check.fix
    (tmp_path / "ok/verl").mkdir(parents=True)
    (tmp_path / "ok/verl/__init__.py").write_text("")
    report = Report()
    checks.check_verl(report, {"USE_NEW_VERL": "1", "SWERL_VERL_PATH": str(tmp_path / "ok")})
    assert status(report, "verl checkout") is Status.PASS
    assert not report.by_name("verl")


def test_version_tuple() -> None:
    assert checks.version_tuple("0.24.0rc1") == (0, 24, 0)
    assert checks.version_tuple("0.22.0+cu130") == (0, 22, 0)
    assert checks.version_tuple("dev") == ()


def test_checks_do_not_import_verl_or_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("verl", "vllm"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    report = Report()
    plugin.swerl_preflight_checks(config(), report)
    assert "verl" not in sys.modules and "vllm" not in sys.modules
