"""The one dataset writer, and rejects.jsonl.

The dataset directory is what ``datasets.load_dataset(path)`` reads (parquet/jsonl) or
``datasets.load_from_disk`` (arrow)::

    dataset/
      README.md                  card (synth.report); its YAML header names the data files
      plots/*.png                the card's plots
      data/train-<hash>.parquet  the rows (row groups of 10k, streamed from the store)
      jsonl/train.jsonl          the same rows as JSON lines, for tools without Arrow

The row and file format come from :class:`synth.io.formats.OutputConfig` (``--format``,
``--output-format``); the columns from :mod:`synth.io.schema`.

Rows are written in input order from the run store in batches, so memory stays flat however
large the run. The parquet file is named after a hash of its rows because ``datasets`` keys
its cache of a local directory on the directory name and the YAML's file patterns, not on the
files' content: with a fixed name, a second run's dataset would load as the first one's.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from synth.io import formats, schema
from synth.io.formats import JSONL_SIDECAR as JSONL_FILE
from synth.io.formats import OutputConfig
from synth.records import Record
from synth.store import RunStore, replacing

__all__ = ["JSONL_FILE", "write_dataset", "write_rejects"]


def _extra_fields(rows: list[dict[str, Any]]) -> list[Any]:
    """Arrow fields of the foreign columns in ``rows`` (types inferred from these rows)."""
    import pyarrow as pa

    names: dict[str, None] = {}
    for row in rows:
        if not row.keys() <= schema.BY_NAME.keys():  # (most rows have no foreign column)
            names.update(dict.fromkeys(k for k in row if k not in schema.BY_NAME))
    if not names:
        return []
    table = pa.Table.from_pylist([{k: row.get(k) for k in names} for row in rows])
    return list(table.schema)


def write_dataset(records: Iterable[Record], out_dir: Path, card: str | None = None,
                  score_names: list[str] | None = None, batch_rows: int = 10_000,
                  output: OutputConfig | None = None) -> int:
    """Write ``records`` as ``output`` says (default: raw rows as parquet + jsonl) into
    ``out_dir``, replaced atomically.

    ``card``: the Markdown body of README.md, written with a YAML header naming the data
    files. Runs pass None: :func:`synth.report.build_report` writes the full card and its plots
    from the run directory afterwards. Returns the number of rows written.
    """
    output = output or OutputConfig()
    output.validate()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    with replacing(tmp):
        return _write_dataset(records, out_dir, tmp, card, score_names, batch_rows, output)


def _write_dataset(records: Iterable[Record], out_dir: Path, tmp: Path, card: str | None,
                   score_names: list[str] | None, batch_rows: int,
                   output: OutputConfig) -> int:
    names = sorted(score_names or [])
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    raw = (schema.to_row(r, names) for r in records)
    # The foreign columns (if any) are known from the first batch; the schema is then fixed.
    head = list(itertools.islice(raw, batch_rows))
    arrow = formats.format_schema(output.format,
                                  schema.arrow_schema(names, _extra_fields(head)))
    rows = (formats.convert(row, output.format, output.system)
            for row in itertools.chain(head, raw))
    if output.output_format == "arrow":
        n = _write_arrow(rows, tmp, arrow)
    else:
        n = _write_files(rows, tmp, arrow, output.output_format, batch_rows)
    if card is not None:
        files = formats.data_files(tmp)["files"]
        (tmp / "README.md").write_text(_yaml_header(files) + card, encoding="utf-8")
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


def _json_line(row: dict[str, Any]) -> bytes:
    """One JSON Lines row, UTF-8 (a NaN written as null: the JSON readers refuse NaN)."""
    try:
        return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
                            | orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # a lone surrogate (refused below too) or a value orjson does not know
        return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


def _write_files(rows: Iterator[dict[str, Any]], tmp: Path, arrow_schema: Any, kind: str,
                 batch_rows: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp / "data").mkdir()
    digest = hashlib.sha256()
    n = 0
    batch: list[dict[str, Any]] = []
    if kind == "parquet":
        (tmp / "jsonl").mkdir()
        staging = tmp / "data" / "train.parquet.tmp"
        jsonl_path = tmp / JSONL_FILE
    else:
        staging = tmp / "data" / "train.jsonl.tmp"
        jsonl_path = staging
    writer = pq.ParquetWriter(staging, arrow_schema) if kind == "parquet" else None
    try:
        # (a row is ~4 KB: with the default 8 KB buffer every other row was a write call)
        with open(jsonl_path, "wb", buffering=1 << 20) as jsonl:
            for row in rows:
                line = _json_line(row)
                jsonl.write(line)
                digest.update(line)
                n += 1
                if writer is not None:
                    batch.append(row)
                    if len(batch) >= batch_rows:
                        writer.write_table(pa.Table.from_pylist(batch, schema=arrow_schema))
                        batch.clear()
            if writer is not None and batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=arrow_schema))
    finally:
        if writer is not None:
            writer.close()
    os.replace(staging, tmp / "data" / f"train-{digest.hexdigest()[:16]}.{kind}")
    return n


def _write_arrow(rows: Iterator[dict[str, Any]], tmp: Path, arrow_schema: Any) -> int:
    import datasets

    features = datasets.Features.from_arrow_schema(arrow_schema)
    # from_generator streams rows into Arrow shards, so memory stays flat; a fresh cache dir per
    # write keeps datasets from reusing an earlier run's rows for an identical generator.
    cache = tmp.with_name(tmp.name + ".cache")
    shutil.rmtree(cache, ignore_errors=True)
    try:
        ds = datasets.Dataset.from_generator(_gen, gen_kwargs={"rows": _Once(rows)},
                                             features=features, cache_dir=str(cache))
        ds.save_to_disk(str(tmp))
        n = len(ds)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return n


class _Once:
    """Wraps an iterator so ``datasets`` fingerprints it by id instead of pickling it."""

    def __init__(self, rows: Iterator[dict[str, Any]]) -> None:
        self.rows = rows

    def __reduce__(self) -> Any:  # pragma: no cover - only reached by datasets' hashing
        return (_Once, (iter(()),))


def _gen(rows: _Once) -> Iterator[dict[str, Any]]:
    yield from rows.rows


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


def _yaml_header(files: list[str]) -> str:
    paths = "".join(f"    - {f}\n" for f in files)
    return (
        "---\n"
        "configs:\n"
        "- config_name: default\n"
        "  data_files:\n"
        "  - split: train\n"
        f"    path:\n{paths}"
        "tags:\n- code\n- synthetic\n- instruction-tuning\n"
        "---\n"
    )
