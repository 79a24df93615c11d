"""Plugin packages install on their own (with swerl-core, nothing else of the workspace) and
register through the entry-point group: `swerl plugins` in that environment lists them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("package", "component"),
    [("swerl-filter-trajectory", "trajectory"), ("swerl-is-token", "is-token")],
)
def test_a_filter_package_installs_alone(
    tmp_path: Path, uv: str, package: str, component: str
) -> None:
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    # The interpreter behind the workspace venv: a Python 3.12 outside any project.
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    subprocess.run([uv, "venv", "-q", "--python", str(base), str(venv)], check=True, env=env)
    python = str(venv / "bin" / "python")
    done = subprocess.run(
        [uv, "pip", "install", "-q", "--python", python,
         str(ROOT / "packages/swerl-core"), str(ROOT / "packages" / package)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = subprocess.run(
        [str(venv / "bin" / "swerl"), "plugins", "--json"],
        env={**env, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    text = json.dumps(data)
    assert f'"{component}"' in text
    # Only swerl-core and this package are installed: no other workspace plugin is there.
    for other in ("claude-code", "docker", "fsdp", "local"):
        assert f'"{other}"' not in text, other
