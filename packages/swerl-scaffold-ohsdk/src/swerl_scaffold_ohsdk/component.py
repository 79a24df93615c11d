"""The ohsdk Scaffold: its options, and what works today."""

from __future__ import annotations

from swerl.components import ComponentOptions, Scaffold


class OHSDKOptions(ComponentOptions):
    """Options of the ohsdk scaffold (`<kind>.options`)."""


class OHSDK(Scaffold):
    name = "ohsdk"
    summary = "OpenHands-SDK agent with an image-mounted runtime"
    Options = OHSDKOptions
    ready = frozenset()
    pending = "the OpenHands-SDK scaffold is registered but not built yet (it follows the rollouts issue #3)"
