"""Entry point `length`: registers the length filter and its preflight check.

Kept cheap to import (`swerl --help` and `swerl plugins` import it): the component is imported
inside the hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swerl import hookimpl
from swerl.components import Register

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report


@hookimpl
def swerl_register_filters(register: Register) -> None:
    from swerl_filter_length.component import LengthFilter

    register(LengthFilter)


@hookimpl
def swerl_preflight_checks(config: SwerlConfig, report: Report) -> None:
    """A limit no trial can reach filters nothing: say so in `swerl check`."""
    from swerl_filter_length.component import LengthFilterOptions

    for i, ref in enumerate(config.filters):
        if ref.name != "length":
            continue
        options = report.options(f"filters.{i}")
        if not isinstance(options, LengthFilterOptions):
            options = LengthFilterOptions.model_validate(ref.options)
        most = config.rollout.max_turns * config.rollout.max_response_length
        if options.max_tokens >= most:
            report.warn(
                "length filter",
                f"filters.{i}.options.max_tokens {options.max_tokens} is at least what a trial "
                f"can sample (rollout.max_turns × max_response_length = {most}): it never fires",
                f"set filters.{i}.options.max_tokens below {most}",
            )
        else:
            report.passed(
                "length filter",
                f"{options.action}s trajectories that sample more than {options.max_tokens} tokens",
            )
