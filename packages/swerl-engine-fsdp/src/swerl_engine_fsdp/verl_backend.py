"""The swerl gateway's policy backend on GPU: verl's ``server_manager.generate``.

Token-in/token-out over verl's ``LLMServerClient`` (a Ray actor call into the vLLM replicas, not
HTTP), so verl's load balancer, sticky sessions, partial-rollout resume and weight-version tags
all stay in force. Shapes relied on (verl 0.9.1, ``workers/rollout/replica.py::TokenOutput``):
``token_ids``, ``log_probs`` (one per sampled id when ``sampling_params["logprobs"]`` is true),
``stop_reason`` (``completed`` for both a stop token and the token limit, ``length`` when the
fully-async client hit the budget, ``aborted`` when the replica dropped the request),
``num_preempted``, ``extra_fields`` (``global_steps``, and with the fully-async client
``min_global_steps`` / ``max_global_steps``) and, with rollout router replay (R3, MoE),
``routed_experts``: the experts vLLM chose for every token it ran, ``[tokens, layers, top_k]``.

Routes are big (a long trial's run to tens of MB a call), and each call's routes cover its whole
prompt, so a call's routes replace those of every earlier call of the trial that its prompt
extends (:meth:`TrialCalls.add`): a trial keeps the routes of its last call per sample
(:func:`routes_for`).

Each trial is *opened* before its agent starts (:meth:`VerlBackend.open_trial`): it names the verl
client and verl's sampling parameters for that trial (validation is greedy, training samples), and
collects, per model call, the ``extra_fields`` and stop reason that the agent loop copies into its
outputs. A call for a session that no running trial opened is refused.

Nothing here imports verl: ``TokenOutput`` is read by attribute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from swerl.gateway.backend import BackendError, Generation, SamplingParams

#: verl's sampling keys the backend passes through from the agent loop's ``sampling_params``.
PASSED_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty")
#: ``stop_reason`` values verl uses for a request the replica dropped.
ABORTED = ("aborted", "abort")


class ServerManager(Protocol):
    """verl's ``LLMServerClient`` as the backend uses it."""

    async def generate(
        self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any]
    ) -> Any: ...


@dataclass
class CallRecord:
    """One successful model call of a trial, in call order."""

    token_ids: list[int]
    stop_reason: str | None
    num_preempted: int | None
    #: ``TokenOutput.extra_fields`` as verl returned it (``global_steps``, ...).
    extra_fields: dict[str, Any]
    #: Wall time of the call.
    seconds: float = 0.0
    #: With router replay R3: the prompt and sampled ids the call ran, and vLLM's routes for
    #: them (None once a later call's routes cover them).
    sequence: list[int] | None = None
    routes: Any = None


@dataclass
class TrialCalls:
    """What the backend knows about one open trial."""

    server_manager: ServerManager
    #: verl's sampling parameters for this trial (``temperature``, ``top_p``, ...).
    sampling: dict[str, Any]
    calls: list[CallRecord] = field(default_factory=list)
    aborted: int = 0

    def add(self, call: CallRecord) -> None:
        """Record ``call``; with routes, drop those of the earlier calls its prompt extends."""
        if call.routes is not None and call.sequence is not None:
            for old in self.calls:
                if old.routes is not None and extends(call.sequence, old.sequence):
                    old.routes = old.sequence = None
        self.calls.append(call)


def routes_for(calls: list[CallRecord], ids: list[int], rows: int | None = None) -> Any:
    """The routes of the longest recorded call whose ids start ``ids`` (a sample's prompt and
    whole response), cut to ``rows`` rows (the sample as trained: its response may be cut to
    the rollout's length); None without one (no router replay)."""
    covering = [c for c in calls if c.routes is not None and extends(ids, c.sequence)]
    best = max(covering, key=lambda c: len(c.sequence or ()), default=None)
    return None if best is None else best.routes[: len(ids) if rows is None else rows]


def extends(ids: list[int], prefix: list[int] | None) -> bool:
    """Whether ``ids`` starts with ``prefix`` (a call's prompt and output)."""
    return prefix is not None and len(prefix) <= len(ids) and ids[: len(prefix)] == prefix


class VerlBackend:
    """``PolicyBackend`` over verl's server manager; ``session`` is the trial id, used as verl's
    ``request_id`` so that every call of a trial goes to the same replica (prefix cache)."""

    name = "verl"

    def __init__(self, stop_ids: set[int] | None = None) -> None:
        #: Ids that end a turn; a completed call that ends otherwise at ``max_tokens`` is "length".
        self.stop_ids = set(stop_ids or ())
        self.trials: dict[str, TrialCalls] = {}

    def open_trial(
        self, session: str, server_manager: ServerManager, sampling: dict[str, Any] | None = None
    ) -> None:
        """Accept calls for ``session`` until :meth:`close_trial`."""
        if session in self.trials:
            raise ValueError(f"trial {session} is already open")
        self.trials[session] = TrialCalls(server_manager, dict(sampling or {}))

    def close_trial(self, session: str) -> TrialCalls | None:
        """Stop accepting calls for ``session``; its call records (None: it was not open)."""
        return self.trials.pop(session, None)

    def sampling_params(self, trial: TrialCalls, sampling: SamplingParams) -> dict[str, Any]:
        """verl's per-trial parameters win over the gateway's; the gateway sets the budget."""
        params: dict[str, Any] = {"temperature": sampling.temperature, "top_p": sampling.top_p}
        params |= {k: trial.sampling[k] for k in PASSED_KEYS if k in trial.sampling}
        params["max_tokens"] = sampling.max_tokens
        params["logprobs"] = True  # the sampled ids' logprobs: the trained behaviour policy
        return params

    async def generate(
        self, prompt_ids: list[int], sampling: SamplingParams, *, session: str | None = None
    ) -> Generation:
        trial = self.trials.get(session) if session else None
        if session is None or trial is None:
            raise BackendError(
                f"no trial {session!r} is running in this agent-loop worker: its calls reach the "
                "gateway only while its agent runs (a call after the trial ended, or routed to "
                "another worker's gateway)",
                cause="unknown_session",
                status=404,
            )
        params = self.sampling_params(trial, sampling)
        t0 = time.perf_counter()
        try:
            out = await trial.server_manager.generate(
                session, prompt_ids=list(prompt_ids), sampling_params=params
            )
        except Exception as exc:  # a Ray actor error, a dead replica: the call failed
            raise BackendError(
                f"verl's server manager failed: {type(exc).__name__}: {exc}"[:500],
                cause="backend_error",
            ) from exc
        ids = [int(t) for t in (out.token_ids or [])]
        stop_reason = out.stop_reason
        if stop_reason in ABORTED:
            trial.aborted += 1
            raise BackendError(
                f"verl aborted the generation after {len(ids)} token(s) (the replicas were "
                "paused for a weight update, or the rollout was cut short); nothing of this call "
                "was recorded, sending the same request again resumes the trial",
                cause="backend_aborted",
                status=503,
            )
        logprobs = out.log_probs
        if logprobs is None or len(logprobs) != len(ids):
            n = "no" if logprobs is None else len(logprobs)
            raise BackendError(
                f"verl returned {n} logprobs for {len(ids)} sampled ids; the rollout must "
                "return them (actor_rollout_ref.rollout.calculate_log_probs=True)",
                cause="backend_error",
            )
        extra = dict(out.extra_fields or {})
        seconds = time.perf_counter() - t0
        routes = getattr(out, "routed_experts", None)
        trial.add(
            CallRecord(
                ids,
                stop_reason,
                out.num_preempted,
                extra,
                seconds,
                sequence=[*prompt_ids, *ids] if routes is not None else None,
                routes=routes,
            )
        )
        return Generation(
            token_ids=ids,
            logprobs=[float(x) for x in logprobs],
            finish_reason=self.finish_reason(ids, stop_reason, sampling.max_tokens),
            info={"stop_reason": stop_reason, "extra_fields": extra},
        )

    def finish_reason(self, ids: list[int], stop_reason: str | None, max_tokens: int) -> str:
        """``length`` when the token budget ended the call, else ``stop``.

        vLLM reports both as ``completed`` through verl; a call that used its whole budget and
        does not end with a stop id ran out of tokens.
        """
        if stop_reason == "length":
            return "length"
        if len(ids) >= max_tokens and not (ids and ids[-1] in self.stop_ids):
            return "length"
        return "stop"

    async def close(self) -> None:
        """The gateway's shutdown hook: verl owns the server manager, nothing to release."""
