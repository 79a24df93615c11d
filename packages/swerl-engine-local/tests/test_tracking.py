"""wandb sink: offline without credentials, into the run folder, under the run id."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from swerl_engine_local.tracking import open_sinks


def config(enabled: bool) -> SimpleNamespace:
    wandb = SimpleNamespace(enabled=enabled, project="swerl-test", entity=None)
    return SimpleNamespace(logging=SimpleNamespace(wandb=wandb))


def test_disabled_opens_nothing(tmp_path: Path) -> None:
    assert open_sinks(tmp_path, config(False), {}) == []


def test_offline_without_a_key_logs_every_step_into_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WANDB_API_KEY", "WANDB_MODE", "NETRC", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc
    run_dir = tmp_path / "learn-20261123-010203"
    run_dir.mkdir()
    (sink,) = open_sinks(run_dir, config(True), {"algorithm": {"lr": 0.001}})
    assert sink.mode == "offline"
    for step in range(3):
        sink.log(step, {"reward/mean": 0.25 * step, "rollout_corr/kl": 1e-9})
    sink.close()
    (record,) = run_dir.glob(f"wandb/offline-run-*-{run_dir.name}/run-{run_dir.name}.wandb")
    data = record.read_bytes()
    assert b"reward/mean" in data and b"rollout_corr/kl" in data
    assert b"0.5" in data  # the last step's value (0.25 * 2)
