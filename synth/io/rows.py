"""The one dataset reader: jsonl, json, parquet, arrow, or a dataset directory, as Records.

Every command reads datasets through :func:`read_records` (the filters' ``--input``, ``evol``,
decontamination, TLI, ``synth run``). A row synth wrote comes back exactly as it was written
(the declared columns of :mod:`synth.io.schema`); rows of other datasets are mapped onto Record
fields: ``instruction`` (or ``prompt``/``question``/``problem``), ``input`` (or ``context``),
``response`` (or ``output``/``answer``/``completion``/``solution``), and chat data
(``messages`` / ``conversations`` with user/assistant turns) becomes instruction = user turns,
response = assistant turns. Columns not mapped stay in ``meta['extra']`` and are written back
as the same columns by :func:`synth.io.dataset.write_dataset`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synth.errors import InputError
from synth.io import schema
from synth.records import Record, content_id

INSTRUCTION_KEYS = ("instruction", "prompt", "question", "problem", "query")
INPUT_KEYS = ("input", "context")
RESPONSE_KEYS = ("response", "output", "answer", "completion", "solution")
CHAT_KEYS = ("messages", "conversations", "conversation")
ID_KEYS = ("id", "task_id", "idx")

_USER = {"user", "human"}
_ASSISTANT = {"assistant", "gpt", "model"}


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Yield rows of a jsonl/json/parquet file or of every such file in a directory.

    A directory written by synth (``dataset/``) or by ``datasets`` (parquet or jsonl files) is
    read file by file in sorted order; parquet is read in batches so memory stays flat.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if _kind(p) == "parquet")
        if not files:
            files = sorted(p for p in path.rglob("*") if _kind(p) == "arrow")
        if not files:
            files = sorted(p for p in path.rglob("*") if _kind(p) in ("jsonl", "json"))
        if not files:
            raise InputError(f"{path} holds no .parquet, .arrow, .jsonl or .json files")
        for f in files:
            yield from iter_rows(f)
        return
    kind = _kind(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
            for batch in pf.iter_batches(batch_size=2048):
                yield from batch.to_pylist()
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise InputError(f"{path}: not a readable parquet file ({exc})") from exc
    elif kind == "arrow":
        yield from _iter_arrow(path)
    elif kind == "jsonl":
        yield from _iter_jsonl(path)
    elif kind == "json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            # Many ".json" files are really JSON lines.
            try:
                yield from _iter_jsonl(path)
                return
            except InputError:
                raise InputError(f"{path}: not valid JSON ({exc})") from exc
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        for row in data:
            if not isinstance(row, dict):
                raise InputError(f"{path}: expected a list of objects")
            yield row
    else:
        raise InputError(f"{path}: unsupported file type (use .jsonl, .json, .parquet or .arrow)")


def _kind(path: Path) -> str:
    name = path.name.lower()
    for suffix, kind in ((".jsonl", "jsonl"), (".jsonl.gz", "jsonl"), (".ndjson", "jsonl"),
                         (".json", "json"), (".parquet", "parquet"), (".arrow", "arrow")):
        if name.endswith(suffix):
            return kind
    return ""


def _iter_arrow(path: Path) -> Iterator[dict[str, Any]]:
    """Arrow IPC files, both the file format and the stream format ``datasets`` writes."""
    import pyarrow as pa

    try:
        source = pa.memory_map(str(path))
        try:
            reader: Any = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            source.seek(0)
            reader = pa.ipc.open_stream(source)
            batches = iter(reader)
        for batch in batches:
            yield from batch.to_pylist()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Arrow file ({exc})") from exc


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object per line")
            yield row


def _first_key(row: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = row.get(key)
        if value is not None and value != "":
            return key
    return None


def _chat_text(turns: list[Any], roles: set[str]) -> str:
    parts = []
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        role = str(turn.get("role", turn.get("from", ""))).lower()
        if role in roles:
            parts.append(str(turn.get("content", turn.get("value", ""))))
    return "\n\n".join(parts)


def row_to_record(row: dict[str, Any], index: int, source: str) -> Record:
    """Map one dataset row onto a Record.

    Declared columns (:mod:`synth.io.schema`) come back as they were written; instruction/
    input/response of foreign rows are found under their usual names; every other column is
    kept in ``meta['extra']``. A row without provenance gets ``{source, row}``.
    """
    fields, meta = schema.from_row(row, index)
    used: set[str] = set()
    missing = [f for f in ("instruction", "input", "response") if f not in fields]
    chat_key = next((k for k in CHAT_KEYS if isinstance(row.get(k), list)), None)
    if chat_key is not None and "instruction" in missing and "response" in missing:
        fields["instruction"] = _chat_text(row[chat_key], _USER)
        fields["response"] = _chat_text(row[chat_key], _ASSISTANT)
        used.add(chat_key)
    else:
        for name, keys in (("instruction", INSTRUCTION_KEYS), ("input", INPUT_KEYS),
                           ("response", RESPONSE_KEYS)):
            if name in missing:
                key = _first_key(row, keys)
                fields[name] = str(row[key]) if key is not None else ""
                used |= {key} if key is not None else set()
    if "id" not in fields:
        key = _first_key(row, ID_KEYS)
        # Without an id column the row's position is part of its id: two identical rows are
        # two samples of the input (deduplication is a filter's decision, not the reader's).
        fields["id"] = (str(row[key]) if key is not None else content_id(
            "row", index, fields["instruction"], fields.get("input", ""), fields["response"]))
        used |= {key} if key is not None else set()
    extra = {k: v for k, v in row.items() if k not in schema.BY_NAME and k not in used}
    if extra:
        meta["extra"] = extra
    if "provenance" not in meta:
        meta["provenance"] = {"source": source, "row": index}
    return Record(**fields, meta=meta)


def read_records(path: Path) -> Iterator[Record]:
    """Records from an instruction dataset file or directory, in file order."""
    path = Path(path)
    for index, row in enumerate(iter_rows(path)):
        yield row_to_record(row, index, str(path))
