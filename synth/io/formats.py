"""Dataset rows in the shape a trainer takes, written as parquet, JSON lines or Arrow.

Three row formats (``--format``):

- ``raw``: synth's own row (id, task, instruction, input, response, lang, seed, provenance,
  model, template, template_hash, license, scores).
- ``alpaca``: ``instruction`` / ``input`` / ``output`` first (the Stanford Alpaca names that
  axolotl's ``alpaca`` type and most SFT scripts read), every other column alongside.
- ``messages``: ``messages = [{role, content}, ...]`` with an optional system turn, then the
  user turn (instruction, plus the input below it when there is one) and the assistant turn
  (the response). TRL's ``SFTTrainer`` applies the tokenizer's chat template to this column as
  is, and axolotl's ``chat_template`` type reads it with its default field names. The other
  columns stay alongside (instruction/input/response are not repeated).

Three file formats (``--output-format``): ``parquet`` (default; plus ``jsonl/train.jsonl`` for
tools without Arrow), ``jsonl``, and ``arrow`` (``Dataset.save_to_disk``, read back with
``datasets.load_from_disk``). Data files are named after a hash of their rows because
``datasets`` caches a local directory by its name and file patterns, not by content.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.errors import ConfigError
from synth.records import Record

ROW_FORMATS = ("raw", "alpaca", "messages")
FILE_FORMATS = ("parquet", "jsonl", "arrow")
JSONL_SIDECAR = "jsonl/train.jsonl"


@dataclass(frozen=True)
class OutputConfig:
    """How the dataset is written and where it goes; section ``[output]`` of synth.toml.

    Attributes:
        format: row format, ``raw``, ``alpaca`` or ``messages``.
        output_format: file format, ``parquet``, ``jsonl`` or ``arrow``.
        system: system turn put first in every ``messages`` row (none when empty).
        license_allow: SPDX ids (or ``permissive``) whose sources are kept; empty keeps all.
        push_to_hub: Hugging Face dataset repo id to upload the dataset directory to.
        public: create the hub repo public (private by default).
    """

    format: str = "raw"
    output_format: str = "parquet"
    system: str = ""
    license_allow: tuple[str, ...] = ()
    push_to_hub: str | None = None
    public: bool = False

    def validate(self) -> None:
        if self.format not in ROW_FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(ROW_FORMATS)}, "
                              f"got {self.format!r}")
        if self.output_format not in FILE_FORMATS:
            raise ConfigError(f"--output-format must be one of {', '.join(FILE_FORMATS)}, "
                              f"got {self.output_format!r}")
        if self.push_to_hub is not None and self.push_to_hub.count("/") != 1:
            raise ConfigError(f"--push-to-hub takes a repo id like user/name, "
                              f"got {self.push_to_hub!r}")

    def as_config(self) -> dict[str, Any]:
        """What config.json records (the hub repo too: it is not a secret)."""
        return {"format": self.format, "output_format": self.output_format,
                "system": self.system, "license_allow": list(self.license_allow),
                "push_to_hub": self.push_to_hub, "public": self.public}

    @classmethod
    def from_config(cls, data: dict[str, Any] | None) -> OutputConfig:
        """Back from config.json's ``output`` table (defaults for runs written before it)."""
        data = dict(data or {})
        data["license_allow"] = tuple(data.get("license_allow") or ())
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def user_content(instruction: str, input: str) -> str:
    """The user turn: the instruction, and the extra input below it when there is one."""
    return f"{instruction}\n\n{input}" if input and input.strip() else instruction


def convert(row: dict[str, Any], fmt: str, system: str = "") -> dict[str, Any]:
    """``row`` (a raw row) in row format ``fmt``; columns other than the sample's are kept."""
    if fmt == "raw":
        return row
    rest = {k: v for k, v in row.items() if k not in ("instruction", "input", "response")}
    if fmt == "alpaca":
        return {"instruction": row["instruction"], "input": row["input"],
                "output": row["response"], **rest}
    if fmt == "messages":
        messages = [{"role": "system", "content": system}] if system else []
        messages += [{"role": "user", "content": user_content(row["instruction"], row["input"])},
                     {"role": "assistant", "content": row["response"]}]
        return {"messages": messages, **rest}
    raise ConfigError(f"unknown row format {fmt!r}")


def schema(fmt: str, score_names: list[str]) -> Any:
    """The Arrow schema of rows in ``fmt`` (fixed, so empty and NULL-only columns keep types)."""
    import pyarrow as pa

    from synth.emit import _schema

    raw = _schema(score_names)
    fields = list(raw)
    at = fields.index(raw.field("template_hash")) + 1
    fields.insert(at, pa.field("license", pa.string()))
    if fmt == "raw":
        return pa.schema(fields)
    rest = [f for f in fields if f.name not in ("instruction", "input", "response")]
    if fmt == "alpaca":
        head = [pa.field("instruction", pa.string()), pa.field("input", pa.string()),
                pa.field("output", pa.string())]
        return pa.schema(head + rest)
    turn = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([pa.field("messages", pa.list_(turn))] + rest)


def raw_row(record: Record, score_names: list[str]) -> dict[str, Any]:
    """synth's row of ``record`` with its ``license`` column (``unknown`` when not read)."""
    from synth.emit import to_row
    from synth.seeds.licenses import record_license

    row = to_row(record, score_names)
    # A synth dataset read back (score/select/filter/decontam on RUN/dataset) has these
    # columns in meta['extra']: carry them through instead of writing nulls.
    extra = record.meta.get("extra") or {}
    for key in ("model", "template", "template_hash"):
        if row.get(key) is None and isinstance(extra.get(key), str):
            row[key] = extra[key]
    # The row schema is fixed: keep the licence as its own column next to the provenance.
    row["license"] = record_license(record)
    return row


def write_dataset(records: Iterable[Record], out_dir: Path, output: OutputConfig,
                  score_names: list[str] | None = None, batch_rows: int = 10_000) -> int:
    """Write ``records`` as ``output`` says into ``out_dir`` (replaced atomically).

    The card (README.md) and plots are written afterwards by :mod:`synth.report`, from the run
    directory. Returns the number of rows written.
    """
    names = sorted(score_names or [])
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    rows = (convert(raw_row(r, names), output.format, output.system) for r in records)
    if output.output_format == "arrow":
        n = _write_arrow(rows, tmp, schema(output.format, names))
    else:
        n = _write_files(rows, tmp, schema(output.format, names), output.output_format,
                         batch_rows)
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
        jsonl_path = tmp / JSONL_SIDECAR
    else:
        staging = tmp / "data" / "train.jsonl.tmp"
        jsonl_path = staging
    writer = pq.ParquetWriter(staging, arrow_schema) if kind == "parquet" else None
    try:
        with open(jsonl_path, "w", encoding="utf-8") as jsonl:
            for row in rows:
                line = json.dumps(row, ensure_ascii=False) + "\n"
                jsonl.write(line)
                digest.update(line.encode("utf-8", "surrogatepass"))
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


def data_files(dataset_dir: Path) -> dict[str, Any]:
    """What the card's ``configs`` names: the data files in ``dataset_dir`` and their format.

    Returns ``{"kind": parquet|jsonl|arrow, "files": [relative paths]}``.
    """
    data = dataset_dir / "data"
    for kind in ("parquet", "jsonl"):
        found = sorted(p.relative_to(dataset_dir).as_posix()
                       for p in data.glob(f"train-*.{kind}")) if data.is_dir() else []
        if found:
            return {"kind": kind, "files": found}
    arrow = sorted(p.name for p in dataset_dir.glob("data-*.arrow"))
    return {"kind": "arrow", "files": arrow}


def read_table(dataset_dir: Path, columns: list[str] | None = None) -> Any:
    """The dataset's rows as one Arrow table (only ``columns`` when given), whatever the format."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    found = data_files(dataset_dir)
    paths = [dataset_dir / f for f in found["files"]]
    if not paths:
        return pa.table({})
    if found["kind"] == "parquet":
        if columns is not None:
            names = set(pq.read_schema(paths[0]).names)
            columns = [c for c in columns if c in names]
        return pa.concat_tables([pq.read_table(p, columns=columns) for p in paths])
    if found["kind"] == "jsonl":
        import pyarrow.json as pj

        tables = [pj.read_json(p) for p in paths]
        table = pa.concat_tables(tables)
    else:
        tables = []
        for p in paths:
            with pa.memory_map(str(p)) as source:
                tables.append(pa.ipc.open_stream(source).read_all())
        table = pa.concat_tables(tables)
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    return table
