"""swerl's kit for testing plugins: one plugin under test, fakes for every other part.

Installed with swerl-core and loaded by pytest on its own (the ``pytest11`` entry point
``swerl`` → :mod:`swerl.testing.fixtures`). In a plugin package's ``tests/conftest.py``::

    import pytest

    @pytest.fixture
    def plugin_under_test() -> str:
        return "length"  # the entry-point name in the `swerl` group

Then, in its tests:

- ``pm``: a real plugin manager with only that entry point loaded, plus stand-ins named ``stub``
  (they validate, nothing more) and fakes named ``fake`` (they run) of every component kind;
- ``cfg(**sections)``: the text of a minimal config selecting the stand-ins; ``load(text)``
  validates one (a ``ConfigError`` lists every problem); ``check(text)`` runs ``swerl check``;
- ``rollout(**kwargs)``: one rollout through the real rollout and gateway code with a fake
  policy server, fake sandbox and fake scaffold, then the configured reward filters of one
  training step with the fake engine (:func:`run_rollout`);
- ``register_plugin(...)``: an inline plugin (an object with hooks, or component classes) for
  one test; ``swerl_cli(...)``: the CLI in-process, inline plugins included.

The fakes: :class:`FakePolicy` (a vLLM-shaped token-in/token-out server; :func:`fake_policy`
makes one for :class:`FakeTokenizer`, :func:`reply_ids` scripts its replies),
:class:`FakeScaffold`, :class:`FakeSandbox` (a scripted agent and scripted rewards),
:class:`FakeEngine` (a training step's filters and advantages without a model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swerl.testing.fakes import (
    FakeEngine,
    FakeEngineOptions,
    FakeOutcome,
    FakeRunner,
    Fakes,
    FakeSandbox,
    FakeSandboxOptions,
    FakeScaffold,
    FakeTokenizer,
    fake_policy,
    fake_renderer,
    reply_ids,
)
from swerl.testing.fixtures import (
    CliResult,
    cfg,
    check,
    load,
    plugin_under_test,
    pm,
    register_plugin,
    rollout,
    swerl_cli,
)
from swerl.testing.harness import (
    RolloutResult,
    TrainedSample,
    TrainStep,
    configured_filters,
    group_advantages,
    make_tasks,
    rollout_config,
    run_rollout,
    train_step,
)
from swerl.testing.support import (
    StubEngine,
    StubFilter,
    Stubs,
    StubSandbox,
    StubScaffold,
    as_plugin,
    config_yaml,
    docker_ready,
    free_ports,
    need,
    plugin_manager,
)

if TYPE_CHECKING:
    from swerl.fake_policy import Dialogue, FakePolicy, fake_logprob

#: Names served from swerl.fake_policy on first use (it needs aiohttp: swerl-core[gateway]).
_FAKE_POLICY = ("FakePolicy", "Dialogue", "fake_logprob")


def __getattr__(name: str) -> Any:
    if name in _FAKE_POLICY:
        from swerl import fake_policy as module

        return getattr(module, name)
    raise AttributeError(f"module 'swerl.testing' has no attribute {name!r}")


__all__ = [
    "CliResult",
    "Dialogue",
    "FakeEngine",
    "FakeEngineOptions",
    "FakeOutcome",
    "FakePolicy",
    "FakeRunner",
    "FakeSandbox",
    "FakeSandboxOptions",
    "FakeScaffold",
    "FakeTokenizer",
    "Fakes",
    "RolloutResult",
    "StubEngine",
    "StubFilter",
    "StubSandbox",
    "StubScaffold",
    "Stubs",
    "TrainStep",
    "TrainedSample",
    "as_plugin",
    "cfg",
    "check",
    "config_yaml",
    "configured_filters",
    "docker_ready",
    "fake_logprob",
    "fake_policy",
    "fake_renderer",
    "free_ports",
    "group_advantages",
    "load",
    "make_tasks",
    "need",
    "plugin_manager",
    "plugin_under_test",
    "pm",
    "register_plugin",
    "reply_ids",
    "rollout",
    "rollout_config",
    "run_rollout",
    "swerl_cli",
    "train_step",
]
