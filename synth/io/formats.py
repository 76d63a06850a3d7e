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
``datasets.load_from_disk``). :func:`synth.io.dataset.write_dataset` writes them; this module
says what the formats are and reads any of them back (:func:`read_table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.errors import ConfigError

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


def format_schema(fmt: str, raw: Any) -> Any:
    """The Arrow schema of rows in ``fmt``, from the raw rows' schema ``raw``
    (:func:`synth.io.schema.arrow_schema`): fixed, so empty and NULL-only columns keep types."""
    import pyarrow as pa

    if fmt == "raw":
        return raw
    rest = [f for f in raw if f.name not in ("instruction", "input", "response")]
    if fmt == "alpaca":
        head = [pa.field("instruction", pa.string()), pa.field("input", pa.string()),
                pa.field("output", pa.string())]
        return pa.schema(head + rest)
    turn = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([pa.field("messages", pa.list_(turn))] + rest)


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
