"""The command line as a user runs it: real subprocesses, real exit codes, real files."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FakeEndpoint

SECRET = "sk-test-secret-value-123"


# Timing tests count LLM requests only: sandbox executions (verify + mutants) would shift
# when the signal lands on a loaded machine.
NO_EXEC = ("--verify", "off")


def synth(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL",)}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "synth", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd)


def one_red_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def corpus_seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeds file from a small real corpus: this repository's synth package."""
    out = tmp_path_factory.mktemp("seeds")
    src = Path(__file__).parents[1] / "synth"
    proc = synth("seeds", "extract", str(src), "--run-dir", str(out), "--per-file", "3")
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout
    return out / "seeds.jsonl"


def test_help_is_fast_and_lists_commands() -> None:
    t0 = time.monotonic()
    proc = synth("--help")
    assert proc.returncode == 0
    for cmd in ("generate", "seeds", "serve", "prompts"):
        assert cmd in proc.stdout
    assert time.monotonic() - t0 < 10


def test_bad_path_and_bad_options(tmp_path: Path) -> None:
    one_red_line(synth("seeds", "extract", str(tmp_path / "nope"), "--run-dir", str(tmp_path)),
                 "does not exist")
    one_red_line(synth("seeds", "extract", "--min-lines", "9", "--max-lines", "3",
                       "--run-dir", str(tmp_path)), "--min-lines")
    one_red_line(synth("generate", "--concurrency", "0", "--base-url", "http://127.0.0.1:1/v1",
                       "--run-dir", str(tmp_path)), "--concurrency")
    one_red_line(synth("generate", "--task", "nope", "--run-dir", str(tmp_path)), "unknown task")
    one_red_line(synth("generate", "--seeds", str(tmp_path / "none.jsonl"),
                       "--run-dir", str(tmp_path)), "does not exist")
    one_red_line(synth("generate", "--answer-format", "xml", "--run-dir", str(tmp_path)),
                 "--answer-format")


def test_unreachable_endpoint(tmp_path: Path, corpus_seeds: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    proc = synth("generate", "--base-url", url, "--seeds", str(corpus_seeds),
                 "--run-dir", str(tmp_path))
    one_red_line(proc, "cannot reach", url)
    debug = synth("--debug", "generate", "--base-url", url, "--seeds", str(corpus_seeds),
                  "--run-dir", str(tmp_path))
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_401_and_unknown_model(tmp_path: Path, corpus_seeds: Path,
                               fake_server: Callable[..., FakeEndpoint]) -> None:
    fake = fake_server(api_key="sk-right")
    proc = synth("generate", "--base-url", fake.base_url, "--seeds", str(corpus_seeds),
                 "--run-dir", str(tmp_path / "a"), env={"OPENAI_API_KEY": "sk-wrong"})
    one_red_line(proc, "API key")
    proc = synth("generate", "--base-url", fake.base_url, "--seeds", str(corpus_seeds),
                 "--model", "nope", "--run-dir", str(tmp_path / "b"),
                 env={"OPENAI_API_KEY": "sk-right"})
    one_red_line(proc, "'nope'", "fake-model")


def test_generate_writes_a_loadable_dataset_without_secrets(
        tmp_path: Path, corpus_seeds: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    fake = fake_server(api_key=SECRET)
    run = tmp_path / "run"
    proc = synth("generate", "--base-url", fake.base_url, "--seeds", str(corpus_seeds),
                 "--num", "12", "--run-dir", str(run), "--concurrency", "4",
                 env={"OPENAI_API_KEY": SECRET})
    assert proc.returncode == 0, proc.stderr
    import datasets

    ds = datasets.load_dataset(str(run / "dataset"), split="train")
    assert ds.num_rows == 12
    for col in ("id", "task", "instruction", "response", "lang", "seed", "provenance", "model",
                "template", "template_hash"):
        assert col in ds.column_names
    assert set(ds["task"]) == {"codegen"} and set(ds["model"]) == {"fake-model"}
    assert all(p["path"] and p["file_sha256"] for p in ds["provenance"])
    stats = json.loads((run / "stats.json").read_text())
    # one generator and one discriminator request per record
    assert stats["kept"] == 12 and stats["llm"]["requests"] == 24
    assert stats["llm"]["tokens_in"] == 240 and stats["stages"]["generate:codegen"]["in"] == 12
    assert "wall_time_s" in stats
    config = json.loads((run / "config.json").read_text())
    assert config["LLMConfig"]["model"] == "fake-model"
    assert (run / "rejects.jsonl").exists()
    for path in run.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path

    again = synth("generate", "--base-url", fake.base_url, "--seeds", str(corpus_seeds),
                  "--num", "12", "--run-dir", str(run), env={"OPENAI_API_KEY": SECRET})
    assert again.returncode == 0, again.stderr
    assert len(fake.requests()) == 24  # a finished run rerun sends nothing
    assert json.loads((run / "stats.json").read_text())["llm"]["cache_hits"] == 24


def _cached(run: Path) -> int:
    try:
        with sqlite3.connect(f"file:{run / 'store.sqlite'}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_resume_after_sigkill_matches_uninterrupted_run(
        tmp_path: Path, corpus_seeds: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    n = 40
    args = ["--seeds", str(corpus_seeds), "--num", str(n), "--concurrency", "4"]
    clean_fake = fake_server(delay=0.0)
    clean = tmp_path / "clean"
    assert synth("generate", "--base-url", clean_fake.base_url, "--run-dir", str(clean),
                 *args).returncode == 0

    fake = fake_server(delay=0.15)
    run = tmp_path / "killed"
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    proc = subprocess.Popen([sys.executable, "-m", "synth", "generate", "--base-url",
                             fake.base_url, "--run-dir", str(run), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _cached(run) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cached_at_kill = _cached(run)
    sent_before = len(fake.requests())
    assert 10 <= cached_at_kill < 2 * n, "the kill must land mid-run"

    resumed = synth("generate", "--base-url", fake.base_url, "--run-dir", str(run), *args)
    assert resumed.returncode == 0, resumed.stderr
    sent_after = fake.requests()[sent_before:]
    # Only what was not cached is sent again, and nothing the uninterrupted run did not send:
    # the example memory renders the very same prompts after a resume.
    needed = clean_fake.requests()
    assert set(fake.requests()) == set(needed)
    assert len(sent_after) == len(needed) - cached_at_kill
    stats = json.loads((run / "stats.json").read_text())
    # Every lookup the resumed run made and did not send was a cache hit. Two records can ask
    # the very same request: the second is then a hit in both runs (the first request goes
    # alone and answers are journaled before use), so hits can exceed what the kill left.
    clean_llm = json.loads((clean / "stats.json").read_text())["llm"]
    lookups = clean_llm["requests"] + clean_llm.get("cache_hits", 0)
    assert stats["llm"]["cache_hits"] == lookups - len(sent_after) >= cached_at_kill

    def rows(path: Path) -> list[str]:
        return (path / "dataset" / "jsonl" / "train.jsonl").read_text().splitlines()

    assert rows(run) == rows(clean)
    assert len(rows(run)) == n


def test_ctrl_c_keeps_what_finished(tmp_path: Path, corpus_seeds: Path,
                                    fake_server: Callable[..., FakeEndpoint]) -> None:
    fake = fake_server(delay=0.2)
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    proc = subprocess.Popen([sys.executable, "-m", "synth", "generate", "--base-url",
                             fake.base_url, "--run-dir", str(run), "--seeds", str(corpus_seeds),
                             "--num", "40", "--concurrency", "2", *NO_EXEC], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _cached(run) < 8 and time.monotonic() < deadline:  # 2 requests per record
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    stats = json.loads((run / "stats.json").read_text())
    assert stats["interrupted"] is True
    kept = (run / "dataset" / "jsonl" / "train.jsonl").read_text().splitlines()
    # a response cached just before the signal may not have reached the results yet; the
    # rerun below picks it up from the cache
    assert 1 <= len(kept) == stats["kept"] <= _cached(run) < 40
    rerun = synth("generate", "--base-url", fake.base_url, "--run-dir", str(run), "--seeds",
                  str(corpus_seeds), "--num", "40", "--concurrency", "2", *NO_EXEC)
    assert rerun.returncode == 0, rerun.stderr
    stats = json.loads((run / "stats.json").read_text())
    assert stats["kept"] == 40 and stats["llm"]["cache_hits"] >= len(kept)
