"""`swerl report`: PNG plots and index.html from a run's metrics.jsonl."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swerl.cli import app
from swerl.errors import UserError
from swerl.report import GROUPS, fmt, write_report
from swerl.runstate import METRICS, append_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CONFIG = """\
mode: sync
run: {name: demo, output_dir: runs}
model: {path: models/tiny-qwen2-sft}
algorithm: {name: grpo, n_resp: 4, train_batch_size: 8, lr: 1.0e-06, total_steps: 12}
"""
STEPS = 12


def reward_at(step: int) -> float:
    return 0.1 + 0.7 * step / STEPS


def full_metrics(step: int) -> dict[str, float]:
    return {
        "reward/mean": reward_at(step),
        "reward/std": 0.15,
        "reward/pass_rate": min(1.0, reward_at(step) + 0.05),
        "rollout_corr/kl": 3e-4 + 1e-5 * step,
        "actor/loss": -0.05 + 0.001 * step,
        "actor/pg_clipfrac": 0.002 * step,
        "tokens/sampled": 4000 + 50 * step,
        "time/rollout_s": 30.0 + step,
        "time/train_s": 10.0,
        "time/sync_s": 1.5,
        "time/step_s": 41.5 + step,
        "failures/timeout": step % 3,
        "failures/sandbox_died": int(step == 5),
        "exactness": 1.0,
    }


def make_run(root: Path, name: str, metrics: list[dict[str, float]]) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(CONFIG)
    for step, m in enumerate(metrics, start=1):
        append_metrics(run_dir, step, m)
    return run_dir


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 12-step run with every metric group, plus a torn last line; reported once."""
    run_dir = make_run(
        tmp_path_factory.mktemp("runs"),
        "demo-20260101-000000",
        [full_metrics(s) for s in range(1, STEPS + 1)],
    )
    with open(run_dir / METRICS, "a") as f:
        f.write('{"step": 13, "reward/mean": 99.5, "rew')  # killed mid-write
    report = write_report(run_dir)
    return run_dir, report.page


def test_every_group_with_data_gets_a_valid_png(full: tuple[Path, Path]) -> None:
    run_dir, page = full
    assert page == run_dir / "report" / "index.html"
    for group in GROUPS:
        png = run_dir / "report" / f"{group.name}.png"
        assert png.is_file(), group.name
        data = png.read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_SIGNATURE), group.name
    # No temp file is left behind.
    assert sorted(p.name for p in (run_dir / "report").iterdir() if p.name.startswith(".")) == []


def test_reward_figure_has_sane_dimensions(full: tuple[Path, Path]) -> None:
    import matplotlib.image

    run_dir, _ = full
    img = matplotlib.image.imread(run_dir / "report" / "reward.png")
    height, width = img.shape[:2]
    assert 400 <= width <= 2000 and 300 <= height <= 2000
    assert 0.8 <= width / height <= 3
    assert img.std() > 0.01  # something is drawn, not a blank canvas


def test_page_references_every_png_and_shows_run_and_last_step(full: tuple[Path, Path]) -> None:
    run_dir, page = full
    text = page.read_text()
    pngs = sorted(p.name for p in (run_dir / "report").glob("*.png"))
    assert sorted(set(re.findall(r'src="([^"]+)"', text))) == pngs
    assert "demo-20260101-000000" in text
    last = full_metrics(STEPS)
    assert fmt(last["reward/mean"]) in text and "reward/mean" in text
    assert f"Last step ({STEPS})" in text
    assert "99.5" not in text  # the torn line was ignored
    for value in ("models/tiny-qwen2-sft", "grpo", "1e-06", ">8<", ">4<"):
        assert value in text, value
    # Self-contained: inline CSS, no scripts or remote resources.
    assert "<style>" in text and "<script" not in text and "http" not in text


def test_groups_without_data_are_absent(tmp_path: Path) -> None:
    run_dir = make_run(
        tmp_path,
        "only-reward",
        [{"reward/mean": reward_at(s), "reward/pass_rate": 0.5} for s in range(1, 5)],
    )
    out = tmp_path / "out"
    # A stale picture from an earlier report of a group that now has no data goes away.
    out.mkdir()
    (out / "time.png").write_bytes(PNG_SIGNATURE)
    report = write_report(run_dir, out)
    assert [p.name for p in report.images] == ["reward.png"]
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "reward.png"]
    text = report.page.read_text()
    assert 'src="reward.png"' in text
    for group in ("rollout_corr", "actor", "time", "tokens", "failures", "other"):
        assert f"{group}.png" not in text
        assert group in report.skipped


def test_missing_or_empty_metrics_is_a_clear_error(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "no-steps", [])
    with pytest.raises(UserError, match=re.escape(str(run_dir / METRICS))):
        write_report(run_dir)
    (run_dir / METRICS).write_text("")
    with pytest.raises(UserError, match=re.escape(f"{run_dir / METRICS} is empty")):
        write_report(run_dir)
    (run_dir / METRICS).write_text('{"step": 1, "reward/me')  # only a torn line
    with pytest.raises(UserError, match=re.escape(f"{run_dir / METRICS} is empty")):
        write_report(run_dir)
    assert not (run_dir / "report" / "index.html").exists()


def test_cli_prints_the_page_path(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "small", [{"reward/mean": reward_at(s)} for s in range(1, 4)])
    out = tmp_path / "elsewhere"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out / "index.html")
    assert (out / "reward.png").is_file()


def test_cli_names_the_missing_file(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "fresh", [])
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert isinstance(result.exception, UserError)
    assert str(run_dir / METRICS) in str(result.exception)


def test_matplotlib_is_not_imported_by_the_cli_or_the_module() -> None:
    code = (
        "import sys, swerl.cli, swerl.report; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('matplotlib'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == []
