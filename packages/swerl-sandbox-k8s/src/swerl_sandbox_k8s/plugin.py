"""Entry point: registers the k8s Sandbox component."""

from __future__ import annotations

from swerl import hookimpl
from swerl.components import Register


@hookimpl
def swerl_register_sandboxes(register: Register) -> None:
    from swerl_sandbox_k8s.component import K8sSandbox

    register(K8sSandbox)
