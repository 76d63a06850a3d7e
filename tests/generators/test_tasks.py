"""Task set-up: translate's targets, evol's methods and inputs, mix weights, option errors."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from synth.config import GenerateConfig
from synth.errors import ConfigError
from synth.generators import build_tasks, choose_task, get_task, parse_weights
from synth.generators.evol import METHODS, EvolTask, source_record
from synth.generators.parsing import Reject
from synth.generators.translate import TranslateTask, parse_targets
from synth.prompts import Prompts
from synth.records import Record


def seed(text: str = "x = 1", lang: str = "python") -> Record:
    return Record.from_seed(text, lang, {"path": "a.py"})


def test_translate_draws_a_target_other_than_the_source_and_keeps_it() -> None:
    task = TranslateTask(parse_targets("python, Rust,go"))
    assert task.targets == ("python", "rust", "go")
    drawn = Counter()
    for i in range(60):
        rec = task.prepare(seed(f"x = {i}").for_task("translate"), 0)
        assert isinstance(rec, Record)
        drawn[rec.meta["target_lang"]] += 1
        again = task.prepare(seed(f"x = {i}").for_task("translate"), 0)
        assert again.meta["target_lang"] == rec.meta["target_lang"]  # seeded by the record id
    assert set(drawn) == {"rust", "go"}
    only_python = TranslateTask(parse_targets("py"))
    rejected = only_python.prepare(seed().for_task("translate"), 0)
    assert isinstance(rejected, Reject) and rejected.reason == "no_target_language"
    messages = task.messages(task.prepare(seed().for_task("translate"), 0), Prompts(), "json")
    assert "into Rust" in messages[-1]["content"] or "into Go" in messages[-1]["content"]


def test_translate_targets_are_checked() -> None:
    assert parse_targets(None) == ("python", "javascript", "java", "cpp", "rust", "go")
    assert parse_targets("c++,js") == ("cpp", "javascript")
    with pytest.raises(ConfigError, match="klingon"):
        parse_targets("rust,klingon")


def test_evol_records_keep_the_original_and_draw_a_method() -> None:
    row = Record(id="row-1", instruction="Sort a list.", input="[3, 1]", response="sorted(x)",
                 meta={"index": 4, "provenance": {"source": "d.jsonl", "row": 4}})
    rec = source_record(row)
    assert rec.task == "evol" and rec.seed == "Sort a list.\n\n[3, 1]"
    assert rec.meta["evol"]["original"]["response"] == "sorted(x)" and rec.meta["index"] == 4
    task = EvolTask()
    prepared = task.prepare(rec, 5)
    assert isinstance(prepared, Record) and prepared.meta["evol"]["method"] in METHODS
    prompt = task.messages(prepared, Prompts(), "json")[-1]["content"]
    assert "Sort a list." in prompt and METHODS[prepared.meta["evol"]["method"]] in prompt
    methods = {task.prepare(source_record(Record(id=f"r{i}", instruction="q")), 5).meta["evol"][
        "method"] for i in range(40)}
    assert methods == set(METHODS)
    empty = task.prepare(source_record(Record(id="e", instruction="  ")), 5)
    assert isinstance(empty, Reject) and empty.reason == "evol_empty_instruction"


def test_mix_weights() -> None:
    assert parse_weights("codegen=2,summarize=1,translate=1,repair=0") == {
        "codegen": 0.5, "summarize": 0.25, "translate": 0.25}
    assert set(parse_weights(None)) == {"codegen", "summarize", "translate", "repair"}
    for bad, message in [("codegen", "task=weight"), ("evol=1", "run it on its own"),
                         ("nope=1", "not a seed task"), ("codegen=x", "not a number"),
                         ("codegen=-1", "non-negative"), ("codegen=0", "positive")]:
        with pytest.raises(ConfigError, match=message):
            parse_weights(bad)


def test_mix_draws_per_seed_deterministically_by_weight() -> None:
    weights = parse_weights("codegen=0.5,summarize=0.2,translate=0.2,repair=0.1")
    ids = [f"seed-{i}" for i in range(4000)]
    drawn = [choose_task(weights, 0, i) for i in ids]
    assert drawn == [choose_task(weights, 0, i) for i in ids]
    assert drawn != [choose_task(weights, 1, i) for i in ids]
    share = Counter(drawn)
    for name, w in weights.items():
        assert abs(share[name] / len(ids) - w) < 0.03, (name, share)


def test_build_tasks_and_option_errors() -> None:
    tasks, mix = build_tasks("mix", "summarize=1,translate=1", "rust")
    assert set(tasks) == {"summarize", "translate"} and mix == {"summarize": 0.5, "translate": 0.5}
    assert tasks["translate"].targets == ("rust",)
    with pytest.raises(ConfigError, match="--weights only applies"):
        build_tasks("codegen", "codegen=1")
    with pytest.raises(ConfigError, match="--to only applies"):
        build_tasks("summarize", None, "rust")
    with pytest.raises(ConfigError, match="unknown task"):
        get_task("poetry")
    with pytest.raises(ConfigError, match="--input"):
        GenerateConfig(task="evol").validate()
    with pytest.raises(ConfigError, match="evol only"):
        GenerateConfig(task="codegen", input="x.jsonl").validate()
    with pytest.raises(ConfigError, match="--max-rounds"):
        GenerateConfig(max_rounds=0).validate()


@pytest.mark.parametrize(("args", "needle"), [
    (["--task", "mix", "--weights", "evol=1"], "run it on its own"),
    (["--task", "evol"], "--input"),
    (["--task", "translate", "--to", "klingon"], "klingon"),
    (["--task", "summarize", "--memory-policy", "random"], "--memory-policy"),
    (["--task", "summarize", "--memory-seed", "/nonexistent/cases.jsonl"], "does not exist"),
])
def test_cli_option_errors_are_one_red_line(tmp_path: Path, args: list[str], needle: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "synth", "generate", "--run-dir",
                           str(tmp_path / "run"), "--base-url", "http://127.0.0.1:9/v1", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in proc.stderr


def test_prompts_show_renders_every_task_and_its_discriminator() -> None:
    from typer.testing import CliRunner

    from synth.cli import app

    for task in ("codegen", "summarize", "translate", "repair", "evol"):
        for extra in ([], ["--judge"]):
            result = CliRunner().invoke(app, ["prompts", "show", task, "--answer-format", "json",
                                              *extra])
            assert result.exit_code == 0, result.output
            assert ("Rules:" in result.output) == bool(extra)


def test_template_hash_follows_included_and_loop_templates(tmp_path: Path) -> None:
    from synth.generators.loop import template_hash

    task = get_task("summarize")
    base = template_hash(Prompts(), task)
    for part in ("examples", "checklist", "revise"):  # included, included by judge, loop's own
        override = tmp_path / part / "_loop"
        override.mkdir(parents=True)
        (override / f"{part}.j2").write_text("changed\n")
        assert template_hash(Prompts(tmp_path / part), task) != base, part
