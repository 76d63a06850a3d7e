"""End to end on the embedded real server (llama.cpp + SmolLM2-135M-Instruct)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.e2e

ENV = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_generate_on_embedded_server(tmp_path: Path) -> None:
    seeds_dir = tmp_path / "seeds"
    src = Path(__file__).parents[2] / "synth"
    subprocess.run([sys.executable, "-m", "synth", "seeds", "extract", str(src), "--run-dir",
                    str(seeds_dir)], check=True, env=ENV, capture_output=True)
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "synth", "generate", "--task", "codegen", "--num", "3",
         "--max-tokens", "384", "--seeds", str(seeds_dir / "seeds.jsonl"), "--run-dir", str(run),
         "--no-discriminator"],  # the loop's own e2e tests are in tests/e2e/test_loop_e2e.py
        env=ENV, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((run / "stats.json").read_text())
    assert stats["kept"] + stats["rejected"] == 3
    assert stats["llm"]["requests"] == 3 and stats["llm"]["tokens_out"] > 0
    import datasets

    ds = datasets.load_dataset(str(run / "dataset"), split="train")
    assert ds.num_rows == stats["kept"]
    for row in ds:
        assert row["instruction"].strip() and row["response"].strip()
        assert row["model"] == "smollm2-135m-instruct"
    rejects = [json.loads(line) for line in (run / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == stats["rejected"]
    assert all(r["reason"] and r["raw_output"] is not None for r in rejects)
    config = json.loads((run / "config.json").read_text())
    port = urlsplit(config["LLMConfig"]["base_url"]).port
    # llama.cpp's schema-constrained JSON
    assert config["answer_dialect"]["codegen"]["generator"] == "json_object"
    assert port is not None and not port_open(port)  # the embedded server was stopped


def test_serve_dies_with_synth_even_on_sigkill(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "synth", "serve", "--port", str(port)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()
        assert models["data"][0]["id"] == "smollm2-135m-instruct"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 20
    while port_open(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not port_open(port), "the llama.cpp server outlived a SIGKILLed synth"


def test_embedded_server_killed_mid_run_is_restarted_and_the_run_completes(
        tmp_path: Path) -> None:
    seeds_dir = tmp_path / "seeds"
    src = Path(__file__).parents[2] / "synth" / "llm"
    subprocess.run([sys.executable, "-m", "synth", "seeds", "extract", str(src), "--run-dir",
                    str(seeds_dir)], check=True, env=ENV, capture_output=True)
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "synth", "generate", "--task", "codegen", "--num", "8",
         "--max-tokens", "128", "--concurrency", "2", "--seeds", str(seeds_dir / "seeds.jsonl"),
         "--run-dir", str(run), "--no-discriminator"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    pid_file = run / "server.pid"
    # kill it once it has answered at least one request of the run
    while not (pid_file.exists() and (run / "store.sqlite").exists()
               and _cached_responses(run) >= 1):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    assert "restarting it (1/3)" in err
    stats = json.loads((run / "stats.json").read_text())
    assert stats["kept"] + stats["rejected"] == 8 and stats["left_to_retry"] == 0


def _cached_responses(run: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{run / 'store.sqlite'}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
