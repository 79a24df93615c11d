"""The benchmark's pure parts: statistics, the paired summary, the conversation, the report.

The benchmarks themselves (``bench*.py``) need the whole stack and are run by ``nox -s bench``,
never by pytest; these helpers decide what their numbers mean, so they are checked here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """The benchmark modules, imported the way ``python tests/bench/bench.py`` imports them."""
    monkeypatch.syspath_prepend(str(BENCH))
    names = ["benchlib", "bench_conversation", "bench_latency", "bench_throughput", "bench"]
    return {n: importlib.import_module(n) for n in names}


def test_percentile_interpolates_between_ranks(bench: dict[str, ModuleType]) -> None:
    lib = bench["benchlib"]
    assert lib.percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert lib.percentile([1.0, 2.0, 3.0, 4.0], 99) == pytest.approx(3.97)
    assert lib.percentile([7.0], 99) == 7.0
    assert lib.percentile(list(range(101)), 99) == pytest.approx(99.0)
    with pytest.raises(ValueError, match="empty"):
        lib.percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        lib.percentile([1.0], 101)


def test_describe_and_paired_differences(bench: dict[str, ModuleType]) -> None:
    lib = bench["benchlib"]
    d = lib.describe([10.0, 20.0, 30.0])
    assert (d["n"], d["mean"], d["p50"], d["min"], d["max"]) == (3, 20.0, 20.0, 10.0, 30.0)
    assert lib.describe([])["p50"] is None
    assert lib.paired_differences([5.0, 7.0], [4.0, 9.0]) == [1.0, -2.0]
    with pytest.raises(ValueError, match="length"):
        lib.paired_differences([1.0], [1.0, 2.0])


def test_order_alternates_and_rates(bench: dict[str, ModuleType]) -> None:
    lib = bench["benchlib"]
    firsts = [lib.alternating_order(i, "g", "v")[0] for i in range(4)]
    assert firsts == ["g", "v", "g", "v"]
    assert lib.per_minute(8, 120.0) == pytest.approx(4.0)
    assert lib.per_minute(3, 0.0) is None
    means = lib.phase_means([{"total": 10.0, "verifier": 2.0}, {"total": 20.0}])
    assert means == {"total": 15.0, "verifier": 2.0}


def test_table_aligns_columns(bench: dict[str, ModuleType]) -> None:
    lib = bench["benchlib"]
    text = lib.table(["name", "ms"], [["a", 1.25], ["longer", None]], digits=2)
    lines = text.splitlines()
    assert lines[0].split() == ["name", "ms"]
    assert lines[2].endswith("1.25") and lines[3].endswith("-")
    assert len({len(line) for line in lines[1:3]}) == 1  # right-aligned to the rule's width
    with pytest.raises(ValueError, match="cells"):
        lib.table(["a", "b"], [[1]])


def test_conversation_answers_tool_calls_with_tool_messages(
    bench: dict[str, ModuleType],
) -> None:
    conv = bench["bench_conversation"]
    first = conv.start()
    call = {"id": "c1", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}
    with_call = conv.follow(first, {"content": "", "tool_calls": [call]}, 1)
    assert [m["role"] for m in with_call[2:]] == ["assistant", "tool"]
    assert with_call[3]["tool_call_id"] == "c1"
    plain = conv.follow(first, {"content": "hm"}, 1)
    assert [m["role"] for m in plain[2:]] == ["assistant", "user"]
    assert plain[3]["content"] == conv.OBSERVATIONS[1]
    assert {t["function"]["name"] for t in conv.TOOLS} >= {"Bash", "Read", "Edit"}


def _row(step: int, g: float, v: float, call: int, tokens: tuple[int, int]) -> dict:
    return {
        "step": step,
        "first": "gateway",
        "session": "s0",
        "call": call,
        "gateway_ms": g,
        "vllm_ms": v,
        "gateway_prompt_tokens": 100 + step,
        "vllm_prompt_tokens": 100 + step,
        "gateway_completion_tokens": tokens[0],
        "vllm_completion_tokens": tokens[1],
    }


def test_latency_summary_pairs_calls_with_the_gateways_records(
    bench: dict[str, ModuleType],
) -> None:
    lat = bench["bench_latency"]
    rows = [_row(0, 110.0, 100.0, 3, (8, 8)), _row(1, 130.0, 100.0, 4, (8, 7))]
    turns = [
        {"call": 3, "render_ms": 2.0, "backend_ms": 95.0, "stitched": True},
        {"call": 4, "render_ms": 4.0, "backend_ms": 99.0, "stitched": True},
        {"call": 1, "render_ms": 9.0, "backend_ms": 1.0, "stitched": False},  # a warm-up call
    ]
    records = {"s0": {"samples": [{"turns": turns}], "exactness": 1.0}}
    out = lat.summarize_latency(rows, records, None, max_tokens=8, warmup=2)
    assert out["added_ms"]["p50"] == pytest.approx(20.0)
    assert out["added_ms_equal_length_calls"]["n"] == 1
    assert out["equal_length_calls"] == 1
    gi = out["gateway_internal"]
    assert gi["render_ms"]["mean"] == pytest.approx(3.0)  # the warm-up turn is not counted
    assert gi["outside_backend_ms"]["mean"] == pytest.approx(((110 - 95) + (130 - 99)) / 2)
    assert out["stitched_calls"] == 2 and out["exactness"] == 1.0


def test_report_prints_both_parts(bench: dict[str, ModuleType]) -> None:
    lat = bench["bench_latency"]
    rows = [_row(i, 100.0 + i, 90.0, i + 1, (8, 8)) for i in range(4)]
    turns = [
        {"call": i + 1, "render_ms": 1.0, "backend_ms": 88.0, "stitched": i > 0} for i in range(4)
    ]
    latency = lat.summarize_latency(
        rows, {"s0": {"samples": [{"turns": turns}]}}, None, max_tokens=8, warmup=0
    )
    level = {
        "concurrency": 2,
        "trials": 4,
        "wall_s": 60.0,
        "trials_per_min": 4.0,
        "speedup": 1.5,
        "seconds_per_phase": {"total": 30.0, "agent_run": 20.0},
        "reward_mean": 0.25,
        "failures": {"agent_timeout": 1},
        "multi_turn_trials": 3,
        "sampled_tokens_per_s": 12.5,
        "load_1m_at_end": 3.0,
    }
    load = {"cpus": 2, "load_1m": 1.0, "load_5m": 1.0, "load_15m": 1.0}
    result = {
        "model": "m",
        "machine": {"before": load},
        "latency": latency,
        "oracle": {"label": "SANDBOX ONLY: oracle", "tasks": ["t"], "n": 4, "levels": [level]},
    }
    text = bench["bench"].report(result)
    assert "added (gateway - direct, per call)" in text
    assert "SANDBOX ONLY" in text and "agent_timeout 1" in text
    added = next(line for line in text.splitlines() if line.startswith("added"))
    assert added.split()[-3:] == ["11.5", "13.0", "11.5"]  # p50, p99, mean of 10..13 ms
