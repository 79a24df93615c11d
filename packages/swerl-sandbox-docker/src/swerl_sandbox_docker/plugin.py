"""Entry point: registers the docker Sandbox component."""

from __future__ import annotations

from swerl import hookimpl
from swerl.components import Register


@hookimpl
def swerl_register_sandboxes(register: Register) -> None:
    from swerl_sandbox_docker.component import DockerSandbox

    register(DockerSandbox)
