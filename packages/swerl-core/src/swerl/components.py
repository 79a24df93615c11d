"""Base classes for the components plugins register: scaffolds, sandboxes, engines, filters.

A component is a class with a ``name``, a one-line ``summary`` and an ``Options`` pydantic model
(validated under the component's own config namespace, ``<kind>.options``). Importing a component
class must stay cheap: heavy imports (torch, verl, harbor, kubernetes) go inside methods.

A component whose main feature arrives later says so: ``ready`` lists the capabilities that work
today and ``pending`` says what is missing; asking for anything else raises
:class:`~swerl.errors.NotYetAvailable` with that text. Nothing pretends to work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from swerl.errors import NotYetAvailable, UserError

if TYPE_CHECKING:
    import torch

    from swerl.config.load import LoadedConfig
    from swerl.config.schema import SwerlConfig
    from swerl.filtering import FilterBatch
    from swerl.plan import PlanContext, ProcessSpec


class ComponentOptions(BaseModel):
    """Base for a component's options; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class NoOptions(ComponentOptions):
    """This component takes no options."""


class Component:
    """Common part of every registered component."""

    kind: ClassVar[str] = "component"
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type[ComponentOptions]] = NoOptions
    #: Capabilities that work today (see each kind's ``CAPABILITIES``).
    ready: ClassVar[frozenset[str]] = frozenset()
    #: What is missing and where it comes from, shown when a capability is not ready.
    pending: ClassVar[str] = ""
    CAPABILITIES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: ComponentOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()

    @classmethod
    def is_ready(cls, capability: str) -> bool:
        return capability in cls.ready

    @classmethod
    def require(cls, capability: str) -> None:
        """Raise :class:`NotYetAvailable` unless ``capability`` works today."""
        if capability not in cls.CAPABILITIES:
            raise ValueError(f"{cls.kind} components have no capability {capability!r}")
        if not cls.is_ready(capability):
            what = cls.pending or "not implemented"
            raise NotYetAvailable(
                f"{cls.kind} '{cls.name}' cannot {capability} yet: {what}. "
                f"It can: {', '.join(sorted(cls.ready)) or 'nothing but validate its options'}."
            )


@dataclass(frozen=True)
class TrialInfo:
    """What a scaffold needs to know about one trial to configure its agent."""

    run_id: str
    trial_id: str
    #: The model endpoint as the agent sees it inside the sandbox (the forwarded proxy).
    model_url: str
    #: Key the agent presents to the proxy; worthless outside this run (see docs).
    api_key: str = field(repr=False)
    #: Model name the proxy routes to the policy.
    served_name: str
    max_turns: int


@dataclass
class AgentSpec:
    """The agent of one trial, as a sandbox runs it (a Harbor agent config)."""

    import_path: str | None = None
    name: str | None = None
    model_name: str | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)
    kwargs: dict[str, Any] = field(default_factory=dict)


class Scaffold(Component):
    """A coding agent that runs inside a sandbox and talks to the model endpoint."""

    kind = "scaffold"
    CAPABILITIES = ("run",)

    def agent(self, config: SwerlConfig, trial: TrialInfo) -> AgentSpec:
        """The agent a sandbox runs for ``trial``."""
        self.require("run")
        raise NotImplementedError


class Sandbox(Component):
    """Where a trial's container runs."""

    kind = "sandbox"
    CAPABILITIES = ("run",)

    def runner(self, *, run_id: str, run_dir: Path) -> Any:
        """The trial runner of one run: ``async run_trial(task_dir, agent, trial_id=...)``,
        ``cleanup()``, and optionally ``model_forwarder(proxy_port)`` (see swerl.rollout)."""
        self.require("run")
        raise NotImplementedError


class Engine(Component):
    """Turns scored trajectories into policy updates."""

    kind = "engine"
    CAPABILITIES = ("plan", "train")
    #: True when the engine trains on GPUs (enables GPU topology checks).
    uses_gpus: ClassVar[bool] = True

    def plan(self, config: SwerlConfig, ctx: PlanContext | None = None) -> list[ProcessSpec]:
        """The processes a run with this engine starts (runs nothing).

        ``ctx`` carries the run id, run folder, environment and the configured filters.
        """
        self.require("plan")
        raise NotImplementedError

    def proxy_routes(self, config: SwerlConfig) -> list[dict[str, Any]]:
        """Extra LiteLLM ``model_list`` entries for the run's proxy, after the core's own (the
        served name and ``claude-*`` to ``ports.gateway``); e.g. one model name per rollout
        worker's gateway. None by default."""
        return []

    def prepare(self, loaded: LoadedConfig, ctx: PlanContext) -> None:
        """Build the files this engine's plan lists under ``generated`` (e.g. verl's task
        parquet). ``swerl run`` calls it once the run folder exists, before any process starts,
        on a resume too; nothing by default."""

    def collect_metrics(self, run_dir: Path) -> int:
        """Append the steps the trainer finished since the last call to ``metrics.jsonl`` (and
        the run's status), for a trainer that keeps its own per-step records (verl); the number
        of steps added. ``swerl run`` calls it while the trainer runs and once after it exits.
        Nothing by default: the local engine writes ``metrics.jsonl`` itself."""
        return 0

    def checkpoint_model(
        self, run_dir: Path, step: int | None, base_model: Path, out_dir: Path
    ) -> tuple[int, Path]:
        """A model folder a policy server can load (config, tokenizer, weights) holding the
        weights of ``run_dir``'s checkpoint after ``step`` (None: the newest), made under
        ``out_dir`` from ``base_model``'s other files; (the step, the folder). For ``swerl
        eval``; an engine whose checkpoints cannot be served says so."""
        raise UserError(
            f"the {self.name} engine cannot turn its checkpoints into a model folder for "
            "`swerl eval` yet"
        )


class RewardFilter(Component):
    """A transform on scored trajectories before the update (drop, mask, reweight).

    A training loop calls one instance per run, in config order, in two stages (see
    :mod:`swerl.filtering`): :meth:`filter_batch` on the step's trials before advantages, then
    :meth:`token_weights` on the tokens after the trainer's logprobs. Both default to doing
    nothing, so a filter implements only the stage it needs. Capabilities: ``apply`` (a
    training loop runs it), ``plan`` (it has a verl mapping, :meth:`verl_overrides`).
    """

    kind = "filter"
    CAPABILITIES = ("apply", "plan")
    #: Set (to a one-line reason) to ask the loop to checkpoint and stop after this step.
    pause_reason: str | None = None

    def verl_overrides(self, config: SwerlConfig) -> list[str]:
        """Hydra overrides this filter adds to the verl command line (none by default)."""
        return []

    def filter_batch(self, batch: FilterBatch) -> dict[str, float]:
        """Stage 1, before advantages: set ``dropped`` / ``train`` / ``in_group_stats`` on the
        batch's trial items. Returns metrics for the step (none by default)."""
        return {}

    def token_weights(
        self, old_logprob: torch.Tensor, rollout_logprob: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor, dict[str, float]]:
        """Stage 2, after the trainer's logprobs (all ``[batch, resp_len]``, float32; ``mask``
        is 1 on the tokens that train). Returns ``(weights, mask, metrics)``: detached per-token
        weights multiplied into the policy loss (``None``: no weights), the mask the loss should
        use (may only remove tokens), and metrics. Default: no weights, the mask unchanged."""
        return None, mask, {}


KINDS: dict[str, type[Component]] = {
    "scaffold": Scaffold,
    "sandbox": Sandbox,
    "engine": Engine,
    "filter": RewardFilter,
}

Register = Callable[[type[Any]], None]
