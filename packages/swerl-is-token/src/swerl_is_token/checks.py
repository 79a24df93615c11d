"""Preflight row of the is-token filter: what the correction will do, in one line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swerl_is_token.component import TokenISOptions

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report

NAME = "is-token"


def run_checks(config: SwerlConfig, report: Report) -> None:
    for i, ref in enumerate(config.filters):
        if ref.name != NAME:
            continue
        opts = report.options(f"filters.{i}")
        if not isinstance(opts, TokenISOptions):
            opts = TokenISOptions.model_validate(ref.options)
        what = f"{opts.level}-level IS, weights truncated at C={opts.threshold:g}"
        if opts.rejection is not None:
            lo, hi = opts.rejection
            what += f", tokens with ratio outside [{lo:g}, {hi:g}] masked"
        alarm = (
            f"KL alarm after {opts.kl_alarm_steps} steps above {opts.kl_alarm_threshold:g}"
            f" ({'pauses' if opts.pause_on_alarm else 'warns'})"
        )
        report.passed("is-token correction", f"{what}; {alarm}")
