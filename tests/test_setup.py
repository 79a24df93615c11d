"""`make setup` (scripts/bootstrap.sh and scripts/setup/*.sh) builds what a CPU run needs, once.

Three layers:

* fast tests run the step scripts in a scratch copy of the repository with stand-in tools
  (``uv``, ``npm``) on PATH, and check the idempotence logic itself: work once, skip after,
  ``--check`` reports without touching anything;
* on a machine that ran ``make setup``: ``--check`` lists nothing and a second full run only
  skips; the ``docker`` tests look inside the real sandbox image and a compose container;
* the ``e2e`` test starts the real vLLM CPU policy server from ``.venv-policy`` on the tiny model
  and checks that token ids and logprobs come back.

Where setup was not run, those tests skip and say what is missing. CI sets
``SWERL_REQUIRE_SETUP=1`` (.ci/run runs the full setup first), which turns every such skip into
a failure: a broken setup cannot hide behind skipped tests there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = ROOT / "scripts" / "bootstrap.sh"
STEPS = [
    "venv",
    "model",
    "docker",
    "compose",
    "claude-code",
    "base-image",
    "policy-env",
    "sft-model",
]
#: Steps that run only when named (`nox -s learn` names weak-model).
NAMED_STEPS = ["weak-model"]
IMAGE = "swerl-base:latest"
MANIFEST = tomllib.loads((ROOT / "repos" / "manifest.toml").read_text())
CLAUDE_VERSION = MANIFEST["claude-code"]["version"]


def need(ok: bool, reason: str) -> None:
    """Skip with ``reason`` unless it holds; under SWERL_REQUIRE_SETUP=1 (CI) fail instead."""
    if ok:
        return
    if os.environ.get("SWERL_REQUIRE_SETUP") == "1":
        pytest.fail(f"{reason} (SWERL_REQUIRE_SETUP=1: setup must be complete here)")
    pytest.skip(reason)


def sh(*argv: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 60):
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def step_lines(out: str) -> dict[str, str]:
    """``setup: <step> ... <rest>`` lines by step (the last one of each step)."""
    found = {}
    for line in out.splitlines():
        if line.startswith("setup: ") and " ... " in line:
            step, rest = line.removeprefix("setup: ").split(" ... ", 1)
            found[step] = rest
    return found


# --- the step logic, in a scratch checkout with stand-in tools --------------------------------


def write_tool(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def files_under(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the setup scripts and the manifest, with a made-up lock and two pyprojects."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts" / "setup", repo / "scripts" / "setup")
    shutil.copy2(BOOTSTRAP, repo / "scripts" / "bootstrap.sh")
    (repo / "repos").mkdir()
    shutil.copy2(ROOT / "repos" / "manifest.toml", repo / "repos" / "manifest.toml")
    (repo / "uv.lock").write_text("version = 1\n")
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (repo / "packages" / "a").mkdir(parents=True)
    (repo / "packages" / "a" / "pyproject.toml").write_text("[project]\nname = 'a'\n")
    return repo


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """Stand-ins for uv and npm that log their calls and build what the real ones would."""
    bin_ = tmp_path / "bin"
    write_tool(
        bin_ / "uv",
        'echo "uv $*" >>"$TOOL_LOG"\n'
        '[[ "$1" == --version ]] && { echo "uv 0.0.0-stand-in"; exit 0; }\n'
        f'mkdir -p .venv/bin && ln -sf "{sys.executable}" .venv/bin/python\n',
    )
    write_tool(
        bin_ / "npm",
        'echo "npm $*" >>"$TOOL_LOG"\n'
        "prefix=$3; spec=${!#}; version=${spec##*@}\n"
        'mkdir -p "$prefix/node_modules/.bin"\n'
        'printf \'#!/bin/sh\\necho "%s (Claude Code)"\\n\' "$version" '
        '>"$prefix/node_modules/.bin/claude"\n'
        'chmod 755 "$prefix/node_modules/.bin/claude"\n',
    )
    return bin_


def tool_env(tools: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWERL_")}
    env |= {
        "PATH": f"{tools}:{env['PATH']}",
        "TOOL_LOG": str(tmp_path / "tools.log"),
        "SWERL_PYTHON": sys.executable,  # the test's own Python is 3.12
        "SWERL_EXTRAS": "",
    }
    return env


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "tools.log"
    return log.read_text().splitlines() if log.exists() else []


def test_venv_step_syncs_once_and_again_only_when_the_lock_changes(
    checkout: Path, tools: Path, tmp_path: Path
) -> None:
    env = tool_env(tools, tmp_path)
    step = checkout / "scripts" / "setup" / "venv.sh"

    first = sh(step, env=env, cwd=checkout)
    assert first.returncode == 0, first.stderr
    assert step_lines(first.stdout)["venv"].startswith("done in ")
    syncs = [c for c in calls(tmp_path) if c.startswith("uv sync")]
    assert syncs == [f"uv sync --locked --python {sys.executable}"]

    again = sh(step, env=env, cwd=checkout)
    assert step_lines(again.stdout)["venv"].startswith("(skipped: already done")
    assert len([c for c in calls(tmp_path) if c.startswith("uv sync")]) == 1

    ok = sh(step, "--check", env=env, cwd=checkout)
    assert (ok.returncode, step_lines(ok.stdout)["venv"][:2]) == (0, "ok")

    (checkout / "packages" / "a" / "pyproject.toml").write_text("[project]\nname = 'a2'\n")
    stale = sh(step, "--check", env=env, cwd=checkout)
    assert stale.returncode == 1
    assert step_lines(stale.stdout)["venv"].startswith("missing: .venv in sync with uv.lock")
    assert len([c for c in calls(tmp_path) if c.startswith("uv sync")]) == 1


def test_claude_code_step_installs_the_manifest_pin_once(
    checkout: Path, tools: Path, tmp_path: Path
) -> None:
    env = tool_env(tools, tmp_path)
    step = checkout / "scripts" / "setup" / "claude_code.sh"

    first = sh(step, env=env, cwd=checkout)
    assert first.returncode == 0, first.stderr
    (npm,) = calls(tmp_path)
    assert npm.endswith(f" @anthropic-ai/claude-code@{CLAUDE_VERSION}")
    assert f"--prefix {checkout}/.cache/claude-code/{CLAUDE_VERSION} " in npm

    again = sh(step, env=env, cwd=checkout)
    assert step_lines(again.stdout)["claude-code"].startswith("(skipped: already done")
    assert len(calls(tmp_path)) == 1

    # A binary that answers with another version is not the pinned install.
    prefix = checkout / ".cache" / "claude-code" / CLAUDE_VERSION
    claude = prefix / "node_modules" / ".bin" / "claude"
    write_tool(claude, 'echo "0.0.1 (Claude Code)"\n')
    wrong = sh(step, "--check", env=env, cwd=checkout)
    assert wrong.returncode == 1
    assert step_lines(wrong.stdout)["claude-code"] == (
        f"missing: claude-code {CLAUDE_VERSION} (npm) in .cache/claude-code/{CLAUDE_VERSION}"
    )


def test_check_reports_every_missing_step_and_changes_nothing(
    checkout: Path, tools: Path, tmp_path: Path
) -> None:
    env = tool_env(tools, tmp_path)
    before = files_under(checkout)
    steps = ["venv", "claude-code", "policy-env"]
    result = sh(checkout / "scripts" / "bootstrap.sh", "--check", *steps, env=env, cwd=checkout)
    assert result.returncode == 1
    lines = step_lines(result.stdout)
    assert {s: lines[s].split(":")[0] for s in lines} == {
        "venv": "missing",
        "claude-code": "missing",
        "policy-env": "missing",
    }
    assert "setup: missing: venv claude-code policy-env" in result.stdout
    assert calls(tmp_path) == []
    # lib.sh makes .cache/ (empty) so that logs have a home; nothing else appears.
    assert files_under(checkout) == before


def test_policy_env_is_not_rebuilt_under_a_running_server(checkout: Path) -> None:
    venv = checkout / ".venv-policy"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(shutil.which("sleep") or "/bin/sleep")
    (venv / "keep").write_text("in use")
    server = subprocess.Popen([".venv-policy/bin/python", "60"], cwd=checkout)
    try:
        result = sh(checkout / "scripts" / "setup" / "policy_env.sh", cwd=checkout)
    finally:
        server.kill()
        server.wait()
    assert result.returncode == 2
    assert "a process runs from it" in result.stderr
    assert (venv / "keep").read_text() == "in use"


def test_unknown_step_is_refused_with_the_list() -> None:
    result = sh(BOOTSTRAP, "--check", "dockr")
    assert result.returncode == 2
    assert f"unknown step 'dockr'; steps: {' '.join(STEPS + NAMED_STEPS)}" in result.stderr


def test_a_named_only_step_runs_when_named_and_not_by_default() -> None:
    named = step_lines(sh(BOOTSTRAP, "--check", "weak-model", timeout=60).stdout)
    assert list(named) == ["weak-model"]
    assert "models/tiny-qwen2-weak" in named["weak-model"]


# --- this machine, after `make setup` ----------------------------------------------------------


def missing_steps() -> list[str]:
    result = sh(BOOTSTRAP, "--check", timeout=60)
    lines = step_lines(result.stdout)
    assert set(lines) == set(STEPS), result.stdout + result.stderr
    return [s for s in STEPS if not lines[s].startswith("ok")]


def test_after_setup_check_lists_nothing_and_a_second_run_only_skips() -> None:
    missing = missing_steps()
    need(not missing, f"`make setup` has not completed here (missing: {' '.join(missing)})")
    started = time.monotonic()
    again = sh(BOOTSTRAP, timeout=120)
    took = time.monotonic() - started
    assert again.returncode == 0, again.stderr
    lines = step_lines(again.stdout)
    assert {s: lines[s].startswith("(skipped: already done") for s in STEPS} == dict.fromkeys(
        STEPS, True
    )
    assert took < 20, f"a second `make setup` took {took:.1f} s"


def docker_ready() -> None:
    need(shutil.which("docker") is not None, "no docker CLI (run `make setup`)")
    engine = sh("docker", "info", timeout=20)
    need(engine.returncode == 0, "no running Docker engine (run `make setup`)")
    need(
        sh("docker", "image", "inspect", IMAGE, timeout=20).returncode == 0,
        f"{IMAGE} is not built (`make setup`)",
    )


@pytest.mark.docker
def test_base_image_has_pinned_claude_and_the_sandbox_tools() -> None:
    docker_ready()
    scaffold = pytest.importorskip("swerl_scaffold_claude_code.scaffold")
    probe = (
        "claude --version; python3 --version; git --version; socat -V | sed -n 2p; "
        "bwrap --version; command -v ps; pwd; test -d /run/swerl && echo run-swerl"
    )
    result = sh("docker", "run", "--rm", "--network", "none", IMAGE, "sh", "-c", probe, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{scaffold.PINNED_VERSION} (Claude Code)"
    assert lines[1].startswith("Python 3.")
    assert lines[2].startswith("git version ")
    assert lines[3].startswith("socat version ")
    assert lines[4].startswith("bubblewrap ")
    assert lines[5:] == ["/usr/bin/ps", "/app", "run-swerl"]


@pytest.mark.docker
def test_compose_container_with_network_none_has_only_loopback(tmp_path: Path) -> None:
    docker_ready()
    need(sh("docker", "compose", "version").returncode == 0, "no docker compose v2 (`make setup`)")
    (tmp_path / "compose.yaml").write_text(
        f"services:\n  main:\n    image: {IMAGE}\n    network_mode: none\n    init: true\n"
        "    stop_grace_period: 1s\n"
    )
    project = f"swerl-setup-test-{uuid.uuid4().hex[:8]}"
    compose = ["docker", "compose", "-p", project, "-f", str(tmp_path / "compose.yaml")]
    try:
        up = sh(*compose, "up", "-d", "--wait", timeout=120)
        assert up.returncode == 0, up.stderr
        nets = sh(*compose, "exec", "-T", "main", "ls", "/sys/class/net", timeout=60)
        assert nets.stdout.split() == ["lo"], nets.stdout + nets.stderr
        cmd = sh(*compose, "exec", "-T", "main", "cat", "/proc/1/cmdline", timeout=60)
        assert cmd.stdout.split("\0")[0].endswith("docker-init")  # init: true works
    finally:
        sh(*compose, "down", "--timeout", "1", timeout=120)
    left = sh("docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}")
    assert left.stdout == ""


@pytest.mark.docker
def test_engine_started_by_setup_has_no_default_bridge() -> None:
    docker_ready()
    pidfile = ROOT / ".cache" / "dockerd.pid"
    started_here = pidfile.is_file() and Path(f"/proc/{pidfile.read_text().strip()}").exists()
    if not started_here:
        pytest.skip("the Docker engine was not started by `make setup` (its flags are not ours)")
    names = sh("docker", "network", "ls", "--format", "{{.Name}}").stdout.split()
    assert "bridge" not in names
    # With no default bridge, a container that names no network still gets only loopback.
    plain = sh("docker", "run", "--rm", IMAGE, "ls", "/sys/class/net", timeout=60)
    assert plain.stdout.split() == ["lo"], plain.stderr


# --- the policy server environment ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


@pytest.mark.e2e
@pytest.mark.slow
def test_policy_env_serves_the_tiny_model_with_token_ids(tmp_path: Path) -> None:
    python = ROOT / ".venv-policy" / "bin" / "python"
    model = ROOT / "models" / "tiny-qwen2"
    need(python.exists(), ".venv-policy is missing: run `make setup` (step policy-env)")
    need((model / "config.json").exists(), f"{model} is missing: run `make setup` (step model)")
    port = free_port()
    env = os.environ | {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_SERVER_DEV_MODE": "1",
    }
    argv = [
        str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
        "--served-model-name", "policy", "--dtype", "float32", "--max-model-len", "4096",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    log = (tmp_path / "vllm.log").open("w")
    server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, (tmp_path / "vllm.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no /health within 300 s"
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                time.sleep(1)
        prompt = [10, 20, 30, 40, 50]
        out = post(
            f"{base}/v1/completions",
            {"model": "policy", "prompt": prompt, "max_tokens": 8, "min_tokens": 8,
             "temperature": 1.0, "seed": 0, "return_token_ids": True, "logprobs": 1},
        )  # fmt: skip
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
        log.close()
    (choice,) = out["choices"]
    assert choice["prompt_token_ids"] == prompt
    ids = choice["token_ids"]
    assert len(ids) == 8 and all(isinstance(i, int) and 0 <= i < 4096 for i in ids)
    logprobs = choice["logprobs"]
    assert len(logprobs["token_logprobs"]) == len(ids)
    assert all(lp <= 0.0 for lp in logprobs["token_logprobs"])
    assert out["usage"]["completion_tokens"] == 8
