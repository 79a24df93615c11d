"""The hooks a swerl plugin can implement. Keep them few.

Every hook is called with keyword arguments; an implementation may accept any subset of a hook's
arguments (pluggy's opt-in arguments), so new arguments can be added without breaking plugins.

Registration hooks receive a ``register`` callable. The core owns the registries: it validates
each component, rejects a duplicate name (naming both distributions) and never depends on the order
in which plugins load. The config picks components by name and lists filters in the order they run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from swerl import PROJECT

if TYPE_CHECKING:
    from swerl.components import Register
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report

hookspec = pluggy.HookspecMarker(PROJECT)


# --- components -------------------------------------------------------------------------------


@hookspec
def swerl_register_scaffolds(register: Register) -> None:
    """Register agent scaffolds (the coding agent that runs inside a sandbox).

    :param register: call ``register(ScaffoldClass)`` once per scaffold; the class subclasses
        :class:`swerl.components.Scaffold`.
    """


@hookspec
def swerl_register_sandboxes(register: Register) -> None:
    """Register sandbox backends (where a trial's container runs: Docker, Kubernetes, ...).

    :param register: call ``register(SandboxClass)``; the class subclasses
        :class:`swerl.components.Sandbox`.
    """


@hookspec
def swerl_register_engines(register: Register) -> None:
    """Register training engines (what turns scored trajectories into a policy update).

    :param register: call ``register(EngineClass)``; the class subclasses
        :class:`swerl.components.Engine`.
    """


@hookspec
def swerl_register_filters(register: Register) -> None:
    """Register reward filters: transforms on scored trajectories before the update.

    :param register: call ``register(FilterClass)``; the class subclasses
        :class:`swerl.components.RewardFilter`. The config lists filters in the order they run.
    """


# --- preflight --------------------------------------------------------------------------------


@hookspec
def swerl_preflight_checks(config: SwerlConfig, report: Report) -> None:
    """Add checks to ``swerl check``. Must have no side effects.

    :param config: the validated run config.
    :param report: call ``report.add(...)`` (or ``report.passed/warn/fail``) once per check; give
        every warn or fail a one-line fix.
    """
