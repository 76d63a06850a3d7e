"""`synth run synth.toml`: the whole pipeline from one file, resumable, rerunning only what
changed, and the same dataset as the commands chained by hand."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import FakeEndpoint
from typer.testing import CliRunner, Result

from synth.cli import app
from synth.errors import ConfigError
from synth.flow import EXAMPLE, Flow, cli_overrides

pytestmark = pytest.mark.slow  # loads the real embedder for coreset and selection

CORPUS = Path(__file__).parents[1] / "synth" / "seeds"


def synth(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def config(path: Path, base_url: str, run_dir: Path, budget: int = 5,
           embed: bool = True) -> Path:
    """A small pipeline; without ``embed`` no step loads the embedding model."""
    coreset = "[coreset]\nk = 12" if embed else ""
    select = f"[select]\nbudget = {budget}" if embed else ""
    path.write_text(f"""
[run]
run_dir = "{run_dir}"
[sources]
paths = ["{CORPUS}"]
[seeds]
mode = "function"
{coreset}
[generate]
num = 8
[llm]
base_url = "{base_url}"
concurrency = 4
[score]
[decontam]
benchmarks = ["humaneval"]
{select}
""")
    return path


def lines(dataset: Path) -> list[str]:
    return (dataset / "jsonl" / "train.jsonl").read_text().splitlines()


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeEndpoint]:
    from conftest import start_fake

    endpoint = start_fake(tmp_path_factory.mktemp("fake"))
    yield endpoint
    endpoint.proc.terminate()
    endpoint.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def flow_run(fake: FakeEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("flow")
    cfg = config(tmp / "synth.toml", fake.base_url, tmp / "run")
    res = synth("run", str(cfg))
    assert res.exit_code == 0, res.output
    return cfg


def test_run_equals_the_commands_chained_by_hand(flow_run: Path, fake: FakeEndpoint,
                                                 tmp_path: Path) -> None:
    run = Path(str(flow_run.parent / "run"))
    before = len(fake.requests())
    hand = tmp_path / "hand"
    cfg = tmp_path / "synth.toml"  # the same tables, read by each command
    cfg.write_text(flow_run.read_text())
    steps = [
        ("seeds", "extract", str(CORPUS), "--run-dir", str(hand), "--config", str(cfg)),
        ("seeds", "select", "--k", "12", "--run-dir", str(hand)),
        ("generate", "--seeds", str(hand / "coreset.jsonl"), "--run-dir", str(hand),
         "--config", str(cfg)),
        ("score", "--run-dir", str(hand), "--config", str(cfg)),
        ("decontam", "-i", str(hand / "dataset"), "--run-dir", str(hand)),
        ("select", "--run-dir", str(hand), "--config", str(cfg)),
    ]
    for args in steps:
        res = synth(*args)
        assert res.exit_code == 0, (args, res.output)
    assert lines(hand / "dataset") == lines(run / "dataset")
    # The fake's instructions are near-duplicates, so how many survive τ depends on the corpus
    # (this package's own seeds/ folder): at most the budget, and what select kept.
    kept = len(lines(run / "dataset"))
    select = json.loads((run / "steps" / "select" / "stats.json").read_text())
    assert 1 <= kept <= 5 and select["stages"]["select"]["out"] == kept
    # every answer the chained commands needed was already in... their own cache: the fake
    # endpoint saw each distinct request once per run directory
    sent = fake.requests()[before:]
    assert len(sent) == len(set(sent))


def test_the_final_card_covers_every_step(flow_run: Path) -> None:
    """RUN/dataset's card is the flow's, not the last step's: sources, coreset, model, the
    loop and verification, decontamination, selection, every step's rejects."""
    run = flow_run.parent / "run"
    card = (run / "dataset" / "README.md").read_text()
    for heading in ("## Sources and seeds", "## Model and sampling", "## Execution verification",
                    "## Decontamination", "## Rejects by stage and reason", "## Reproduce"):
        assert heading in card, heading
    assert f"`{CORPUS}`" in card and "coreset (KCenterGreedy" in card
    assert "Checked against humaneval" in card and "Not run on this dataset" not in card
    assert "| generate:codegen |" in card and "| select |" in card
    stats = json.loads((run / "stats.json").read_text())
    assert stats["kept"] == len(lines(run / "dataset"))
    steps_rejects = sum(len((p).read_text().splitlines())
                        for p in (run / "steps").glob("*/rejects.jsonl"))
    assert len((run / "rejects.jsonl").read_text().splitlines()) == steps_rejects
    assert sorted(p.name for p in (run / "dataset" / "plots").glob("*.png")) == [
        "languages_tasks.png", "lengths.png", "rejects.png", "scores.png"]


def test_changing_the_budget_reruns_only_selection(flow_run: Path, fake: FakeEndpoint) -> None:
    run = flow_run.parent / "run"
    markers = {p.parent.name: p.stat().st_mtime_ns for p in (run / "steps").glob("*/step.json")}
    before = len(fake.requests())
    res = synth("run", str(flow_run), "--budget", "3")
    assert res.exit_code == 0, res.output
    assert "select: kept 3" in res.output
    for step in ("seeds", "coreset", "generate", "score", "decontam"):
        assert f"{step}: done (unchanged)" in res.output
    after = {p.parent.name: p.stat().st_mtime_ns for p in (run / "steps").glob("*/step.json")}
    assert [n for n in after if after[n] != markers.get(n)] == ["select"]
    assert len(fake.requests()) == before
    assert len(lines(run / "dataset")) == 3
    res = synth("run", str(flow_run), "--budget", "3")  # nothing changed: nothing runs
    assert "select: done (unchanged)" in res.output


def cached_answers(run: Path) -> int:
    try:
        with sqlite3.connect(f"file:{run / 'store.sqlite'}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_killed_run_resumes_without_repeating_a_request(
        tmp_path: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    slow = fake_server(delay=0.5)
    cfg = config(tmp_path / "synth.toml", slow.base_url, tmp_path / "run", embed=False)
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    proc = subprocess.Popen([sys.executable, "-m", "synth", "run", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    # (a run that ends on its own, e.g. on an error, ends the wait too: no 10-minute stall)
    while cached_answers(tmp_path / "run") < 4 and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cached = cached_answers(tmp_path / "run")
    sent_before = len(slow.requests())
    assert 4 <= cached < 16, "the kill must land mid-generate"
    assert not (tmp_path / "run" / "dataset").exists()
    done = subprocess.run([sys.executable, "-m", "synth", "run", str(cfg)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    sent = slow.requests()
    # Every answer stored before the kill is served from the cache: only the rest is sent
    # (a request in flight at the kill had no stored answer, so it is sent once more).
    assert len(sent[sent_before:]) == len(set(sent)) - cached
    assert len(lines(tmp_path / "run" / "dataset")) == 8


def test_config_errors_and_the_example(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown table"):
        Flow({"verification": {}})
    with pytest.raises(ConfigError, match="unknown key"):
        Flow({"llm": {"api_key": "sk-nope"}})
    with pytest.raises(ConfigError, match="TABLE.KEY=VALUE"):
        cli_overrides(["budget=3"])
    assert cli_overrides(["select.tau=0.8", "generate.task=mix"], num=4) == {
        "select": {"tau": 0.8}, "generate": {"task": "mix", "num": 4}}
    res = synth("init", str(tmp_path / "synth.toml"))
    assert res.exit_code == 0
    assert (tmp_path / "synth.toml").read_text() == EXAMPLE
    flow = Flow.load(tmp_path / "synth.toml")
    assert [s.name for s in flow.steps] == ["seeds", "coreset", "generate", "score",
                                            "decontam", "select"]
    assert synth("init", str(tmp_path / "synth.toml")).exit_code == 1
    plan = flow.plan().render()
    assert "generate" in plan and "requests" in plan
    demo = Flow.load(Path(__file__).parents[1] / "examples" / "demo.toml",
                     cli_overrides(None, num=20, run_dir=tmp_path / "demo"))
    assert demo.generate.num == 20 and demo.run_dir == tmp_path / "demo"
