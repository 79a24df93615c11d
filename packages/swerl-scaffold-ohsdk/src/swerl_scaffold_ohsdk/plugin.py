"""Entry point ``ohsdk``: registers the OpenHands-SDK scaffold and its preflight checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swerl import hookimpl
from swerl.components import Register

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report


@hookimpl
def swerl_register_scaffolds(register: Register) -> None:
    from swerl_scaffold_ohsdk.component import OHSDK

    register(OHSDK)


@hookimpl
def swerl_preflight_checks(config: SwerlConfig, report: Report) -> None:
    if config.scaffold.name != "ohsdk":
        return
    from swerl_scaffold_ohsdk.checks import run_checks

    run_checks(config, report)
