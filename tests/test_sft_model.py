"""The warm-started CPU policy (scripts/make_sft_model.py): its data, its loss, its recorder's
scripted policy, and (e2e) real multi-turn claude-code runs driven by the model it builds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from swerl.fake_policy import Dialogue, FakePolicy, NoScript
from swerl.gateway.parsers import parse_hermes
from swerl.testing import docker_ready, free_ports, need

ROOT = Path(__file__).resolve().parents[1]


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "make_sft_model", ROOT / "scripts/make_sft_model.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_sft_model"] = module
    spec.loader.exec_module(module)
    return module


sft = load_script()


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny model's tokenizer as the gateway loads it (built into a temp folder if needed)."""
    from transformers import AutoTokenizer

    path = ROOT / "models" / "tiny-qwen2"
    if not (path / "tokenizer_config.json").is_file():
        path = tmp_path_factory.mktemp("model") / "tiny-qwen2"
        script = ROOT / "scripts" / "make_tiny_model.py"
        subprocess.run([sys.executable, str(script), str(path)], check=True, timeout=600)
    return AutoTokenizer.from_pretrained(str(path))


def example(mask: list[int], prompt_len: int = 3) -> Any:
    response = [100 + i for i in range(len(mask))]
    return sft.Example("t", list(range(10, 10 + prompt_len)), response, mask, 1.0)


# -- data and masking -------------------------------------------------------------------------


def test_labels_are_the_sampled_ids_and_nothing_else() -> None:
    ex = example([1, 1, 0, 0, 0, 1, 1, 1, 0, 1])
    ids, labels = sft.token_labels(ex.prompt_ids, ex)
    assert ids == ex.prompt_ids + ex.response_ids
    assert labels[:3] == [-100] * 3  # the prompt
    trained = [i for i, lab in enumerate(labels) if lab != -100]
    assert [ids[i] for i in trained] == [
        t for t, m in zip(ex.response_ids, ex.loss_mask, strict=True) if m
    ]
    assert all(labels[i] == ids[i] for i in trained)
    assert ex.turns() == [(0, 2), (5, 8), (9, 10)]


def test_collate_pads_without_attention_or_loss() -> None:
    rows = [([1, 2, 3, 4], [-100, -100, 3, 4]), ([5, 6], [-100, 6])]
    batch = sft.collate(rows, pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4], [5, 6, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 3, 4], [-100, 6, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


def tiny_model() -> Any:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    return Qwen2ForCausalLM(config).float()


def test_loss_is_cross_entropy_on_the_mask1_positions_only() -> None:
    """The batch loss (shared prefix run once) equals a plain forward pass per row scored at
    exactly the positions whose id was sampled (mask 1), and at no other."""
    import torch
    import torch.nn.functional as F

    model = tiny_model()
    shared = [5, 6, 7, 8, 9, 10]
    examples = [
        sft.Example("t", [*shared, 20], [21, 22, 23, 24], [1, 1, 0, 1]),
        sft.Example("t", [*shared, 30], [31, 32], [0, 1]),
    ]
    rows = [sft.token_labels(ex.prompt_ids, ex) for ex in examples]
    assert sft.shared_prefix(rows) == len(shared) - 1
    loss = sft.sft_loss(model, rows, pad_id=0)

    terms = []
    for ex in examples:
        ids = ex.prompt_ids + ex.response_ids
        logits = model(input_ids=torch.tensor([ids])).logits[0]
        for i, (t, m) in enumerate(zip(ex.response_ids, ex.loss_mask, strict=True)):
            if m:
                pos = len(ex.prompt_ids) + i
                terms.append(F.cross_entropy(logits[pos - 1 : pos], torch.tensor([t])))
    assert len(terms) == 4
    assert abs(loss.item() - torch.stack(terms).mean().item()) < 1e-5
    # Counting an observation id as trained changes the loss: the mask is what decides.
    unmasked = [
        sft.token_labels(
            ex.prompt_ids, sft.Example("t", ex.prompt_ids, ex.response_ids, [1] * len(ex.loss_mask))
        )
        for ex in examples
    ]
    assert abs(sft.sft_loss(model, unmasked, pad_id=0).item() - loss.item()) > 1e-3


def test_a_few_steps_lower_the_loss_on_the_sampled_ids() -> None:
    model = tiny_model()
    examples = [
        sft.Example("a", [1, 2, 3, 4], [40, 41, 2, 7, 8, 42, 2], [1, 1, 1, 0, 0, 1, 1], 1.0),
        sft.Example("b", [1, 2, 3, 5], [50, 51, 2], [1, 1, 1], 0.0),
    ]
    res = sft.train(
        model, examples, None, steps=30, lr=1e-2, batch_size=2, seed=0, pad_id=0, warmup=2
    )
    assert res.steps == 30
    assert res.losses[-1] < res.losses[0] / 4


# -- the scripted conversations ---------------------------------------------------------------


def test_scripted_turns_are_hermes_tool_calls_the_gateway_reads_back() -> None:
    convs = sft.conversations(sorted(sft.TASKS))
    assert len(convs) == len(sft.TASKS) * sft.branches_per_task()
    for conv in convs:
        script = sft.TASKS[conv["task"]]
        *calls, final = conv["replies"]
        commands = []
        for text in calls:
            parsed = parse_hermes(text)
            assert not parsed.malformed and parsed.content is None, text
            (call,) = parsed.tool_calls
            assert call.name == "Bash" and set(call.arguments) == {"command"}
            commands.append(call.arguments["command"])
        assert commands[0].startswith("cat ") and script.files[0] in commands[0]
        assert commands[1] == (script.right if conv["right"] else script.wrong)
        assert commands[2] == sft.TEST
        for _, text in final["when"]:
            parsed = parse_hermes(text)
            assert not parsed.tool_calls and parsed.content == text
        assert conv["match"] == f"`{script.files[0]}`"
    # Each task's right and wrong fix differ, so sampling picks between outcomes.
    assert all(s.right != s.wrong for s in sft.TASKS.values())


def test_tool_calls_are_written_as_the_chat_template_renders_them(tok: Any) -> None:
    """What the model learns to write is byte for byte what the template renders for the call,
    so a re-rendered history shows the model its own turns unchanged."""
    command = sft.TASKS["fix-slugify"].right  # quotes and backslashes survive JSON both ways
    msgs = [
        {"role": "user", "content": "fix it"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "Bash", "arguments": {"command": command}}}],
        },
    ]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert "<|im_start|>assistant\n" + sft.tool_call(command) + "<|im_end|>" in text


def chatml(turns: list[tuple[str, str]]) -> str:
    return "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns) + (
        "<|im_start|>assistant\n"
    )


def test_dialogue_follows_each_conversation_and_alternates_branches() -> None:
    script = sft.TASKS["fix-add"]
    dialogue = Dialogue.from_json({"conversations": sft.conversations(["fix-add", "fix-evens"])})
    task = "Fix the bug in `/app/calc.py`."
    read = sft.tool_call(f"cat {script.files[0]}")
    assert dialogue.reply(chatml([("user", task)])) == read
    # After the read, the two conversations branch: they alternate.
    after_read = [("user", task), ("assistant", read), ("user", "<tool_response>\ncode\n")]
    fixes = [dialogue.reply(chatml(after_read)) for _ in range(4)]
    assert fixes == [sft.tool_call(script.right), sft.tool_call(script.wrong)] * 2
    # The agent re-serialises the call (key order, spacing): still the same conversation.
    reserialised = '<tool_call>\n{"arguments": {"command": "%s"}, "name": "Bash"}\n</tool_call>'
    history = [
        *after_read,
        ("assistant", reserialised % script.wrong.replace('"', '\\"')),
        ("user", "<tool_response>\n(Bash completed with no output)\n</tool_response>"),
    ]
    assert dialogue.reply(chatml(history)) == sft.tool_call(sft.TEST)
    # The last answer reads the latest observation.
    ran = [*history, ("assistant", sft.tool_call(sft.TEST))]
    ok = chatml([*ran, ("user", "<tool_response>\nOK\n</tool_response>")])
    failed = chatml([*ran, ("user", "<tool_response>\nFAILED (failures=1)\n</tool_response>")])
    assert dialogue.reply(ok) == "The tests pass now."
    assert dialogue.reply(failed) == "The tests still fail."
    # A prompt no conversation continues is refused, not answered at random.
    with pytest.raises(NoScript):
        dialogue.reply(chatml([("user", "Fix the bug in `/app/unknown.py`.")]))
    with pytest.raises(NoScript):
        dialogue.reply(chatml([*after_read, ("assistant", sft.tool_call("rm -rf /app"))]))


def test_dialogue_rejects_malformed_scripts() -> None:
    with pytest.raises(ValueError, match="conversations"):
        Dialogue.from_json({"turns": []})
    with pytest.raises(ValueError, match=r"replies\[0\]"):
        Dialogue.from_json({"conversations": [{"match": "x", "replies": [{"if": 1}]}]})


def test_fake_policy_answers_with_the_dialogue_and_refuses_unscripted_prompts(tok: Any) -> None:
    import asyncio

    import aiohttp

    def encode(text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False))

    def decode(ids: list[int]) -> str:
        return str(tok.decode(ids, skip_special_tokens=False))

    dialogue = Dialogue.from_json({"conversations": sft.conversations(["fix-add"])})
    fake = FakePolicy(
        eos_token_id=tok.eos_token_id, decode=decode, encode=encode, dialogue=dialogue
    )
    prompt = encode(chatml([("user", "Fix the bug in `/app/calc.py`.")]))
    body = {"prompt": prompt, "max_tokens": 64, "return_token_ids": True, "logprobs": 1}
    other = {**body, "prompt": encode(chatml([("user", "hello")]))}

    async def scenario() -> tuple[dict[str, Any], int, str]:
        async with fake.serve() as url, aiohttp.ClientSession() as http:
            async with http.post(f"{url}/v1/completions", json=body) as resp:
                assert resp.status == 200
                choice = (await resp.json())["choices"][0]
            async with http.post(f"{url}/v1/completions", json=other) as resp:
                return choice, resp.status, (await resp.json())["error"]["message"]

    choice, status, message = asyncio.run(scenario())
    want = [*encode(sft.tool_call("cat /app/calc.py")), tok.eos_token_id]
    assert choice["token_ids"] == want
    assert len(choice["logprobs"]["token_logprobs"]) == len(want)
    assert status == 400 and "no scripted conversation" in message


# -- dates and the stamp ----------------------------------------------------------------------


def test_dates_change_only_the_date(tok: Any) -> None:
    text = chatml(
        [("user", "<system-reminder>\nToday's date is 2026-11-23.\n</system-reminder>\nX")]
    )
    ids = list(tok(text, add_special_tokens=False)["input_ids"])
    dates = sft.Dates(tok, seed=0)
    shifted = [dates.shift(ids) for _ in range(5)]
    texts = {tok.decode(s, skip_special_tokens=False) for s in shifted}
    assert len(texts) > 1
    for t in texts:
        before, _, after = text.partition("2026-11-23")
        assert t.startswith(before) and t.endswith(after)
    no_date = list(tok("no reminder here", add_special_tokens=False)["input_ids"])
    assert dates.shift(no_date) == no_date


def test_stamp_tracks_what_the_recordings_depend_on(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    (tasks / "fix-add").mkdir(parents=True)
    (tasks / "fix-add" / "instruction.md").write_text("Fix `/app/calc.py`.")
    config = tmp_path / "c.yaml"
    scaffold = {"name": "claude-code", "options": {"tools": ["Bash"]}}
    config.write_text(yaml.safe_dump({"tasks": {"path": str(tasks)}, "scaffold": scaffold}))
    base = tmp_path / "base"
    base.mkdir()
    (base / sft.BASE_STAMP).write_text('{"seed": 0}')
    args = sft.argparse.Namespace(
        base=base, config=config, seed=0, steps=5, lr=1e-3, batch=1, right_share=0.5
    )
    first = sft.stamp_for(args)
    # The recordings' own share leaves the stamp as it was before the option existed.
    assert "right_share" not in first
    assert sft.stamp_for(args) == first
    (tasks / "fix-add" / "instruction.md").write_text("Fix `/app/calc.py` please.")
    second = sft.stamp_for(args)
    assert second["inputs"] != first["inputs"]
    config.write_text(
        yaml.safe_dump(
            {"tasks": {"path": str(tasks)}, "scaffold": {**scaffold, "options": {"bare": True}}}
        )
    )
    assert sft.stamp_for(args)["inputs"] != second["inputs"]
    args.steps = 6
    assert sft.stamp_for(args)["steps"] == 6
    args.right_share = 0.3
    assert sft.stamp_for(args)["right_share"] == 0.3


def test_right_share_repeats_the_wrong_fixes() -> None:
    right = [sft.Example(f"t{i}", [1], [2], [1], 1.0) for i in range(2)]
    wrong = [sft.Example(f"t{i}", [1], [3], [1], 0.0) for i in range(2)]
    assert sft.weighted(right + wrong, 0.5) == right + wrong
    for share, per_right, per_wrong in [(0.3, 3, 7), (0.2, 1, 4), (0.25, 1, 3)]:
        out = sft.weighted(right + wrong, share)
        assert [out.count(e) for e in right + wrong] == [per_right] * 2 + [per_wrong] * 2
        assert sum(e.reward == 1.0 for e in out) / len(out) == pytest.approx(share)
    with pytest.raises(SystemExit, match="--right-share"):
        sft.weighted(right, 1.0)


# -- end to end: the built model drives claude-code ---------------------------------------------


def tool_uses(transcript: Path) -> int:
    """Tool calls claude-code really made in one trial (its own stream-json transcript)."""
    n = 0
    for line in transcript.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        content = (
            (event.get("message") or {}).get("content")
            if event.get("type") == "assistant"
            else None
        )
        if isinstance(content, list):
            n += sum(1 for part in content if part.get("type") == "tool_use")
    return n


def test_turn_accuracy_reports_each_tasks_fix_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task whose right fix the model never writes shows right 0 on its fix turn, even when
    the batch's average looks fine (the weak start's fix-clamp and fix-mean-empty did)."""

    def two_branches(task: str, prompt: list[int]) -> list[Any]:
        read, obs, right, wrong = [10, 11], [50], [20, 21], [30, 31]
        return [
            sft.Example(task, prompt, read + obs + fix, [1, 1, 0, 1, 1], reward)
            for fix, reward in ((right, 1.0), (wrong, 0.0))
        ]

    examples = two_branches("easy", [1, 2, 3]) + two_branches("hard", [4, 5, 6])
    answers = {
        (1, 2, 3, 10, 11, 50): [[20, 21], [20, 21], [30, 31], [99]],  # right 2 of 3 valid
        (4, 5, 6, 10, 11, 50): [[30, 31], [99], [99], [98]],  # only the wrong fix is written
    }

    def fake_sample(model: Any, prompt: list[int], n: int, *a: Any) -> list[list[int]]:
        return answers.get(tuple(prompt), [[10, 11]] * n)  # the first turn: always valid

    monkeypatch.setattr(sft, "sample", fake_sample)
    report = sft.turn_accuracy(None, examples, n=4, seed=0, eos=2)
    assert report["turn1_valid"] == 1.0
    assert report["turn2_valid"] == 0.5  # (3/4 + 1/4) / 2
    assert report["fix_turn_by_task"] == {
        "easy": {"valid": 0.75, "right": 0.667},
        "hard": {"valid": 0.25, "right": 0.0},
    }


@pytest.mark.e2e
@pytest.mark.docker
@pytest.mark.slow
def test_sft_model_drives_claude_code_through_several_tool_calls(
    tmp_path: Path, runs_dir: Path
) -> None:
    model = ROOT / "models" / "tiny-qwen2-sft"
    need(not docker_ready(), docker_ready())
    need((ROOT / ".venv-policy/bin/python").exists(), "no .venv-policy (run `make setup`)")
    need((model / sft.STAMP).is_file(), "no models/tiny-qwen2-sft (run `make setup`)")
    proxy, gateway, policy = free_ports(3)
    # The prompts must be the ones the model was trained on: the smoke config's scaffold.
    config = yaml.safe_load((ROOT / "configs/smoke_cpu.yaml").read_text())
    config["run"] = {"name": "sft-e2e", "output_dir": str(runs_dir)}
    config["model"] = {**config["model"], "path": str(model)}
    config["tasks"] = {"path": str(ROOT / "tasks"), "include": ["fix-add", "fix-evens"]}
    config["rollout"] = {**config["rollout"], "max_concurrent_samples": 2}
    config["ports"] = {"proxy": proxy, "gateway": gateway, "policy": policy}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "LITELLM_MASTER_KEY": "sk-sft-e2e-not-secret"}
    swerl = Path(sys.executable).parent / "swerl"
    out = subprocess.run(
        [str(swerl), "rollout", "--config", str(path), "-n", "2", "--verify-logprobs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (run_dir,) = runs_dir.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["trials"] == 4
    assert summary["exactness"] == 1.0
    assert summary["logprob_check"]["max_abs_diff"] < 1e-4
    calls = [tool_uses(t) for t in sorted(run_dir.glob("trials/*/agent/claude-code.jsonl"))]
    assert len(calls) == 4
    assert max(calls) >= 2, f"tool calls per trial: {calls}"
