"""``swerl check``: checks with no side effects, contributed by the core and every plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swerl.preflight.report import Check, Report, Status

if TYPE_CHECKING:
    from swerl.config.load import LoadedConfig
    from swerl.plugins import PluginManager

__all__ = ["Check", "Report", "Status", "run_preflight"]


def run_preflight(loaded: LoadedConfig, pm: PluginManager) -> Report:
    """Run every plugin's checks (the core's own included) against a validated config."""
    report = Report(loaded=loaded)
    pm.preflight_checks(loaded.config, report)
    return report
