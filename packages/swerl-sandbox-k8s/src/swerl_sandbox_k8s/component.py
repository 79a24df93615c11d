"""The k8s Sandbox: its options, and what works today."""

from __future__ import annotations

from swerl.components import ComponentOptions, Sandbox


class K8sSandboxOptions(ComponentOptions):
    """Options of the k8s sandbox (`<kind>.options`)."""


class K8sSandbox(Sandbox):
    name = "k8s"
    summary = "Harbor on a Kubernetes cluster, a NetworkPolicy allowing only the proxy"
    Options = K8sSandboxOptions
    ready = frozenset()
    pending = "running trials on Kubernetes is not built yet (it follows the rollouts issue #3)"
