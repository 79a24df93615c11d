"""Print the learning curve of the newest run of a config and write its report.

Usage: python scripts/learning_curve.py configs/learn_cpu.yaml [RUN] [--eval N]

Prints reward mean and pass rate per step, the mean over the first and the last quarter of the
steps, and rollout_corr/kl (the trainer's logprobs against the rollout's right after each weight
sync), then writes the run's report (swerl report: PNG plots and index.html). With ``--eval N``
it then evaluates the starting model and the newest checkpoint on every task N times
(``swerl eval``, about 9 minutes each on 2 CPUs) and prints both side by side.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import yaml

from swerl.report import write_report
from swerl.runstate import find_run, read_metrics, run_dirs


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    evals = 0
    if "--eval" in argv:
        i = argv.index("--eval")
        evals = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    config = yaml.safe_load(Path(argv[0]).read_text())
    out = Path(config.get("run", {}).get("output_dir", "runs"))
    name = config.get("run", {}).get("name", "swerl")
    if len(argv) > 1:
        run = find_run(argv[1], out)
    else:
        runs = [r for r in run_dirs(out) if r.name.startswith(f"{name}-")]
        if not runs:
            sys.exit(f"learning_curve: no run of {name!r} under {out}/")
        run = runs[-1]
    rows = read_metrics(run)
    if not rows:
        sys.exit(f"learning_curve: {run / 'metrics.jsonl'} has no steps")
    print(f"run {run.name}: {len(rows)} step(s)")
    print(f"{'step':>4}  {'reward':>6}  {'pass':>5}  {'kl':>9}  {'max|Δ|':>8}  {'step s':>6}")
    for r in rows:
        print(
            f"{r['step'] + 1:>4}  {r.get('reward/mean', 0):>6.3f}"
            f"  {r.get('reward/pass_rate', 0):>5.2f}"
            f"  {r.get('rollout_corr/kl', float('nan')):>9.1e}"
            f"  {r.get('rollout_corr/max_abs_diff', float('nan')):>8.1e}"
            f"  {r.get('time/step_s', 0):>6.0f}"
        )
    q = max(1, len(rows) // 4)
    first = statistics.fmean(r.get("reward/mean", 0.0) for r in rows[:q])
    last = statistics.fmean(r.get("reward/mean", 0.0) for r in rows[-q:])
    print(f"reward mean: first {q} step(s) {first:.3f} -> last {q} step(s) {last:.3f}")
    print(f"report: {write_report(run).page}")
    if evals:
        swerl = [sys.executable, "-m", "swerl", "eval", str(run), "-n", str(evals)]
        subprocess.run([*swerl, "--base"], check=True)
        subprocess.run(swerl, check=True)  # the newest checkpoint; prints both
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
