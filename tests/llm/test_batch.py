"""The Batch API path against the fake files + batches server (tests/fake_openai.py)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FakeEndpoint
from typer.testing import CliRunner, Result

from synth.cli import app
from synth.llm.batch import batch_line, split
from synth.store import RunStore

SRC = Path(__file__).parents[2] / "synth" / "llm"


def cli(*args: str, base_url: str | None = None) -> Result:
    env = {"OPENAI_BASE_URL": base_url}  # None: unset, no endpoint at all
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seeds")
    res = cli("seeds", "extract", str(SRC), "--run-dir", str(out), "--per-file", "1")
    assert res.exit_code == 0, res.output
    return out / "seeds.jsonl"


def gen_args(run: Path, seeds: Path, *extra: str) -> list[str]:
    return ["generate", "--seeds", str(seeds), "--num", "4", "--run-dir", str(run),
            "--model", "fake-model", "--seed", "1", *extra]


def rows(run: Path) -> list[str]:
    return sorted((run / "dataset" / "jsonl" / "train.jsonl").read_text().splitlines())


def test_split_respects_both_limits() -> None:
    lines = [(f"k{i}", batch_line(f"k{i}", {"model": "m", "messages": [
        {"role": "user", "content": "x" * (10 if i != 4 else 500)}]})) for i in range(7)]
    chunks = list(split(lines, max_requests=3, max_bytes=10_000))
    assert [len(c) for c in chunks] == [3, 3, 1]
    chunks = list(split(lines, max_requests=100, max_bytes=400))
    assert sum(len(c) for c in chunks) == 7
    for c in chunks:  # every chunk fits, except a single line larger than the limit alone
        size = sum(len(line) + 1 for _, line in c)
        assert size <= 400 or len(c) == 1


def run_batch_rounds(run: Path, seeds: Path, url: str, toml: Path,
                     retry: bool = False, passes: int = 8) -> list[int]:
    """generate --batch / status / collect until the dataset is written; exit codes seen."""
    codes = []
    for _ in range(passes):
        res = cli(*gen_args(run, seeds, "--batch", "--config", str(toml)), base_url=url)
        codes.append(res.exit_code)
        if res.exit_code == 0:
            return codes
        assert res.exit_code == 3, res.output
        for _ in range(3):  # validating -> in_progress -> completed, one step per retrieve
            assert cli("batch", "status", "--run-dir", str(run), base_url=url).exit_code == 0
        assert cli("batch", "collect", "--run-dir", str(run), base_url=url).exit_code == 0
        if retry:
            assert cli("batch", "submit", "--retry-failed", "--run-dir", str(run),
                       base_url=url).exit_code == 0
            for _ in range(3):
                cli("batch", "status", "--run-dir", str(run), base_url=url)
            cli("batch", "collect", "--run-dir", str(run), base_url=url)
    raise AssertionError(f"no dataset after {passes} passes: {codes}")


@pytest.mark.slow
def test_batch_rounds_equal_a_live_run(tmp_path: Path, seeds: Path,
                                       fake_server: Callable[..., FakeEndpoint]) -> None:
    live_fake = fake_server()
    live = tmp_path / "live"
    res = cli(*gen_args(live, seeds), base_url=live_fake.base_url)
    assert res.exit_code == 0, res.output

    blog = tmp_path / "batch.log"
    fake = fake_server(extra=["--batch-fail-every", "3", "--batch-log", str(blog)])
    toml = tmp_path / "synth.toml"
    toml.write_text("[llm]\nbatch_max_requests = 3\n")
    run = tmp_path / "batch"
    codes = run_batch_rounds(run, seeds, fake.base_url, toml, retry=True)
    assert codes[0] == 3 and codes[-1] == 0
    assert fake.requests() == []  # nothing went live
    assert rows(run) == rows(live)

    # split: 4 first-round requests in files of at most 3
    first = sorted((run / "batch").glob("input-*.jsonl"))
    assert len(first) >= 2 and all(len(p.read_text().splitlines()) <= 3 for p in first)
    for p in first:
        for line in p.read_text().splitlines():
            item = json.loads(line)
            assert item["url"] == "/v1/chat/completions" and len(item["custom_id"]) == 64

    # only failed requests were sent twice, and every request was answered once
    sent = Counter(blog.read_text().split())
    with RunStore(run) as store:
        counts = store.batch_request_counts()
        paid = store.spend_requests()
    assert set(counts) == {"succeeded"}
    assert max(sent.values()) <= 2 and any(v == 2 for v in sent.values())
    assert all(v == 1 for v in paid.values()) and len(paid) == len(sent)

    # a plain generate afterwards is served from the cache: no live call
    res = cli(*gen_args(run, seeds), base_url=fake.base_url)
    assert res.exit_code == 0, res.output
    assert fake.requests() == [] and rows(run) == rows(live)


@pytest.mark.slow
def test_status_survives_a_restart_and_expiry_is_resubmitted(
        tmp_path: Path, seeds: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    blog = tmp_path / "batch.log"
    fake = fake_server(extra=["--batch-expire-after", "2", "--batch-log", str(blog)])
    url = fake.base_url
    run = tmp_path / "run"
    res = cli(*gen_args(run, seeds, "--batch"), base_url=url)
    assert res.exit_code == 3 and "incomplete" in res.output
    # every command is a new process opening the store: the batch id comes from the store
    res = cli("batch", "status", "--run-dir", str(run), "--json", base_url=url)
    data = json.loads(res.output)
    assert [b["status"] for b in data["batches"]] == ["in_progress"]
    cli("batch", "status", "--run-dir", str(run), base_url=url)
    res = cli("batch", "collect", "--run-dir", str(run), base_url=url)
    assert "2 answers cached" in res.output and "2 expired" in res.output, res.output
    res = cli("batch", "status", "--run-dir", str(run), base_url=url)
    assert "expired" in res.output and "2/4 done" in res.output, res.output
    before = Counter(blog.read_text().split())
    res = cli("batch", "submit", "--retry-failed", "--run-dir", str(run), base_url=url)
    assert "submitted 1 batch" in res.output, res.output
    with RunStore(run) as store:
        assert store.batch_request_counts() == {"submitted": 2, "succeeded": 2}
    for _ in range(2):
        cli("batch", "status", "--run-dir", str(run), base_url=url)
    res = cli("batch", "collect", "--run-dir", str(run), base_url=url)
    assert "2 answers cached" in res.output, res.output
    after = Counter(blog.read_text().split())
    resent = after - before
    assert len(resent) == 2 and all(before[k] == 1 for k in resent)  # only the expired ones
    res = cli("batch", "cancel", "--run-dir", str(run), base_url=url)
    assert "cancelled 0" in res.output


@pytest.mark.slow
def test_offline_queue_export_and_collect_a_runner_output(tmp_path: Path, seeds: Path) -> None:
    """vLLM run_batch: queue with no endpoint, export, answer the file offline, collect."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from fake_openai import completion

    run = tmp_path / "run"
    args = gen_args(run, seeds, "--batch", "--no-discriminator")
    res = cli(*args)
    assert res.exit_code == 3 and "--export" in res.output, res.output
    requests = tmp_path / "requests.jsonl"
    res = cli("batch", "submit", "--export", str(requests), "--run-dir", str(run))
    assert "wrote 4 requests" in res.output, res.output
    results = tmp_path / "results.jsonl"
    with open(results, "w") as out:  # what run_batch writes: one answer line per request
        for line in requests.read_text().splitlines():
            item = json.loads(line)
            out.write(json.dumps({"id": "x", "custom_id": item["custom_id"], "error": None,
                                  "response": {"status_code": 200,
                                               "body": completion(item["body"], 0)}}) + "\n")
    res = cli("batch", "collect", "--output", str(results), "--run-dir", str(run))
    assert "4 answers cached" in res.output, res.output
    res = cli(*args)
    assert res.exit_code == 0, res.output
    assert len(rows(run)) == 4


def test_a_crash_between_upload_and_create_is_repaired(
        tmp_path: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    import openai

    from synth.llm import batch

    fake = fake_server()
    with RunStore(tmp_path / "run") as store:
        store.begin("test")
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
        store.batch_add_requests([("k1", "r1", "generate", json.dumps(body))])
        # what submit() had done when the process died: file uploaded and recorded, no batch
        data = (batch_line("k1", body) + "\n").encode()
        up = openai.OpenAI(base_url=fake.base_url, api_key="x").files.create(
            file=("input.jsonl", data), purpose="batch")
        store.batch_put(f"file:{up.id}", up.id, "uploaded", 1, {})
        store.batch_set_state(["k1"], "submitted", f"file:{up.id}")
        rows = batch.status(store, fake.base_url)
        assert len(rows) == 1 and rows[0]["id"].startswith("batch_")
        assert batch.submit(store, fake.base_url) == []  # nothing pending: not sent twice
        for _ in range(2):
            batch.status(store, fake.base_url)
        got = batch.collect(store, fake.base_url, None)
        assert got.succeeded == 1 and store.batch_request_counts() == {"succeeded": 1}


@pytest.mark.slow  # a batch round trip: ~12 s on a loaded 2-core box
def test_collected_answers_are_redacted_before_caching(
        tmp_path: Path, seeds: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    """A batch answer holding a credential is redacted before it is cached, as a live one is."""
    from secrets_corpus import LEAK

    fake = fake_server(extra=["--leak", LEAK])
    run = tmp_path / "run"
    toml = tmp_path / "synth.toml"
    toml.write_text("")
    codes = run_batch_rounds(run, seeds, fake.base_url, toml)
    assert codes[0] == 3 and codes[-1] == 0
    assert json.loads((run / "batch" / "secrets.json").read_text())["mode"] == "redact"
    needles = (LEAK.encode(), json.dumps(LEAK)[1:-1].encode())
    for path in [p for p in run.rglob("*") if p.is_file()]:
        assert not any(n in path.read_bytes() for n in needles), path
    with RunStore(run) as store:
        texts = [r[0] for r in store.db.execute("SELECT response FROM responses")]
    assert texts and any("<API_KEY>" in t for t in texts)  # the token was there, redacted
