"""``swerl report``: PNG plots and one HTML page of a run's curves, from ``metrics.jsonl``.

One figure per metric group (reward, rollout correction, actor, time per phase, tokens,
failures by cause, and every other metric); a group with no data is left out. ``index.html``
is self-contained (inline CSS, the PNGs beside it referenced by relative name) and shows the
run id, a summary of ``config.yaml`` and the last step's metrics.

matplotlib is imported inside :func:`write_report` only (``swerl --help`` stays fast), and only
its Agg canvas is used: no pyplot, no global backend switch, no display needed.
"""

from __future__ import annotations

import contextlib
import html
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from swerl.errors import UserError
from swerl.runstate import METRICS, read_metrics, read_status

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INDEX = "index.html"
#: A figure draws at most this many panels (one metric each); the table lists the rest.
MAX_PANELS = 12
#: Up to this many steps, failures are stacked bars (one per step); past it, stacked areas.
MAX_BARS = 100

Series = dict[str, list[tuple[float, float]]]  # metric name -> [(step, value)], sorted by step


# --- reading ----------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def load_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The run's metric rows, one per step (sorted; a repeated step keeps its last row).

    Raises :class:`UserError` naming ``metrics.jsonl`` when it is missing or holds no step.
    """
    path = run_dir / METRICS
    if not path.is_file():
        raise UserError(
            f"{path}: not found; the training loop writes it (one line per finished step), "
            "so this run has not finished a step"
        )
    by_step: dict[float, dict[str, Any]] = {}
    for row in read_metrics(run_dir):
        if isinstance(row, dict) and _is_number(row.get("step")):
            by_step[row["step"]] = row
    if not by_step:
        raise UserError(f"{path} is empty: no finished step to report yet")
    return [by_step[s] for s in sorted(by_step)]


def series_of(rows: Iterable[dict[str, Any]]) -> Series:
    """Every numeric metric as (step, value) points; non-finite and non-numeric values dropped."""
    out: Series = {}
    for row in rows:
        step = float(row["step"])
        for key, value in row.items():
            if key != "step" and _is_number(value) and math.isfinite(value):
                out.setdefault(key, []).append((step, float(value)))
    return out


def config_summary(run_dir: Path) -> dict[str, Any]:
    """The few config values a reader of the report wants, from ``<run_dir>/config.yaml``."""
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(config, dict):
        return {}

    def get(dotted: str) -> Any:
        node: Any = config
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    keys = (
        "model.path",
        "mode",
        "algorithm.name",
        "algorithm.n_resp",
        "algorithm.train_batch_size",
        "algorithm.lr",
        "algorithm.total_steps",
    )
    return {k: get(k) for k in keys if get(k) is not None}


# --- metric groups ----------------------------------------------------------------------------


@dataclass
class Group:
    """A figure: its file stem, title, the metrics it claims and how it draws them."""

    name: str
    title: str
    claims: Callable[[str], bool]
    #: Draws the figure from every series and this group's metric names (in order).
    draw: Callable[[Figure, Series, list[str]], None]
    first: tuple[str, ...] = ()  # these metrics first, the rest in name order

    def keys(self, series: Series) -> list[str]:
        mine = [k for k in series if self.claims(k)]
        return sorted(mine, key=lambda k: (k not in self.first, self._rank(k), k))

    def _rank(self, key: str) -> int:
        return self.first.index(key) if key in self.first else 0


def _prefix(*prefixes: str) -> Callable[[str], bool]:
    return lambda key: key.startswith(prefixes)


def _xy(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [p[0] for p in points], [p[1] for p in points]


def _line(ax: Axes, points: list[tuple[float, float]], label: str, **kw: Any) -> None:
    xs, ys = _xy(points)
    marker = "o" if len(xs) <= 30 else None
    ax.plot(xs, ys, label=label, marker=marker, markersize=3, linewidth=1.5, **kw)


def _style(ax: Axes, ylabel: str = "", legend: bool = True, outside: bool = False) -> None:
    """Grid, y label and legend (``outside``: right of the plot, for filled areas and bars)."""
    ax.grid(True, alpha=0.3)
    if ylabel:
        ax.set_ylabel(ylabel)
    if legend and ax.get_legend_handles_labels()[0]:
        if outside:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
        else:
            ax.legend(loc="best", fontsize="small")


def _grid(fig: Figure, n: int) -> list[Axes]:
    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    fig.set_size_inches(9 if cols == 1 else 12, max(4.0, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[max(0, n - cols) : n]:
        ax.set_xlabel("step")
        ax.xaxis.set_tick_params(labelbottom=True)
    return axes[:n]


def _draw_panels(fig: Figure, series: Series, keys: list[str]) -> None:
    """One small plot per metric (they rarely share a scale), at most MAX_PANELS of them."""
    shown = keys[:MAX_PANELS]
    for ax, key in zip(_grid(fig, len(shown)), shown, strict=True):
        _line(ax, series[key], key)
        ax.set_title(key, fontsize="medium")
        _style(ax, legend=False)


def _draw_reward(fig: Figure, series: Series, keys: list[str]) -> None:
    """Mean with a ± std band (and any other reward/* lines) above, the pass rate below."""
    mean, std = series.get("reward/mean"), series.get("reward/std")
    top_keys = [k for k in keys if k not in ("reward/std", "reward/pass_rate")]
    has_pass = "reward/pass_rate" in series
    fig.set_size_inches(9, 6.5 if top_keys and has_pass else 4.5)
    panels = int(bool(top_keys)) + int(has_pass)
    axes = fig.subplots(panels, 1, squeeze=False, sharex=True).ravel().tolist()
    if top_keys:
        ax = axes[0]
        if mean:
            _line(ax, mean, "reward/mean", color="C0")
            if std:
                sd = dict(std)
                band = [(s, m, sd[s]) for s, m in mean if s in sd]
                if band:
                    ax.fill_between(
                        [b[0] for b in band],
                        [b[1] - b[2] for b in band],
                        [b[1] + b[2] for b in band],
                        color="C0",
                        alpha=0.2,
                        label="± std",
                    )
        for i, key in enumerate(k for k in top_keys if k != "reward/mean"):
            _line(ax, series[key], key, color=f"C{i + 2}", linestyle="--", linewidth=1)
        _style(ax, "reward")
    if has_pass:
        ax = axes[-1]
        _line(ax, series["reward/pass_rate"], "reward/pass_rate", color="C1")
        ax.set_ylim(-0.03, 1.03)
        _style(ax, "pass rate", legend=False)
    axes[-1].set_xlabel("step")


def _aligned(series: Series, keys: list[str]) -> tuple[list[float], dict[str, list[float]]]:
    """Every step any of ``keys`` has, and each key's value there (0 where it has none)."""
    steps = sorted({s for k in keys for s, _ in series[k]})
    cols = {}
    for key in keys:
        values = dict(series[key])
        cols[key] = [values.get(s, 0.0) for s in steps]
    return steps, cols


def _draw_time(fig: Figure, series: Series, keys: list[str]) -> None:
    """The phases stacked (they add up to the step), the step's own total as a line."""
    phases = [k for k in keys if k != "time/step_s"]
    fig.set_size_inches(9, 4.5)
    ax = fig.subplots()
    if phases:
        steps, cols = _aligned(series, phases)
        labels = [k.removeprefix("time/").removesuffix("_s") for k in phases]
        ax.stackplot(steps, *(cols[k] for k in phases), labels=labels, alpha=0.75)
    if "time/step_s" in series:
        _line(ax, series["time/step_s"], "step (total)", color="black")
    ax.set_xlabel("step")
    _style(ax, "seconds per step", outside=True)


def _draw_failures(fig: Figure, series: Series, keys: list[str]) -> None:
    """Failed samples per step, stacked by cause."""
    from matplotlib.ticker import MaxNLocator

    steps, cols = _aligned(series, keys)
    fig.set_size_inches(9, 4.5)
    ax = fig.subplots()
    if len(steps) <= MAX_BARS:
        bottom = [0.0] * len(steps)
        for key in keys:
            ax.bar(steps, cols[key], bottom=bottom, label=key.removeprefix("failures/"))
            bottom = [b + v for b, v in zip(bottom, cols[key], strict=True)]
    else:
        labels = [k.removeprefix("failures/") for k in keys]
        ax.stackplot(steps, *(cols[k] for k in keys), labels=labels, alpha=0.8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    _style(ax, "failed samples", outside=True)


#: The figures, in page order. A metric belongs to the first group that claims it.
GROUPS: list[Group] = [
    Group("reward", "Reward", _prefix("reward/"), _draw_reward, ("reward/mean",)),
    Group(
        "rollout_corr",
        "Rollout correction",
        _prefix("rollout_corr/"),
        _draw_panels,
        ("rollout_corr/kl",),
    ),
    Group(
        "actor",
        "Actor: loss and clip fraction",
        _prefix("actor/"),
        _draw_panels,
        ("actor/loss", "actor/pg_clipfrac"),
    ),
    Group("time", "Time per phase", _prefix("time/"), _draw_time),
    Group("tokens", "Tokens", _prefix("tokens/"), _draw_panels, ("tokens/sampled",)),
    Group("failures", "Failures by cause", _prefix("failures/"), _draw_failures),
]
_CLAIMED = tuple(g.claims for g in GROUPS)
#: Every metric no other group claims (``exactness`` and the like), one panel each.
GROUPS.append(
    Group(
        "other",
        "Other metrics",
        lambda k: not any(c(k) for c in _CLAIMED),
        _draw_panels,
        ("exactness",),
    )
)


# --- writing ----------------------------------------------------------------------------------


@dataclass
class Report:
    """What :func:`write_report` wrote."""

    page: Path
    images: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # groups without data


def _replace_into(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temp name beside ``path``, then rename (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_report(run_dir: Path, out_dir: Path | None = None) -> Report:
    """Draw every metric group that has data and write ``index.html``; return what was written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = load_rows(run_dir)
    series = series_of(rows)
    out = out_dir if out_dir is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)

    report = Report(page=out / INDEX)
    sections: list[tuple[Group, str, list[str]]] = []
    for group in GROUPS:
        keys = group.keys(series)
        target = out / f"{group.name}.png"
        if not keys:
            report.skipped.append(group.name)
            # A report written before may have drawn this group: do not leave a stale picture.
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            continue
        fig = Figure(layout="constrained")
        FigureCanvasAgg(fig)
        group.draw(fig, series, keys)
        fig.suptitle(group.title)
        _replace_into(target, partial(fig.savefig, format="png", dpi=100))
        report.images.append(target)
        sections.append((group, target.name, keys))

    page = render_html(run_dir, rows, sections)
    _replace_into(report.page, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return report


# --- the page ---------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1280px; padding: 0 1rem; color: #1f2328; }
h1 { font-size: 1.5rem; margin-bottom: 0.25rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
.meta { color: #59636e; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f6f8fa; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #59636e; font-size: 0.85rem; }
nav a { margin-right: 1rem; }
"""


def fmt(value: Any) -> str:
    """A metric value for the table: numbers to 6 significant digits."""
    if _is_number(value):
        if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
            return f"{int(value):d}" if abs(value) < 1e15 else f"{value:.6g}"
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip() if value is not None else ""


def render_html(
    run_dir: Path, rows: list[dict[str, Any]], sections: list[tuple[Group, str, list[str]]]
) -> str:
    e = html.escape
    run_id = run_dir.resolve().name
    last = rows[-1]
    status = read_status(run_dir)
    meta = [f"{len(rows)} step(s), last step {fmt(last['step'])}"]
    if status.get("phase"):
        meta.append(f"phase: {status['phase']}")
    meta.append("generated " + time.strftime("%Y-%m-%d %H:%M:%S"))

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>swerl report: {e(run_id)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>swerl report: {e(run_id)}</h1>",
        f'<p class="meta">{e(" · ".join(meta))}</p>',
    ]
    if sections:
        links = " ".join(f'<a href="#{e(g.name)}">{e(g.title)}</a>' for g, _, _ in sections)
        parts.append(f'<nav>{links} <a href="#last-step">Last step</a></nav>')

    summary = config_summary(run_dir)
    parts.append('<h2 id="config">Config</h2>')
    if summary:
        parts.append("<table><tr><th>key</th><th>value</th></tr>")
        parts += [
            f"<tr><td><code>{e(k)}</code></td><td>{e(fmt(v))}</td></tr>" for k, v in summary.items()
        ]
        parts.append("</table>")
    else:
        parts.append(f"<p>No readable config.yaml in {e(str(run_dir))}.</p>")

    for group, image, keys in sections:
        caption = ", ".join(keys[:MAX_PANELS])
        if group.draw is _draw_panels and len(keys) > MAX_PANELS:
            caption += f" (and {len(keys) - MAX_PANELS} more: see the table)"
        parts += [
            f'<h2 id="{e(group.name)}">{e(group.title)}</h2>',
            f'<figure><img src="{e(image)}" alt="{e(group.title)}">',
            f"<figcaption>{e(caption)}</figcaption></figure>",
        ]

    parts.append(f'<h2 id="last-step">Last step ({e(fmt(last["step"]))})</h2>')
    parts.append("<table><tr><th>metric</th><th>value</th></tr>")
    for key in sorted(k for k in last if k != "step"):
        value = last[key]
        cls = ' class="num"' if _is_number(value) else ""
        parts.append(f"<tr><td><code>{e(key)}</code></td><td{cls}>{e(fmt(value))}</td></tr>")
    parts.append("</table>")
    parts.append(f'<p class="meta">from {e(str(run_dir / METRICS))}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
