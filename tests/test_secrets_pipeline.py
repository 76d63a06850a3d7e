"""Secrets never leave: a planted corpus through ``seeds extract`` and ``generate`` (CLI, fake
endpoint that records every request body and leaks a token in its replies)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FakeEndpoint
from secrets_corpus import DATASET_PLANTED, DATASET_ROWS, KEEP, LEAK, PLANTED, write_corpus


def synth(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    return subprocess.run([sys.executable, "-m", "synth", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def leaks(paths: list[Path], texts: list[str], values: list[str]) -> list[tuple[str, str]]:
    """(where, value) for every planted value found in a file (bytes, any encoding we write,
    JSON-escaped too) or in captured output."""
    found = []
    blobs = [(str(p), p.read_bytes()) for p in paths] + \
        [(f"output{i}", t.encode()) for i, t in enumerate(texts)]
    for value in values:
        needles = {value.encode(), json.dumps(value)[1:-1].encode()}
        for where, blob in blobs:
            if any(n in blob for n in needles):
                found.append((where, value[:12]))
    return found


def files_under(*dirs: Path) -> list[Path]:
    return [p for d in dirs for p in d.rglob("*") if p.is_file()]


@pytest.mark.slow  # four CLI runs: ~10 s on an idle machine
def test_planted_secrets_never_leave(tmp_path: Path,
                                     fake_server: Callable[..., FakeEndpoint]) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    bodies = tmp_path / "bodies.jsonl"
    fake = fake_server(extra=["--bodies", str(bodies), "--leak", LEAK])
    ex = synth("seeds", "extract", str(corpus), "--run-dir", str(run), "--mode", "file")
    assert ex.returncode == 0, ex.stderr
    gen = synth("generate", "--task", "codegen", "--run-dir", str(run), "--base-url",
                fake.base_url, "--max-rounds", "1")
    assert gen.returncode == 0, gen.stderr
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in DATASET_ROWS), encoding="utf-8")
    run2 = tmp_path / "run-evol"
    evol = synth("generate", "--task", "evol", "--input", str(data), "--run-dir", str(run2),
                 "--base-url", fake.base_url, "--no-discriminator")
    assert evol.returncode == 0, evol.stderr

    values = [v for _, v, _ in PLANTED] + [v for _, v in DATASET_PLANTED] + [LEAK]
    outputs = [ex.stdout, ex.stderr, gen.stdout, gen.stderr, evol.stdout, evol.stderr]
    assert bodies.exists() and bodies.stat().st_size > 0
    assert leaks(files_under(run, run2) + [bodies], outputs, values) == []
    # Everything was there to leak: the endpoint saw the redacted code and the replies came
    # back with the token (now a placeholder), kept and rejected alike.
    sent = bodies.read_text(encoding="utf-8")
    assert "<API_KEY>" in sent and "<PRIVATE_KEY>" in sent and "<EMAIL>" in sent
    rejects = (run / "rejects.jsonl").read_text(encoding="utf-8")
    assert "<API_KEY>" in rejects

    # Look-alikes were left alone.
    seeds = (run / "seeds.jsonl").read_text(encoding="utf-8")
    for keep in KEEP:
        assert json.dumps(keep)[1:-1] in seeds, keep

    # Each planted value is counted under its kind (extraction counts and provenance).
    manifest = json.loads((run / "seeds.manifest.json").read_text())["counts"]
    want = Counter(kind for kind, _, _ in PLANTED)
    got = {k.removeprefix("secret_"): v for k, v in manifest.items() if k.startswith("secret_")}
    assert got == dict(want)
    stats = json.loads((run / "stats.json").read_text())["secrets"]
    assert stats["found"]["seeds"] == dict(sorted(want.items()))
    assert stats["found"]["replies"]["github_token"] >= 1
    card = (run / "dataset" / "README.md").read_text(encoding="utf-8")
    assert "## Secrets and personal data" in card and "| github_token |" in card
    stats2 = json.loads((run2 / "stats.json").read_text())["secrets"]
    assert stats2["found"]["input"] == dict(Counter(k for k, _ in DATASET_PLANTED))

    # A redacted Python seed still parses.
    for line in seeds.splitlines():
        row = json.loads(line)
        if row["lang"] == "python":
            ast.parse(row["seed"])


def test_drop_mode_leaves_seeds_out(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "clean.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    run = tmp_path / "run"
    ex = synth("seeds", "extract", str(corpus), "--run-dir", str(run), "--mode", "file",
               "--secrets", "drop")
    assert ex.returncode == 0, ex.stderr
    seeds = [json.loads(x) for x in (run / "seeds.jsonl").read_text().splitlines()]
    assert [s["provenance"]["path"] for s in seeds] == ["clean.py"]
    counts = json.loads((run / "seeds.manifest.json").read_text())["counts"]
    assert counts["drop_secrets"] == 6


def test_off_and_allow_keep_text(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    for args, changed in ((["--secrets", "off"], False),
                          (["--secrets-allow", "*/settings.py"], True)):
        run = tmp_path / ("run" + str(len(args)) + args[0])
        ex = synth("seeds", "extract", str(corpus), "--run-dir", str(run), "--mode", "file",
                   *args)
        assert ex.returncode == 0, ex.stderr
        seeds = {json.loads(x)["provenance"]["path"]: json.loads(x)["seed"]
                 for x in (run / "seeds.jsonl").read_text().splitlines()}
        assert "<PASSWORD>" not in seeds["app/settings.py"]
        assert ("<API_KEY>" in seeds["web/client.js"]) is changed
