"""The train/val parquet verl reads: one row per Harbor task.

verl's ``RLHFDataset`` feeds each row to the agent loop named by its ``agent_name`` column; the
row is the task, not its prompt: swerl's agent loop runs a Harbor trial of the task named in
``extra_info`` and the agent (claude-code) builds its own prompt. Row schema:

- ``prompt``: ``[{"role": "user", "content": <instruction.md>}]``; verl only renders it to drop
  rows longer than ``data.max_prompt_length`` (``filter_overlong_prompts``), the agent never
  sees it;
- ``data_source``: :data:`DATA_SOURCE` (verl groups validation metrics by it);
- ``agent_name``: ``swerl_agent`` (the agent loop registered through ``agent_loop.yaml``);
- ``reward_model``: ``{"style": "harbor", "ground_truth": <task name>}`` (verl's validation
  dump reads ``ground_truth``; the reward itself comes from the task's verifier);
- ``extra_info``: ``{"index", "task", "task_dir" (absolute), "split"}``; ``index`` is verl's
  prompt index.

Nothing here imports verl; pyarrow writes the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swerl_engine_fsdp.overrides import AGENT_LOOP_NAME

if TYPE_CHECKING:
    from swerl.config.load import LoadedConfig
    from swerl.plan import PlanContext

DATA_SOURCE = "swerl/harbor"


def task_row(task_dir: Path, index: int, split: str = "train") -> dict[str, Any]:
    """The dataset row of one Harbor task folder."""
    task_dir = task_dir.resolve()
    instruction = (task_dir / "instruction.md").read_text(errors="replace")
    return {
        "data_source": DATA_SOURCE,
        "agent_name": AGENT_LOOP_NAME,
        "prompt": [{"role": "user", "content": instruction}],
        "reward_model": {"style": "harbor", "ground_truth": task_dir.name},
        "extra_info": {
            "index": index,
            "task": task_dir.name,
            "task_dir": str(task_dir),
            "split": split,
        },
    }


def task_rows(tasks: Iterable[Path], split: str = "train") -> list[dict[str, Any]]:
    return [task_row(t, i, split) for i, t in enumerate(tasks)]


def write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    tmp.replace(path)
    return path


def build_data_files(loaded: LoadedConfig, ctx: PlanContext) -> tuple[Path, Path]:
    """Write the run's train and val parquet (the paths ``overrides.data_files`` plans) from
    the config's task folder, after ``tasks.include`` / ``tasks.exclude``. Both hold the same
    tasks: swerl trains on the tasks' own tests and plans no held-out validation."""
    from swerl.launch import find_tasks
    from swerl_engine_fsdp.overrides import data_files

    tasks = find_tasks(loaded, ctx.resolve(loaded.config.tasks.path))
    train, val = (Path(p) for p in data_files(ctx))
    write_parquet(task_rows(tasks, "train"), train)
    write_parquet(task_rows(tasks, "val"), val)
    return train, val
