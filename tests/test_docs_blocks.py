"""Every code block in the docs that can run on CPU runs, as written, from the repository root.

Collected: fenced blocks tagged ``bash``, ``sh``, ``console`` or ``python`` in ``docs/**/*.md``
and ``README.md``. One test per block, named ``file:line`` of its opening fence.

- ``bash`` / ``sh``: run with ``bash`` under ``set -e``, ``.venv/bin`` first on ``PATH``.
- ``console``: each line starting with ``$ `` is a command (run as above, a trailing ``\\``
  continues it); the lines after it are expected output: each must appear in what the command
  printed, in order (``...`` stands for any lines).
- ``python``: run with ``.venv/bin/python``.

A block that must not run here (it starts a long job, needs Docker, vLLM or a GPU, or changes the
machine) has the line ``<!-- no-run: why -->`` directly above its fence; it shows up as a skipped
test with that reason. The reason is required.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
VENV_BIN = ROOT / ".venv" / "bin"
LANGS = {"bash", "sh", "console", "python"}
TIMEOUT_S = 120

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<mark>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*no-run\b(?P<rest>.*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    file: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    no_run: str | None  # the marker's reason; "" for a marker without one

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def parse_blocks(text: str, file: str) -> list[Block]:
    """Every fenced block of a Markdown text, with its language and no-run marker."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        mark, info = match["mark"], match["info"].strip()
        lang = info.split()[0].lower() if info else ""
        end = i + 1
        while end < len(lines):
            closing = lines[end].strip()
            if closing.startswith(mark) and set(closing) == {mark[0]}:
                break
            end += 1
        marker = _MARKER.match(lines[i - 1]) if i > 0 else None
        no_run = None
        if marker is not None:
            no_run = marker["rest"].strip().removeprefix(":").strip()
        body = "\n".join(lines[i + 1 : end]) + "\n"
        blocks.append(Block(file, i + 1, lang, body, no_run))
        i = end + 1
    return blocks


def markdown_files() -> list[Path]:
    return [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]


def collect() -> list[Block]:
    blocks = []
    for path in markdown_files():
        rel = str(path.relative_to(ROOT))
        blocks += [b for b in parse_blocks(path.read_text(), rel) if b.lang in LANGS]
    return blocks


def console_commands(code: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each ``$ `` line of a console block."""
    out: list[tuple[str, list[str]]] = []
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if out:
                out[-1][1].append(line)
            i += 1
            continue
        command = line[2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1] + "\n" + lines[i]
        out.append((command, []))
        i += 1
    return out


def output_mismatch(expected: list[str], actual: str) -> str | None:
    """None when every expected line appears in ``actual``, in order (``...``: any lines)."""
    got = [line.rstrip() for line in actual.splitlines()]
    pos = 0
    for want in (w.rstrip() for w in expected):
        if not want.strip() or want.strip() == "...":
            continue
        try:
            pos = got.index(want, pos) + 1
        except ValueError:
            return f"expected line not in the output (in order): {want!r}"
    return None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    for var in ("TRAIN_BSZ", "N_RESP"):  # the docs' own overrides must not leak in
        env.pop(var, None)
    return env


def _run(argv: list[str], block: Block, stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            argv,
            cwd=ROOT,
            env=_env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"{block.id}: still running after {TIMEOUT_S} s; a block this slow needs "
            "`<!-- no-run: why -->` above its fence"
        )


def _failed(block: Block, what: str, result: subprocess.CompletedProcess) -> str:
    return (
        f"{block.id} ({block.lang} block) {what}, exit {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}\n"
        "Fix the block, or put `<!-- no-run: why -->` on the line above its fence."
    )


def run_block(block: Block) -> None:
    """Run one block as the module docstring says; fail with its output when it fails."""
    if block.lang in ("bash", "sh"):
        result = _run(["bash", "-s"], block, stdin="set -e\n" + block.code)
        assert result.returncode == 0, _failed(block, "failed", result)
    elif block.lang == "python":
        python = VENV_BIN / "python"
        result = _run([str(python if python.exists() else sys.executable), "-"], block, block.code)
        assert result.returncode == 0, _failed(block, "failed", result)
    elif block.lang == "console":
        commands = console_commands(block.code)
        assert commands, f"{block.id}: a console block without a `$ ` command"
        for command, expected in commands:
            result = _run(["bash", "-s"], block, stdin=f"set -e\n{command}\n")
            assert result.returncode == 0, _failed(block, f"`$ {command}` failed", result)
            problem = output_mismatch(expected, result.stdout)
            assert problem is None, _failed(block, f"`$ {command}`: {problem}", result)
    else:  # pragma: no cover - collect() only yields LANGS
        raise AssertionError(block.lang)


BLOCKS = collect()


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_docs_code_block(block: Block) -> None:
    if block.no_run:
        pytest.skip(f"{block.id}: no-run: {block.no_run}")
    if block.no_run == "":
        pytest.fail(f"{block.id}: `<!-- no-run -->` needs a reason: `<!-- no-run: why -->`")
    run_block(block)


# --- the collector and runner themselves ------------------------------------------------------


def test_blocks_are_collected_from_docs_and_readme() -> None:
    files = {b.file for b in BLOCKS}
    assert "docs/quickstart.md" in files and "docs/run-training/scaling-up.md" in files
    runnable = [b for b in BLOCKS if not b.no_run]
    assert len(runnable) >= 4, "the docs should keep some blocks that run"
    assert {b.lang for b in runnable} >= {"console", "python"}


def test_every_no_run_marker_has_a_reason_and_a_block() -> None:
    """A marker must sit directly above a fence and say why; one anywhere else marks nothing."""
    problems = []
    for path in markdown_files():
        rel = str(path.relative_to(ROOT))
        lines = path.read_text().splitlines()
        fenced = set()
        for block in parse_blocks(path.read_text(), rel):
            fenced |= set(range(block.line, block.line + block.code.count("\n") + 2))
        for n, line in enumerate(lines, 1):
            marker = _MARKER.match(line)
            if marker is None or n in fenced:  # a marker shown inside a code block is an example
                continue
            if not marker["rest"].strip().removeprefix(":").strip():
                problems.append(f"{rel}:{n}: no reason")
            if n >= len(lines) or _FENCE.match(lines[n]) is None:
                problems.append(f"{rel}:{n}: not directly above a code fence")
    assert not problems, problems


def test_parse_blocks_reads_languages_markers_and_lines() -> None:
    text = (
        "# T\n"  # 1
        "<!-- no-run: starts a GPU job -->\n"  # 2
        "```bash\n"  # 3
        "make train-1node\n"
        "```\n"
        "\n"
        "```console title\n"  # 7
        "$ echo hi\n"
        "hi\n"
        "```\n"
        "<!-- no-run -->\n"
        "````python\n"  # 12
        "print('```')\n"
        "````\n"
        "<!-- no-run: x -->\n"
        "\n"
        "```sh\n"  # 17: a blank line between marker and fence: not marked
        "true\n"
        "```\n"
    )
    blocks = parse_blocks(text, "t.md")
    assert [(b.line, b.lang, b.no_run) for b in blocks] == [
        (3, "bash", "starts a GPU job"),
        (7, "console", None),
        (12, "python", ""),
        (17, "sh", None),
    ]
    assert blocks[2].code == "print('```')\n"
    assert blocks[0].id == "t.md:3"


def test_console_commands_and_expected_output() -> None:
    code = "$ echo a \\\n  b\na b\n...\n$ true\n"
    assert console_commands(code) == [("echo a \n  b", ["a b", "..."]), ("true", [])]
    assert output_mismatch(["x", "...", "z"], "x\ny\nz\n") is None
    assert output_mismatch(["z", "x"], "x\ny\nz\n") is not None  # order matters
    assert output_mismatch(["  n_resp: 8"], "  n_resp: 4\n") is not None


def test_a_failing_block_fails_and_names_itself() -> None:
    with pytest.raises(AssertionError, match=r"t\.md:3 \(bash block\) failed, exit 3"):
        run_block(Block("t.md", 3, "bash", "true\nexit 3\necho never\n", None))
    with pytest.raises(AssertionError, match="failed, exit 1") as failed:
        # set -e: a failing command in the middle fails the block
        run_block(Block("t.md", 3, "bash", "false\necho went-on\n", None))
    assert "went-on" not in str(failed.value)
    with pytest.raises(AssertionError, match="expected line"):
        run_block(Block("t.md", 9, "console", "$ echo one\ntwo\n", None))
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        run_block(Block("t.md", 5, "python", "1 / 0\n", None))
    run_block(Block("t.md", 1, "console", "$ echo one\none\n", None))
    run_block(Block("t.md", 1, "bash", "command -v swerl | grep -q .venv/bin/swerl\n", None))
