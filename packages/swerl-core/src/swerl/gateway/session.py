"""Per-trial token records: turns stitched into samples without re-tokenizing anything.

One session is one trial (one agent run). Each model call either *extends* an open segment or
starts a new one; each segment becomes one training sample:

* ``prompt_ids``: the prompt of the segment's first call, as rendered;
* ``response_ids``: every sampled id, with the observation ids between calls (template glue,
  tool results, the next generation prompt) in between;
* ``loss_mask``: 1 for sampled ids, 0 for observation ids; ``logprobs``: the sampled logprob,
  0.0 for observation ids.

A call extends a segment when its messages are that segment's last messages, plus the assistant
message the gateway returned, plus new messages. The new prompt is then the segment's ids so far
(the sampled ids verbatim) + the template's glue after the end-of-turn token + the render of the
new messages; both renders are checked to be token-prefix-stable, else the call starts a new
segment (a stitch break). Anything else (edited history, compaction, a side call) starts a new
segment too. Exactness, the fraction of trained ids equal to the ids the backend sampled, is
recomputed from the per-call records, not assumed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from swerl.gateway.parsers import Parsed
from swerl.gateway.render import ChatRenderer


@dataclass
class Turn:
    """One model call that produced tokens."""

    call: int  # the session's call counter (failed calls count too)
    stitched: bool
    prompt_len: int
    obs_len: int  # observation ids placed before this call's sampled ids (0 on a first turn)
    sampled_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    tool_calls: int
    malformed: bool
    render_ms: float
    backend_ms: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Tail:
    """What a segment's next call must start with to extend it."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    gen_prompt_ids: list[int]  # render(messages, add_generation_prompt=True)
    reply: dict[str, Any]  # comparable form of the assistant message the gateway returned
    ended_with_stop: bool  # the sampled ids end with a stop id (else the glue adds one)


@dataclass
class Segment:
    prompt_ids: list[int]
    response_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    tail: Tail | None = None

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + self.response_ids

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_ids": self.prompt_ids,
            "response_ids": self.response_ids,
            "loss_mask": self.loss_mask,
            "logprobs": self.logprobs,
            "turns": [t.to_json() for t in self.turns],
        }


@dataclass
class Plan:
    """The prompt for one call: which segment it extends (``None``: a new one) and how."""

    prompt_ids: list[int]
    gen_prompt_ids: list[int]
    segment: Segment | None
    obs_ids: list[int]
    break_reason: str | None  # why no open segment could be extended (None: nothing was open)


def comparable_assistant(content: str | None, calls: list[tuple[str, Any]]) -> dict[str, Any]:
    """An assistant message reduced to what the model produced: text (whitespace-trimmed) and
    tool calls by name and parsed arguments; ids and formatting that clients rewrite are ignored.
    """
    return {"content": (content or "").strip(), "tool_calls": calls}


def comparable_from_message(msg: dict[str, Any]) -> dict[str, Any]:
    calls = [
        (c["function"]["name"], c["function"]["arguments"]) for c in msg.get("tool_calls") or []
    ]
    return comparable_assistant(msg.get("content"), calls)


def comparable_from_parsed(parsed: Parsed) -> dict[str, Any]:
    return comparable_assistant(parsed.content, [(c.name, c.arguments) for c in parsed.tool_calls])


class Session:
    """The records of one trial. Calls are serialised by ``lock`` (one conversation at a time)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.created = time.time()
        self.last_used = time.monotonic()
        self.lock = asyncio.Lock()
        self.calls = 0
        self.segments: list[Segment] = []
        self.stitch_breaks = 0
        self.break_reasons: list[str] = []
        self.malformed_tool_calls = 0
        self.failures: list[dict[str, Any]] = []

    # -- planning (pure; runs in the render thread) --------------------------------------------

    def plan(
        self,
        renderer: ChatRenderer,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
    ) -> Plan:
        reason = None
        for seg in reversed(self.segments):  # the latest first: side calls open their own
            if seg.tail is None:
                continue
            found = extend(renderer, seg, messages, tools)
            if isinstance(found, Plan):
                return found
            reason = reason or found
        full = renderer.render(messages, tools, add_generation_prompt=True)
        return Plan(full, full, None, [], reason)

    # -- recording ----------------------------------------------------------------------------

    def commit(
        self,
        plan: Plan,
        renderer: ChatRenderer,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        sampled: list[int],
        logprobs: list[float],
        finish_reason: str,
        parsed: Parsed,
        *,
        call: int,
        render_ms: float,
        backend_ms: float,
    ) -> tuple[Segment, Turn]:
        """Append one successful call to its segment (a new one unless the plan extends one)."""
        seg = plan.segment
        if seg is None:
            if self.segments:
                self.stitch_breaks += 1
                self.break_reasons.append(plan.break_reason or "no open segment")
            seg = Segment(prompt_ids=list(plan.prompt_ids))
            self.segments.append(seg)
        else:
            seg.response_ids += plan.obs_ids
            seg.loss_mask += [0] * len(plan.obs_ids)
            seg.logprobs += [0.0] * len(plan.obs_ids)
        seg.response_ids += sampled
        seg.loss_mask += [1] * len(sampled)
        seg.logprobs += logprobs
        turn = Turn(
            call=call,
            stitched=plan.segment is not None,
            prompt_len=len(plan.prompt_ids),
            obs_len=len(plan.obs_ids),
            sampled_ids=list(sampled),
            logprobs=list(logprobs),
            finish_reason=finish_reason,
            tool_calls=len(parsed.tool_calls),
            malformed=parsed.malformed,
            render_ms=round(render_ms, 3),
            backend_ms=round(backend_ms, 3),
        )
        seg.turns.append(turn)
        seg.tail = Tail(
            messages=messages,
            tools=tools,
            gen_prompt_ids=plan.gen_prompt_ids,
            reply=comparable_from_parsed(parsed),
            ended_with_stop=bool(sampled) and sampled[-1] in renderer.stop_ids,
        )
        self.malformed_tool_calls += int(parsed.malformed)
        return seg, turn

    def fail(self, call: int, code: str, status: int, message: str) -> None:
        """Record a failed call; ``code`` is the failure cause (the error body's ``code``)."""
        self.failures.append(
            {"call": call, "code": code, "status": status, "message": message, "t": time.time()}
        )

    # -- reporting ----------------------------------------------------------------------------

    def token_counts(self) -> tuple[int, int]:
        """(trained ids, trained ids equal to the sampled id at the same place)."""
        trained = matched = 0
        for seg in self.segments:
            mask1 = [t for t, m in zip(seg.response_ids, seg.loss_mask, strict=True) if m == 1]
            sampled = [t for turn in seg.turns for t in turn.sampled_ids]
            trained += len(mask1)
            matched += sum(a == b for a, b in zip(mask1, sampled, strict=False))
        return trained, matched

    def exactness(self) -> float | None:
        trained, matched = self.token_counts()
        return matched / trained if trained else None

    def to_json(self) -> dict[str, Any]:
        return {
            "session": self.key,
            "created": self.created,
            "calls": self.calls,
            "samples": [s.to_json() for s in self.segments],
            "stitch_breaks": self.stitch_breaks,
            "break_reasons": self.break_reasons,
            "malformed_tool_calls": self.malformed_tool_calls,
            "exactness": self.exactness(),
            "failures": self.failures,
        }


def extend(
    renderer: ChatRenderer,
    seg: Segment,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
) -> Plan | str:
    """The plan that extends ``seg`` with ``messages``, or the reason it cannot."""
    tail = seg.tail
    assert tail is not None
    n = len(tail.messages)
    if tools != tail.tools:
        return "tools changed"
    if len(messages) < n + 2:
        return "no new messages after the assistant turn"
    if messages[:n] != tail.messages:
        return "history edited"
    reply = messages[n]
    if reply.get("role") != "assistant" or comparable_from_message(reply) != tail.reply:
        return "assistant turn differs from the one returned"
    through, full = renderer.encode(
        [
            renderer.template(messages[: n + 1], tools, add_generation_prompt=False),
            renderer.template(messages, tools, add_generation_prompt=True),
        ]
    )
    if through[: len(tail.gen_prompt_ids)] != tail.gen_prompt_ids:
        return "template renders the generation prompt differently inside a turn"
    body = through[len(tail.gen_prompt_ids) :]
    ends = [i for i, t in enumerate(body) if t in renderer.stop_ids]
    if not ends:
        return "template puts no end-of-turn token after the assistant turn"
    k = ends[-1]
    # The sampled ids replace the rendered assistant turn up to its end-of-turn token; what the
    # template puts after it (e.g. a newline) is glue the model did not sample.
    glue = body[k + 1 :] if tail.ended_with_stop else body[k:]
    if full[: len(through)] != through:
        return "template renders earlier turns differently once more messages follow"
    obs = glue + full[len(through) :]
    return Plan(seg.ids + obs, full, seg, obs, None)
