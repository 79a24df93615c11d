"""Harbor's Docker environment with secrets kept off the host's process list.

Harbor runs each command in the sandbox as ``docker compose exec -e NAME=VALUE ... main bash -c
...``, so the agent's API key (the run's proxy key) is readable in ``ps`` by any user of the host
for as long as the agent runs. ``docker compose exec -e NAME`` (no value) takes the value from
the compose process's own environment instead, which only the same user (and root) can read.
This subclass rewrites every secret-looking ``-e NAME=VALUE`` of an exec that way; the rest stay
as Harbor writes them. The runner selects it with Harbor's ``import_path``.
"""

from __future__ import annotations

import re
from typing import Any

from harbor.environments.docker.docker import DockerEnvironment

#: Variable names whose values are passed through the environment, never on a command line.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)

#: Options of ``docker compose exec`` that Harbor writes before the service name, each with
#: one value.
_EXEC_OPTIONS = ("-w", "-e", "-u")


def hide_secrets(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """(``args`` with ``-e NAME`` for each secret ``-e NAME=VALUE``, the secrets' values).

    Only the options before the service name are read: what follows is the command that runs
    in the sandbox, which may hold ``-e`` of its own. Anything but ``exec`` is returned as is.
    """
    if not args or args[0] != "exec":
        return list(args), {}
    out, secrets = [args[0]], {}
    i = 1
    while i + 1 < len(args) and args[i] in _EXEC_OPTIONS:
        option, value = args[i], args[i + 1]
        if option == "-e" and "=" in value:
            name, _, secret = value.partition("=")
            if SECRET_NAME.search(name):
                secrets[name] = secret
                value = name
        out += [option, value]
        i += 2
    return out + list(args[i:]), secrets


class SwerlDockerEnvironment(DockerEnvironment):
    """Harbor's ``DockerEnvironment``; secrets reach ``docker compose exec`` by name only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The secrets' values, put into the environment of every compose process it starts.
        self._swerl_secrets: dict[str, str] = {}

    def _compose_env_vars(self, include_os_env: bool = True) -> dict[str, str]:
        env = super()._compose_env_vars(include_os_env)
        env.update(self._swerl_secrets)
        return env

    async def _run_docker_compose_command(
        self, command: list[str], *args: Any, **kwargs: Any
    ) -> Any:
        command, secrets = hide_secrets(command)
        for name, value in secrets.items():
            # One value per name and sandbox (the run's key): concurrent execs must agree,
            # since they share this environment.
            if self._swerl_secrets.setdefault(name, value) != value:
                raise ValueError(
                    f"{name} changed within one sandbox; swerl passes secrets to docker "
                    "compose by name and needs one value per trial"
                )
        return await super()._run_docker_compose_command(command, *args, **kwargs)
