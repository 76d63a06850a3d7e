"""Inputs and outputs on fsspec filesystems: ``memory://`` and ``file://`` stand in for s3/gs/hf."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FakeEndpoint

from synth.errors import InputError
from synth.storage import is_uri, localize, publish

fsspec = pytest.importorskip("fsspec")


@pytest.mark.parametrize(("value", "uri"), [
    ("s3://bucket/data.jsonl", True), ("gs://b/x", True), ("hf://datasets/o/n", True),
    ("file:///tmp/x", True), ("memory://a/b", True), ("/tmp/x", False), ("runs/r1", False),
    ("C:/x", False), ("data:jsonl", False),
])
def test_is_uri(value: str, uri: bool) -> None:
    assert is_uri(value) is uri


def test_localize_memory_file_and_tree_and_publish(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/in/data.jsonl", b'{"instruction": "a", "output": "b"}\n')
    fs.pipe("/bucket/tree/pkg/a.py", b"def a():\n    return 1\n")
    fs.pipe("/bucket/tree/b.py", b"x = 2\n")
    local = localize("memory://bucket/in/data.jsonl", tmp_path)
    assert local.read_text().startswith('{"instruction"') and local.parent.name == "inputs"
    tree = localize("memory://bucket/tree", tmp_path)
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.py")) == [
        "b.py", "pkg/a.py"]
    fs.pipe("/bucket/tree/b.py", b"x = 3\n")  # fetched afresh by the next invocation
    assert (localize("memory://bucket/tree", tmp_path) / "b.py").read_text() == "x = 3\n"
    assert localize(tmp_path / "plain.jsonl", tmp_path) == tmp_path / "plain.jsonl"
    with pytest.raises(InputError, match="does not exist"):
        localize("memory://bucket/missing.jsonl", tmp_path)

    out = tmp_path / "dataset"
    (out / "data").mkdir(parents=True)
    (out / "README.md").write_text("card")
    (out / "data" / "train.parquet").write_bytes(b"PAR1")
    publish(out, "memory://bucket/published")
    assert fs.cat("/bucket/published/README.md") == b"card"
    assert fs.cat("/bucket/published/data/train.parquet") == b"PAR1"


def test_generate_reads_and_writes_file_uris(tmp_path: Path,
                                             fake_server: Callable[..., FakeEndpoint]) -> None:
    from test_cli import synth

    from synth.io.seeds import write_seeds
    from synth.records import Record

    seeds = tmp_path / "remote" / "seeds.jsonl"
    write_seeds([Record.from_seed(f"def f{i}():\n    return {i}", "python", {"path": "m.py"})
                 for i in range(3)], seeds)
    fake = fake_server()
    run = tmp_path / "run"
    out = tmp_path / "published"
    proc = synth("generate", "--base-url", fake.base_url, "--run-dir", str(run), "--seeds",
                 seeds.as_uri(), "--output", out.as_uri(), "--no-discriminator")
    assert proc.returncode == 0, proc.stderr
    assert (out / "jsonl" / "train.jsonl").read_text() == (
        run / "dataset" / "jsonl" / "train.jsonl").read_text()
    assert len((out / "jsonl" / "train.jsonl").read_text().splitlines()) == 3
    assert json.loads((run / "config.json").read_text())["seeds"].startswith(str(run / "inputs"))
