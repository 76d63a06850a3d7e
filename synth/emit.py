"""Dataset writers and the dataset card.

The dataset directory is what ``datasets.load_dataset(path)`` reads::

    dataset/
      README.md                  card; its YAML header points datasets at the parquet file
      data/train-<hash>.parquet  the rows (row groups of 10k, streamed from the store)
      jsonl/train.jsonl          the same rows as JSON lines, for tools without Arrow

Rows are written in input order from the run store in batches, so memory stays flat however
large the run. The parquet file is named after a hash of its rows because ``datasets`` keys
its cache of a local directory on the directory name and the YAML's file patterns, not on the
files' content: with a fixed name, a second run's dataset would load as the first one's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synth.records import Record
from synth.store import RunStore, replacing

PROVENANCE_FIELDS = ("root", "path", "start_line", "end_line", "file_sha256", "source", "row")
JSONL_FILE = "jsonl/train.jsonl"


def _schema(score_names: list[str]) -> Any:
    import pyarrow as pa

    provenance = pa.struct([
        ("root", pa.string()), ("path", pa.string()), ("start_line", pa.int64()),
        ("end_line", pa.int64()), ("file_sha256", pa.string()), ("source", pa.string()),
        ("row", pa.int64()),
    ])
    fields = [
        ("id", pa.string()), ("task", pa.string()), ("instruction", pa.string()),
        ("input", pa.string()), ("response", pa.string()), ("lang", pa.string()),
        ("seed", pa.string()), ("provenance", provenance), ("model", pa.string()),
        ("template", pa.string()), ("template_hash", pa.string()),
    ]
    if score_names:
        fields.append(("scores", pa.struct([(n, pa.float64()) for n in score_names])))
    return pa.schema(fields)


def to_row(record: Record, score_names: list[str]) -> dict[str, Any]:
    """The dataset row of a record: the sample, its seed and where it came from."""
    prov = record.meta.get("provenance") or {}
    row: dict[str, Any] = {
        "id": record.id, "task": record.task, "instruction": record.instruction,
        "input": record.input, "response": record.response, "lang": record.lang,
        "seed": record.seed,
        "provenance": {k: prov.get(k) for k in PROVENANCE_FIELDS},
        "model": record.meta.get("model"), "template": record.meta.get("template"),
        "template_hash": record.meta.get("template_hash"),
    }
    if score_names:
        row["scores"] = {n: _float(record.scores.get(n)) for n in score_names}
    return row


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def write_dataset(records: Iterable[Record], out_dir: Path, card: str,
                  score_names: list[str] | None = None, batch_rows: int = 10_000) -> int:
    """Write ``records`` as parquet + jsonl + card into ``out_dir`` (replaced atomically).

    ``card`` is the Markdown body of README.md; the YAML header that tells ``datasets`` where
    the data is gets prepended here. Returns the number of rows written.
    """
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    with replacing(tmp):
        return _write_dataset(records, out_dir, tmp, card, score_names, batch_rows)


def _write_dataset(records: Iterable[Record], out_dir: Path, tmp: Path, card: str,
                   score_names: list[str] | None, batch_rows: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = sorted(score_names or [])
    schema = _schema(names)
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "data").mkdir(parents=True)
    (tmp / "jsonl").mkdir()
    n = 0
    batch: list[dict[str, Any]] = []
    digest = hashlib.sha256()
    staging = tmp / "data" / "train.parquet.tmp"
    with pq.ParquetWriter(staging, schema) as writer, \
            open(tmp / JSONL_FILE, "w", encoding="utf-8") as jsonl:
        def flush() -> None:
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch.clear()

        for record in records:
            row = to_row(record, names)
            line = json.dumps(row, ensure_ascii=False) + "\n"
            jsonl.write(line)
            digest.update(line.encode("utf-8", "surrogatepass"))
            batch.append(row)
            n += 1
            if len(batch) >= batch_rows:
                flush()
        flush()
    parquet = f"data/train-{digest.hexdigest()[:16]}.parquet"
    os.replace(staging, tmp / parquet)
    (tmp / "README.md").write_text(_yaml_header(parquet) + card, encoding="utf-8")
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out_dir)
    return n


def write_rejects(store: RunStore, path: Path) -> int:
    """``rejects.jsonl``: one line per dropped record with stage, reason and the raw LLM text."""
    from synth.llm.client import RETRYABLE_REASONS

    tmp = path.with_suffix(".jsonl.tmp")
    n = 0
    with replacing(tmp), open(tmp, "w", encoding="utf-8") as fh:
        for stage, reason, record in store.iter_results("rejected"):
            raw = record.meta.get("raw") or {}
            fh.write(json.dumps({
                "id": record.id, "stage": stage, "reason": reason,
                # True: the request failed for reasons outside it; a rerun sends it again.
                "retryable": reason in RETRYABLE_REASONS, "task": record.task,
                "seed": record.seed, "raw_output": raw.get("output"),
                "finish_reason": raw.get("finish_reason"),
                "detail": record.meta.get("parse_error") or record.meta.get("llm_error")
                or record.meta.get("reject_detail"),
                "record": record.to_dict(),
            }, ensure_ascii=False) + "\n")
            n += 1
        fh.close()
        os.replace(tmp, path)
    return n


def dataset_card(title: str, rows: int, stats: dict[str, Any], config: dict[str, Any],
                 extra_sections: list[str] | None = None, description: str | None = None) -> str:
    """The Markdown body of a dataset card: what made the data and what each stage did."""
    body = [f"# {title}", "", description or f"{rows} instruction samples written by synth.", ""]
    llm = config.get("LLMConfig")
    if llm:
        body.append(f"- model: `{llm.get('model')}`")
    body += [
        f"- rows: {rows}",
        f"- wall time: {stats.get('wall_time_s')} s",
        "",
        "## Stages",
        "",
        "| stage | in | out | rejected |",
        "|---|---|---|---|",
    ]
    for name, s in stats.get("stages", {}).items():
        rejected = ", ".join(f"{k}: {v}" for k, v in s.get("rejected", {}).items()) or "-"
        body.append(f"| {name} | {s.get('in')} | {s.get('out')} | {rejected} |")
    body += ["", "## Configuration", "", "```json", json.dumps(config, indent=2), "```", ""]
    for section in extra_sections or []:
        body += [section, ""]
    return "\n".join(body)


def _yaml_header(parquet: str) -> str:
    return (
        "---\n"
        "configs:\n"
        "- config_name: default\n"
        "  data_files:\n"
        "  - split: train\n"
        f"    path: {parquet}\n"
        "tags:\n- code\n- synthetic\n- instruction-tuning\n"
        "---\n"
    )
