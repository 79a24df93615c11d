"""The local Engine: its options, and what works today."""

from __future__ import annotations

from swerl.components import ComponentOptions, Engine


class LocalEngineOptions(ComponentOptions):
    """Options of the local engine (`<kind>.options`)."""


class LocalEngine(Engine):
    name = "local"
    uses_gpus = False
    summary = "one-process CPU engine (embedded default, CI)"
    Options = LocalEngineOptions
    ready = frozenset({"plan"})
    pending = "the CPU training loop arrives with the training-loop issue (#4)"
