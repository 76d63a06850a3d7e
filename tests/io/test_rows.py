"""Reading existing instruction datasets: the shared Code Alpaca sample and synth's own output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth.errors import InputError
from synth.io.rows import read_records

ALPACA = Path(__file__).parents[3] / "shared" / "data" / "code_alpaca" / "code_alpaca_2k.jsonl"


@pytest.mark.skipif(not ALPACA.exists(), reason="shared data not beside the repo")
def test_reads_code_alpaca() -> None:
    recs = list(read_records(ALPACA))
    assert len(recs) > 1000
    assert all(r.instruction for r in recs)
    assert any(r.input for r in recs)
    assert sum(bool(r.response) for r in recs) > 0.95 * len(recs)
    assert len({r.id for r in recs}) == len(recs)


def test_chat_rows_parquet_and_errors(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [
        {"role": "system", "content": "be nice"}, {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"}]}) + "\n")
    (rec,) = read_records(chat)
    assert (rec.instruction, rec.response) == ("Q1", "A1")

    pq.write_table(pa.table({"prompt": ["p"], "completion": ["c"], "extra": [1]}),
                   tmp_path / "d.parquet")
    (rec,) = read_records(tmp_path / "d.parquet")
    assert (rec.instruction, rec.response, rec.meta["extra"]) == ("p", "c", {"extra": 1})

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x"}\nnot json\n')
    with pytest.raises(InputError, match="bad.jsonl:2"):
        list(read_records(bad))
    with pytest.raises(InputError, match="does not exist"):
        list(read_records(tmp_path / "missing.jsonl"))
