"""The swerl gateway: OpenAI chat completions in front of a token-in/token-out policy backend.

LiteLLM (``hosted_vllm`` provider) sends each agent turn here. The gateway renders the prompt
ids itself, asks the backend to continue them, parses tool calls from the sampled text and
records ``(prompt_ids, response_ids, loss_mask, logprobs)`` per trial, keyed by the
``x-swerl-trial`` header (else claude-code's ``x-claude-code-session-id``); LiteLLM forwards
both. The rollout reads a trial's samples with ``GET /sessions/{id}`` and frees them with
``DELETE``. Request headers carry keys (LiteLLM forwards ``x-api-key``), so none is ever logged.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from swerl.gateway.backend import BackendError, PolicyBackend, SamplingParams
from swerl.gateway.openai import SSE_DONE, Reply, error_body, sse
from swerl.gateway.parsers import get_parser
from swerl.gateway.render import ChatRenderer, RequestError, normalise_messages, normalise_tools
from swerl.gateway.session import Session
from swerl.gateway.settings import GatewaySettings

log = logging.getLogger("swerl.gateway")

#: Headers that name the session (trial), in order of preference.
SESSION_HEADERS = ("x-swerl-trial", "x-claude-code-session-id")
MAX_BODY = 64 * 1024 * 1024  # claude-code sends ~64 KB of tools per turn, plus the history


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> web.Response:
        body = error_body(self.message, status=self.status, code=self.code)
        return web.json_response(body, status=self.status)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


class Stats:
    """Counters for ``GET /stats``; latencies of the last 10,000 calls."""

    def __init__(self) -> None:
        self.started = time.time()
        self.requests = 0
        self.ok = 0
        self.errors: Counter[str] = Counter()
        self.sampled_tokens = 0
        self.observation_tokens = 0
        self.stitched_calls = 0
        self.samples = 0
        self.stitch_breaks = 0
        self.malformed_tool_calls = 0
        self.sessions_expired = 0
        self.closed_trained = 0  # trained/matched ids of sessions already collected
        self.closed_matched = 0
        self.overhead_ms: deque[float] = deque(maxlen=10_000)
        self.backend_ms: deque[float] = deque(maxlen=10_000)

    def to_json(self, sessions: dict[str, Session]) -> dict[str, Any]:
        trained, matched = self.closed_trained, self.closed_matched
        for s in sessions.values():
            t, m = s.token_counts()
            trained, matched = trained + t, matched + m
        over, back = list(self.overhead_ms), list(self.backend_ms)
        return {
            "uptime_s": round(time.time() - self.started, 1),
            "sessions_open": len(sessions),
            "sessions_expired": self.sessions_expired,
            "requests": self.requests,
            "ok": self.ok,
            "errors": dict(self.errors),
            "samples": self.samples,
            "stitched_calls": self.stitched_calls,
            "stitch_breaks": self.stitch_breaks,
            "malformed_tool_calls": self.malformed_tool_calls,
            "sampled_tokens": self.sampled_tokens,
            "observation_tokens": self.observation_tokens,
            "exactness": matched / trained if trained else None,
            "latency_ms": {
                "calls": len(over),
                "gateway_overhead_p50": percentile(over, 0.5),
                "gateway_overhead_p99": percentile(over, 0.99),
                "backend_p50": percentile(back, 0.5),
                "backend_p99": percentile(back, 0.99),
            },
        }


def session_key(headers: Any) -> str:
    for name in SESSION_HEADERS:
        value = headers.get(name)
        if value:
            return str(value)
    raise HttpError(
        400,
        "missing_session_header",
        f"missing session header: send {SESSION_HEADERS[0]} (one id per trial) or "
        f"{SESSION_HEADERS[1]}; the swerl gateway records tokens per session",
    )


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        renderer: ChatRenderer,
        backend: PolicyBackend,
    ) -> None:
        self.settings = settings
        self.renderer = renderer
        self.backend = backend
        self.parser = get_parser(settings.tool_parser)
        self.sessions: dict[str, Session] = {}
        self.stats = Stats()
        # One thread: renders keep the event loop free, and the tokenizer is used by one
        # thread at a time.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="swerl-render")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/stats", self.get_stats)
        app.router.add_get("/sessions/{key}", self.get_session)
        app.router.add_delete("/sessions/{key}", self.pop_session)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _app: web.Application) -> None:
        await self.backend.close()
        self._pool.shutdown(wait=False)

    # -- small endpoints ----------------------------------------------------------------------

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "model": self.settings.served_name, "backend": self.backend.name}
        )

    async def models(self, _request: web.Request) -> web.Response:
        card = {
            "id": self.settings.served_name,
            "object": "model",
            "created": int(self.stats.started),
            "owned_by": "swerl",
            "max_model_len": self.settings.max_model_len,
        }
        return web.json_response({"object": "list", "data": [card]})

    async def get_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats.to_json(self.sessions))

    async def get_session(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["key"])
        if session is None:
            return HttpError(404, "unknown_session", "no such session").response()
        return web.json_response(session.to_json())

    async def pop_session(self, request: web.Request) -> web.Response:
        session = self.sessions.pop(request.match_info["key"], None)
        if session is None:
            return HttpError(404, "unknown_session", "no such session").response()
        trained, matched = session.token_counts()
        self.stats.closed_trained += trained
        self.stats.closed_matched += matched
        return web.json_response(session.to_json())

    # -- chat completions ---------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        self.stats.requests += 1
        try:
            key = session_key(request.headers)
        except HttpError as exc:
            self.stats.errors[exc.code] += 1
            return exc.response()
        session = self.sessions.get(key)
        if session is None:
            self._expire_idle()
            session = self.sessions[key] = Session(key)
        session.last_used = time.monotonic()
        async with session.lock:
            session.calls += 1
            call = session.calls
            try:
                body = await read_json(request)
                reply = await self._turn(session, call, body, started)
            except HttpError as exc:
                session.fail(call, exc.code, exc.status, exc.message)
                self.stats.errors[exc.code] += 1
                log.warning("session %s call %d failed: %s: %s", key, call, exc.code, exc.message)
                return exc.response()
        want_ids = bool(body.get("return_token_ids"))
        if not body.get("stream"):
            return web.json_response(reply.to_json(token_ids=want_ids))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        try:
            await resp.prepare(request)
            for chunk in reply.chunks(include_usage=include_usage, token_ids=want_ids):
                await resp.write(sse(chunk))
            await resp.write(SSE_DONE)
            await resp.write_eof()
        except ConnectionResetError:
            # The turn is recorded already; the agent will retry or the trial ends.
            log.warning("session %s call %d: client went away while streaming", key, call)
        return resp

    def _expire_idle(self) -> None:
        cutoff = time.monotonic() - self.settings.session_ttl_s
        for key in [k for k, v in self.sessions.items() if v.last_used < cutoff]:
            if not self.sessions[key].lock.locked():
                del self.sessions[key]
                self.stats.sessions_expired += 1
                log.warning("session %s expired uncollected", key)

    async def _turn(
        self, session: Session, call: int, body: dict[str, Any], started: float
    ) -> Reply:
        s = self.settings
        try:
            if body.get("n") not in (None, 1):
                raise RequestError("n must be 1: the gateway samples one answer per call")
            messages = normalise_messages(body.get("messages"))
            tools = normalise_tools(body.get("tools"))
            requested = body.get("max_completion_tokens") or body.get("max_tokens")
            if requested is not None and (not isinstance(requested, int) or requested < 1):
                raise RequestError("max_tokens must be a positive integer")
            loop = asyncio.get_running_loop()
            t0 = time.perf_counter()
            plan = await loop.run_in_executor(
                self._pool, session.plan, self.renderer, messages, tools
            )
            render_ms = (time.perf_counter() - t0) * 1000
        except RequestError as exc:
            raise HttpError(400, "bad_request", str(exc)) from exc

        n = len(plan.prompt_ids)
        room = s.max_model_len - n
        if room < 1:
            raise HttpError(
                400,
                "context_length_exceeded",
                f"This model's maximum context length is {s.max_model_len} tokens. However, "
                f"your messages resulted in {n} tokens. Please reduce the length of the messages.",
            )
        max_tokens = min(requested, room) if requested else room
        temperature, top_p = s.temperature, s.top_p
        if s.honor_request_sampling:
            temperature = body.get("temperature", temperature)
            top_p = body.get("top_p", top_p)
        sampling = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p)

        t1 = time.perf_counter()
        try:
            gen = await self.backend.generate(plan.prompt_ids, sampling, session=session.key)
        except BackendError as exc:
            raise HttpError(exc.status, exc.cause, str(exc)) from exc
        backend_ms = (time.perf_counter() - t1) * 1000

        parsed = self.parser(self.renderer.response_text(gen.token_ids))
        if parsed.tool_calls:
            finish = "tool_calls"
        else:
            finish = "length" if gen.finish_reason == "length" else "stop"
        opened_after_others = plan.segment is None and bool(session.segments)
        seg, turn = session.commit(
            plan,
            self.renderer,
            messages,
            tools,
            gen.token_ids,
            gen.logprobs,
            gen.finish_reason,
            parsed,
            call=call,
            render_ms=render_ms,
            backend_ms=backend_ms,
        )
        reply = Reply(
            model=str(body.get("model") or s.served_name),
            parsed=parsed,
            finish_reason=finish,
            prompt_ids=plan.prompt_ids,
            sampled_ids=gen.token_ids,
            logprobs=gen.logprobs,
            tokens=self.renderer.tokens(gen.token_ids) if body.get("logprobs") else None,
        )
        total_ms = (time.perf_counter() - started) * 1000
        self.stats.ok += 1
        self.stats.stitched_calls += int(turn.stitched)
        self.stats.samples += int(not turn.stitched)
        self.stats.stitch_breaks += int(opened_after_others)
        self.stats.sampled_tokens += len(gen.token_ids)
        self.stats.observation_tokens += len(plan.obs_ids)
        self.stats.malformed_tool_calls += int(parsed.malformed)
        self.stats.overhead_ms.append(total_ms - backend_ms)
        self.stats.backend_ms.append(backend_ms)
        log.info(
            "session %s call %d: %s sample %d, prompt %d (+%d obs), sampled %d, %s%s, "
            "backend %.0f ms, gateway %.1f ms",
            session.key,
            call,
            "extends" if turn.stitched else "new",
            session.segments.index(seg),
            n,
            len(plan.obs_ids),
            len(gen.token_ids),
            finish,
            ", malformed tool call" if parsed.malformed else "",
            backend_ms,
            total_ms - backend_ms,
        )
        return reply


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise HttpError(400, "bad_request", f"request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise HttpError(400, "bad_request", "request body must be a JSON object")
    return body


@asynccontextmanager
async def serve_app(app: web.Application, port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (port 0: a free one) and yield its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def setup_logging() -> None:
    """One line per call on stdout (the boot supervisor keeps it in logs/gateway.log)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def run(settings: GatewaySettings, *, backend: PolicyBackend | None = None) -> None:
    """Serve in the foreground until interrupted."""
    from swerl.gateway.backend import VLLMHttpBackend

    setup_logging()
    get_parser(settings.tool_parser)  # an unknown name fails before the slow tokenizer load
    log.info("loading the tokenizer of %s", settings.model_path)
    t0 = time.perf_counter()
    renderer = ChatRenderer.from_pretrained(
        settings.model_path, trust_remote_code=settings.trust_remote_code
    )
    log.info("tokenizer ready in %.1f s; stop ids %s", time.perf_counter() - t0, renderer.stop_ids)
    backend = backend or VLLMHttpBackend(
        settings.backend_url, settings.served_name, timeout_s=settings.backend_timeout_s
    )
    gateway = Gateway(settings, renderer, backend)
    log.info(
        "serving %s on http://127.0.0.1:%d/v1 -> %s (%s), max_model_len %d, parser %s",
        settings.served_name,
        settings.port,
        settings.backend_url,
        backend.name,
        settings.max_model_len,
        settings.tool_parser,
    )
    web.run_app(
        gateway.app(),
        host="127.0.0.1",
        port=settings.port,
        print=None,
        access_log=None,
        handle_signals=True,
    )
