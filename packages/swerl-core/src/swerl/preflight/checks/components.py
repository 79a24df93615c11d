"""Readiness of the selected components: what `swerl run` will need from each."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swerl.preflight.checks.context import Context

#: The capability `swerl run` needs from each kind of component.
RUN_NEEDS = {"scaffold": "run", "sandbox": "run", "engine": "train", "filter": "apply"}


def check_components(ctx: Context) -> None:
    """A WARN row for each selected component that cannot yet do what a run needs."""
    manager = ctx.pm
    for kind, key, ref in ctx.config.components():
        name = f"{kind} {ref.name}"
        capability = RUN_NEEDS[kind]
        reg = manager.registry(kind).get(ref.name)
        if reg is None:
            ctx.report.fail(
                name,
                manager.explain_missing(kind, ref.name),
                f"install the plugin that provides {kind} '{ref.name}' or change {key}.name",
            )
            continue
        if reg.cls.is_ready(capability):
            ctx.report.passed(name, f"ready to {capability} ({reg.dist})")
            continue
        ctx.report.warn(
            name,
            f"{kind} '{ref.name}' cannot {capability} yet: {reg.cls.pending or 'not implemented'}",
            f"use `swerl plan` to see the launch plan; `swerl run` needs {kind} "
            f"'{ref.name}' to {capability}",
        )
