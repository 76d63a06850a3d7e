"""The row schema: every column synth writes comes back identical, whatever reads it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from synth.io import schema
from synth.io.dataset import write_dataset
from synth.io.rows import read_records
from synth.records import Record


def full_record() -> Record:
    """A record with every declared column set, an undeclared meta key and foreign columns."""
    meta: dict[str, object] = {
        "provenance": {"root": "/src", "path": "pkg/mod.py", "start_line": 3, "end_line": 9,
                       "file_sha256": "ab" * 32, "name": "Klass.method", "mode": "function"},
        "index": 7, "raw": {"output": "dropped: bookkeeping"},
        "custom_stage_key": {"nested": [1, 2, {"x": None}]},
        "extra": {"origin": "mit", "stars": 12},
    }
    for col in schema.COLUMNS:
        if col.where != "meta" or col.name in ("provenance", "meta"):
            continue
        meta[col.name] = {"str": f"v-{col.name}", "int": 3, "float": 0.5, "bool": True,
                          "json": {"k": [col.name, 1.5, None, "ü"]}}[col.kind]
    meta["verdict"] = "yes"  # a JSON column holding a plain string stays a string
    return Record(id="r1", seed="def f():\n    pass", task="codegen", lang="python",
                  instruction="Do it", input="", response="```python\nx = 1\n```",
                  scores={"complexity": 2.5, "quality": math.nan}, meta=meta)


def rows_of(records: list[Record], names: list[str]) -> list[dict[str, object]]:
    return [json.loads(json.dumps(schema.to_row(r, names))) for r in records]


@pytest.mark.parametrize("part", ["data", "jsonl"])
def test_every_column_round_trips(tmp_path: Path, part: str) -> None:
    record = full_record()
    out = tmp_path / "dataset"
    write_dataset([record], out, "card", ["complexity", "quality"])
    (back,) = read_records(out / part)
    names = ["complexity", "quality"]
    assert rows_of([back], names) == rows_of([record], names)
    # ... and as a Record: every data field and meta key, minus run bookkeeping.
    assert back.meta["provenance"] == record.meta["provenance"]
    for key, value in record.meta.items():
        if key not in schema.INTERNAL_META:
            assert back.meta[key] == value, key
    assert back.meta["extra"] == {"origin": "mit", "stars": 12}
    assert back.scores["complexity"] == 2.5 and math.isnan(back.scores["quality"])
    assert (back.id, back.seed, back.task, back.instruction, back.response) == (
        record.id, record.seed, record.task, record.instruction, record.response)
    # written again, the very same row
    write_dataset([back], tmp_path / "again", "card", names)
    assert ((tmp_path / "again/jsonl/train.jsonl").read_text()
            == (out / "jsonl/train.jsonl").read_text())


def test_foreign_dataset_keeps_its_extra_columns(tmp_path: Path) -> None:
    src = tmp_path / "foreign.jsonl"
    rows = [{"prompt": "p1", "completion": "c1", "license": "apache-2.0", "stars": 5,
             "tags": ["a", "b"]},
            {"prompt": "p2", "completion": "c2", "license": "mit", "stars": 0, "tags": []}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = list(read_records(src))
    write_dataset(records, tmp_path / "out", "card")
    for part in ("data", "jsonl"):
        back = list(read_records(tmp_path / "out" / part))
        assert [(r.instruction, r.response) for r in back] == [("p1", "c1"), ("p2", "c2")]
        assert [r.meta["extra"] for r in back] == [
            {k: v for k, v in row.items() if k not in ("prompt", "completion", "license")}
            for row in rows]
        # a foreign licence column is synth's own license column
        assert [r.meta["license"] for r in back] == ["apache-2.0", "mit"]
        assert [r.meta["provenance"] for r in back] == [r.meta["provenance"] for r in records]
    import pyarrow.parquet as pq

    table = pq.read_table(next((tmp_path / "out/data").glob("*.parquet")))
    assert {"license", "stars", "tags"} <= set(table.column_names)


def test_a_column_is_one_line() -> None:
    names = [c.name for c in schema.COLUMNS]
    assert len(names) == len(set(names))
    assert all(c.doc and c.kind in ("str", "int", "float", "bool", "json", "provenance",
                                    "scores") for c in schema.COLUMNS)
    assert {"name", "mode"} <= {n for n, _ in schema.PROVENANCE}
