"""The ohsdk Scaffold: its options, and what works today.

The agent is OpenHands-SDK. Its runtime (a Python ≥ 3.12 environment with openhands-sdk) is built
on the host and mounted into the task image, so that task images need no Python of their own.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from pydantic import Field, field_validator

from swerl.components import ComponentOptions, Scaffold

SDK_VERSION = "1.58.2"
MIN_PYTHON = (3, 12)
#: An exact PEP 440 release (no ranges): 1.58.2, 1.59.0rc1, 1.58.2.post1.
EXACT_VERSION = re.compile(r"^\d+(\.\d+)+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


class OHSDKOptions(ComponentOptions):
    """Options of the ohsdk scaffold (`scaffold.options`)."""

    version: str = Field(
        SDK_VERSION,
        description="Exact version of openhands-sdk (and openhands-tools) in the mounted runtime.",
    )
    max_iterations: int | None = Field(
        None,
        ge=1,
        description="Agent iterations (one model call each) per trial; null uses "
        "`rollout.max_turns`, which caps it anyway.",
    )
    tools: list[str] = Field(
        default_factory=lambda: ["terminal", "file_editor"],
        description="openhands-tools tool names given to the agent (`terminal`, `file_editor`, "
        "`task_tracker`, ...). Browser tools cannot work: sandboxes have no egress.",
    )
    runtime_mount: str = Field(
        "/opt/swerl/ohsdk",
        description="Absolute path inside the sandbox where the runtime is mounted (read-only).",
    )
    runtime_python: str | None = Field(
        None,
        description="Python ≥ 3.12 that builds the runtime (a name on PATH or a path); null uses "
        "the interpreter that runs swerl.",
    )

    @field_validator("version")
    @classmethod
    def exact_version(cls, value: str) -> str:
        if not EXACT_VERSION.match(value):
            raise ValueError(f"{value!r} is not an exact release; pin one such as {SDK_VERSION!r}")
        return value

    @field_validator("runtime_mount")
    @classmethod
    def absolute_mount(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not path.is_absolute() or path == PurePosixPath("/") or ".." in path.parts:
            raise ValueError(
                f"{value!r} must be an absolute path below / inside the sandbox, "
                "e.g. /opt/swerl/ohsdk"
            )
        return str(path)


class OHSDK(Scaffold):
    name = "ohsdk"
    summary = "OpenHands-SDK agent with an image-mounted runtime"
    Options = OHSDKOptions
    ready = frozenset[str]()
    pending = (
        "the OpenHands-SDK scaffold is registered but not built yet "
        "(it follows the rollouts issue #3)"
    )
