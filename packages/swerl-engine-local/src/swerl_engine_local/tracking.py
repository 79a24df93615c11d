"""Where each step's metrics go besides ``metrics.jsonl``: wandb, when ``logging.wandb.enabled``.

wandb logs online when credentials exist (``WANDB_API_KEY`` or a netrc entry, exactly what
``swerl check`` looks for) and offline otherwise, into ``<run_dir>/wandb/`` (``wandb sync`` uploads
it later). The wandb run id is the swerl run id, so a resumed run continues the same wandb run.
The key is never read or written by swerl; wandb finds it itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal


class WandbSink:
    def __init__(
        self, run_dir: Path, project: str, entity: str | None, config: dict[str, Any]
    ) -> None:
        import wandb

        from swerl.preflight.checks.host import wandb_credentials

        found, _ = wandb_credentials(os.environ)
        wanted = (os.environ.get("WANDB_MODE") or "").lower()
        mode: Literal["online", "offline", "disabled"] = (
            "disabled" if wanted == "disabled" else "online" if found and not wanted else "offline"
        )
        if wanted in ("online", "run") and found:
            mode = "online"
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(
            project=project,
            entity=entity,
            dir=str(run_dir),
            id=run_dir.name,
            name=run_dir.name,
            resume="allow",
            mode=mode,
            config=config,
            # wandb's service can take long to start on a loaded machine (the default is 90 s).
            settings=wandb.Settings(init_timeout=300),
        )
        self.mode = mode

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


def open_sinks(run_dir: Path, config: Any, resolved: dict[str, Any]) -> list[WandbSink]:
    w = config.logging.wandb
    return [WandbSink(run_dir, w.project, w.entity, resolved)] if w.enabled else []
