"""The docker Sandbox: its options, and what works today."""

from __future__ import annotations

from swerl.components import ComponentOptions, Sandbox


class DockerSandboxOptions(ComponentOptions):
    """Options of the docker sandbox (`<kind>.options`)."""


class DockerSandbox(Sandbox):
    name = "docker"
    summary = "Harbor's docker environment on the local engine, no egress"
    Options = DockerSandboxOptions
    ready = frozenset()
    pending = "running trials in Docker arrives with the rollouts issue (#3)"
