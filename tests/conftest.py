"""Shared fixtures of the repository-level tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from swerl.testing import need

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runs_dir() -> Iterator[Path]:
    """A short run.output_dir: a run's model socket (<run dir>/sock/model.sock) must fit the
    107 bytes of a Unix socket address, which pytest's deep tmp_path can exceed."""
    path = Path(tempfile.mkdtemp(prefix="swerl-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def uv() -> str:
    """The uv binary: on PATH, else the one `make setup` installs into .cache/tools."""
    for candidate in (shutil.which("uv"), str(ROOT / ".cache/tools/bin/uv")):
        if candidate and Path(candidate).exists():
            return candidate
    need(False, "no uv (run `make setup`)")
    raise AssertionError("unreachable")
