"""repos/manifest.toml states the pins; the packages and the lock must agree with it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from swerl_engine_fsdp import checks, launch

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = tomllib.loads((ROOT / "repos/manifest.toml").read_text())


def requirements(package: str) -> list[str]:
    project = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return reqs


def pinned(package: str, dist: str) -> str:
    for req in requirements(package):
        m = re.fullmatch(rf"{re.escape(dist)}(\[[^\]]*\])?==([\w.]+)", req.replace(" ", ""))
        if m:
            return m.group(2)
    raise AssertionError(f"{package} does not pin {dist}")


def locked(dist: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions = {p["version"] for p in lock["package"] if p["name"] == dist}
    assert len(versions) == 1, f"uv.lock has {dist} {sorted(versions)}"
    return versions.pop()


@pytest.mark.parametrize(
    ("dist", "package"),
    [
        ("verl", "swerl-engine-fsdp"),
        ("vllm", "swerl-engine-fsdp"),
        ("litellm", "swerl-core"),
        ("harbor", "swerl-sandbox-docker"),
    ],
)
def test_python_pins_match_the_manifest(dist: str, package: str) -> None:
    assert pinned(package, dist) == MANIFEST[dist]["version"]
    assert locked(dist) == MANIFEST[dist]["version"]


def test_code_constants_match_the_manifest() -> None:
    assert MANIFEST["verl"]["version"] == launch.VERL_VERSION
    assert MANIFEST["vllm"]["version"] == checks.VLLM_VERSION
    assert Path(MANIFEST["verl"]["checkout"]) == launch.DEFAULT_CHECKOUT


def test_every_entry_says_where_it_comes_from() -> None:
    for name, entry in MANIFEST.items():
        assert entry["version"], name
        assert "pypi" in entry or "npm" in entry, name
        assert entry["git"].startswith("https://github.com/"), name


def test_default_checkout_is_git_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert any(line.strip().rstrip("/") == "repos/checkouts" for line in ignored)


def test_claude_code_pin_matches_the_manifest() -> None:
    scaffold = pytest.importorskip("swerl_scaffold_claude_code.scaffold")
    assert MANIFEST["claude-code"]["version"] == scaffold.PINNED_VERSION
