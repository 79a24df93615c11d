"""The docker Sandbox: its options, and the runner of its trials."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from swerl.components import ComponentOptions, Sandbox

if TYPE_CHECKING:
    from swerl_sandbox_docker.runner import DockerTrialRunner

HARBOR_VERSION = "0.25.0"
DEFAULT_IMAGE = "swerl-base:latest"


class DockerSandboxOptions(ComponentOptions):
    """Options of the docker sandbox (`sandbox.options`): limits per trial container."""

    base_image: str = Field(
        DEFAULT_IMAGE,
        min_length=1,
        description="Local image that trial images build on; `make setup` builds it (no registry "
        "is reachable, so nothing is pulled).",
    )
    cpus: float = Field(1.0, gt=0, description="CPU limit per trial container (`--cpus`).")
    memory_mb: int = Field(
        4096, ge=64, description="Memory limit per trial container, in MiB (`--memory`)."
    )
    pids_limit: int = Field(
        1024, ge=16, description="Most processes per trial container (`--pids-limit`)."
    )
    keep_containers: bool = Field(
        False, description="Keep each trial's container after it ends, to debug it."
    )
    network: Literal["none-with-model-socket"] = Field(
        "none-with-model-socket",
        description="`none-with-model-socket`: the container has no network at all (only `lo`); "
        "the model endpoint reaches it through a Unix socket that the host forwards to the "
        "proxy, and a forwarder inside listens on 127.0.0.1. No egress, no other host port.",
    )


class DockerSandbox(Sandbox):
    name = "docker"
    summary = "Harbor's docker environment on the local engine, no egress"
    Options = DockerSandboxOptions
    ready = frozenset({"run"})
    options: DockerSandboxOptions

    def runner(
        self,
        *,
        run_id: str,
        run_dir: Path,
        sock_dir: Path | None = None,
        trials_dir: Path | None = None,
    ) -> DockerTrialRunner:
        """The trial runner of one run (see ``runner.py``); imports Harbor only when it runs."""
        from swerl_sandbox_docker.runner import DockerTrialRunner

        return DockerTrialRunner(
            self.options, run_id=run_id, run_dir=run_dir, sock_dir=sock_dir, trials_dir=trials_dir
        )
