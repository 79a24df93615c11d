"""Entry point ``is-token``: registers the token-level IS filter and its preflight row."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swerl import hookimpl
from swerl.components import Register

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report


@hookimpl
def swerl_register_filters(register: Register) -> None:
    from swerl_is_token.component import TokenIS

    register(TokenIS)


@hookimpl
def swerl_preflight_checks(config: SwerlConfig, report: Report) -> None:
    if not any(ref.name == "is-token" for ref in config.filters):
        return
    from swerl_is_token.checks import run_checks

    run_checks(config, report)
