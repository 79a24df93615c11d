"""The veomni Engine: its options, and what works today."""

from __future__ import annotations

from swerl.components import ComponentOptions, Engine


class VeomniEngineOptions(ComponentOptions):
    """Options of the veomni engine (`<kind>.options`)."""


class VeomniEngine(Engine):
    name = "veomni"
    summary = "verl 0.9.1 with model_engine=veomni (MoE, router replay, GPU)"
    Options = VeomniEngineOptions
    ready = frozenset({"plan"})
    pending = "training with verl + veomni arrives with the training-loop issue (#4)"
