"""The repository keeps its shape: a known top level, complete packages, no large files, no
paths of the machine it was written on.

Files are those git tracks plus untracked ones it does not ignore (so clutter is caught before
it is committed).
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

REQUIRED_TOP = {"noxfile.py", "Makefile", "packages", "repos", "configs", "tests", "docs"}
ALLOWED_TOP = REQUIRED_TOP | {
    "README.md",
    "pyproject.toml",
    "uv.lock",
    ".ci",
    "scripts",
    "tasks",
    "examples",
}
MAX_BYTES = 1_000_000
# Absolute paths under the home or work folders of a development machine. Written in pieces so
# that this file does not match itself.
MACHINE_PATH = re.compile(r"(?<![\w.~/-])/(?:" + "ro" + "ot|" + "wo" + r"rk)/")


@cache
def repo_files() -> tuple[str, ...]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    # Deleted-but-still-indexed files are not there to check.
    return tuple(p for p in out.decode().split("\0") if p and (ROOT / p).exists())


def packages() -> list[Path]:
    return sorted(p for p in (ROOT / "packages").iterdir() if p.is_dir())


def test_top_level_has_exactly_the_expected_entries() -> None:
    top = {path.split("/")[0] for path in repo_files()}
    missing = REQUIRED_TOP - top
    unexpected = {name for name in top - ALLOWED_TOP if not name.startswith(".")}
    assert not missing, f"missing at the top level: {sorted(missing)}"
    assert not unexpected, f"unexpected at the top level: {sorted(unexpected)}"


def test_there_are_packages() -> None:
    assert {p.name for p in packages()} >= {"swerl-core", "swerl-engine-local"}


@pytest.mark.parametrize("package", packages(), ids=lambda p: p.name)
def test_package_is_complete(package: Path) -> None:
    rel = package.relative_to(ROOT).as_posix()
    pyproject = package / "pyproject.toml"
    assert pyproject.is_file(), f"{rel} has no pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]

    entry_points = project.get("entry-points", {}).get("swerl", {})
    assert entry_points, f"{rel}/pyproject.toml has no entry point in the group `swerl`"
    for name, target in entry_points.items():
        module = target.split(":")[0].replace(".", "/")
        found = [p for p in (package / "src").glob(f"{module}*") if p.suffix == ".py" or p.is_dir()]
        assert found, f"{rel}: entry point {name} = {target} names no module under src/"

    assert (package / "README.md").is_file(), f"{rel} has no README.md"
    tests = [p for p in repo_files() if p.startswith(f"{rel}/tests/")]
    assert tests, f"{rel} has no tests/ folder with files in it"


def test_every_package_is_a_workspace_member() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    workspace = root["tool"]["uv"]["workspace"]
    members, exclude = workspace.get("members", []), workspace.get("exclude", [])
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = set(lock["manifest"]["members"])
    for package in packages():
        rel = package.relative_to(ROOT).as_posix()
        assert any(fnmatch.fnmatch(rel, m) for m in members), f"{rel} is not a workspace member"
        assert not any(fnmatch.fnmatch(rel, e) for e in exclude), f"{rel} is excluded"
        name = tomllib.loads((package / "pyproject.toml").read_text())["project"]["name"]
        assert name in locked, f"{name} is not in uv.lock; run `uv lock`"


def test_no_file_over_1_mb() -> None:
    big = {p: (ROOT / p).stat().st_size for p in repo_files()}
    big = {p: size for p, size in big.items() if size > MAX_BYTES}
    assert not big, f"files over 1 MB (keep data and models out of git): {big}"


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def test_no_machine_paths_in_text_files() -> None:
    found = []
    for rel in repo_files():
        if rel == "uv.lock":
            continue
        text = _text(ROOT / rel)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{rel}:{number}: {line.strip()[:120]}")
    assert not found, "machine paths in the repository:\n" + "\n".join(found)


def test_machine_path_pattern() -> None:
    home, work = "/" + "root/", "/" + "work/"
    for bad in (f"{home}.cache/x", f"see {work}main", f"path={work}a", f'"{home}x"'):
        assert MACHINE_PATH.search(bad), bad
    for fine in (f"runs/x{work}y", f"~{home}", "/rootfs/", "https://e.org/work/x"):
        assert not MACHINE_PATH.search(fine), fine
