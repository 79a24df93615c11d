"""Developer sessions: ``.venv/bin/nox -l`` lists them, ``make <name>`` runs most of them.

Every session runs in the workspace environment that ``make setup`` (scripts/bootstrap.sh)
builds from ``uv.lock``: nox creates no virtualenvs of its own, so what is tested is exactly what
is locked. Arguments after ``--`` pass through to the tool.
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).parent
BIN = ROOT / ".venv" / "bin"

nox.needs_version = ">=2024.10"
nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests", "lint"]


def tool(session: nox.Session, name: str) -> str:
    """Path of a console script in the workspace venv, or a clear error if it was never set up."""
    path = BIN / name
    if not path.exists():
        session.error(f"{path} is missing: run `make setup` (scripts/bootstrap.sh) first")
    return str(path)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run pytest over tests/ and packages/*/tests (gpu and k8s tests are deselected)."""
    session.env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    session.run(tool(session, "pytest"), *session.posargs, external=True)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the repository (or the paths given)."""
    paths = session.posargs or ["."]
    ruff = tool(session, "ruff")
    session.run(ruff, "check", *paths, external=True)
    session.run(ruff, "format", "--check", *paths, external=True)


@nox.session(venv_backend="none")
def typecheck(session: nox.Session) -> None:
    """mypy over every package's src/ (settings in pyproject.toml)."""
    paths = session.posargs or sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("packages/*/src"))
    session.run(tool(session, "mypy"), *paths, external=True)


@nox.session(venv_backend="none", default=False)
def docs(session: nox.Session) -> None:
    """Regenerate docs/reference and the generated blocks, check the docs, render HTML to site/.

    Any finding fails the session: a broken link or anchor, a page missing from the navigation,
    an unclosed code fence, a link leaving docs/. ``nox -s docs -- --check --site site`` writes
    no page and also fails when a generated page is stale, as tests/test_docs.py does in CI.
    """
    python = tool(session, "python")
    args = session.posargs or ["--site", str(ROOT / "site")]
    session.run(python, "-m", "swerl.docgen", "--docs", str(ROOT / "docs"), *args, external=True)


@nox.session(venv_backend="none", default=False)
def bench(session: nox.Session) -> None:
    """Benchmark the real CPU stack: the gateway's added latency per call against calling vLLM
    directly (p50/p99, interleaved in one run) and trial throughput at concurrency 1, 2 and 4.

    Not a test (no speed thresholds): it prints tables and writes runs/bench-<time>.json. Needs
    `make setup` (policy env, model, docker, image); ~15 minutes on 2 CPUs. Options after
    ``--``, e.g. ``nox -s bench -- --oracle --levels 1,2,4 -n 2`` (``-- --help`` lists them).
    """
    session.env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    script = str(ROOT / "tests" / "bench" / "bench.py")
    session.run(tool(session, "python"), script, *session.posargs, external=True)


@nox.session(venv_backend="none", default=False)
def smoke(session: nox.Session) -> None:
    """The smoke batch: set up what is missing, then train configs/smoke_cpu.yaml on the real CPU
    stack (scripts/start.sh). ``nox -s smoke -- --config other.yaml`` trains another config.
    """
    args = session.posargs or ["--config", str(ROOT / "configs" / "smoke_cpu.yaml")]
    session.run(str(ROOT / "scripts" / "start.sh"), *args, external=True)


@nox.session(venv_backend="none", default=False)
def learn(session: nox.Session) -> None:
    """The learning curve on CPU: train configs/learn_cpu.yaml on the real stack (claude-code,
    Docker, LiteLLM, the gateway, vLLM CPU, the local engine), write its report (PNG plots and an
    HTML page), print the reward per step, then evaluate the starting model and the last
    checkpoint on every task 8 times (swerl eval). About 2 h 40 min on 2 CPUs (141 minutes of
    training, two evaluations of about 7), plus about 20 for the weak start on a fresh machine;
    not in CI.
    """
    config = session.posargs[0] if session.posargs else str(ROOT / "configs" / "learn_cpu.yaml")
    bootstrap = str(ROOT / "scripts" / "bootstrap.sh")
    # learn_cpu.yaml starts from models/tiny-qwen2-weak, which `make setup` does not build.
    session.run(bootstrap, external=True)
    session.run(bootstrap, "weak-model", external=True)
    session.run(str(ROOT / "scripts" / "start.sh"), "--config", config, external=True)
    python = tool(session, "python")
    curve = str(ROOT / "scripts" / "learning_curve.py")
    session.run(python, curve, config, "--eval", "8", external=True)
