"""Read existing instruction datasets into Records: jsonl, json, parquet, or a dataset directory.

Used wherever synth works on data it did not generate (``--input`` of the filters, ``evol``,
decontamination, TLI). Column names are mapped onto Record fields: ``instruction`` (or
``prompt``/``question``/``problem``), ``input`` (or ``context``), ``response`` (or ``output``/
``answer``/``completion``/``solution``), and chat data (``messages`` / ``conversations`` with
user/assistant turns) becomes instruction = user turns, response = assistant turns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synth.errors import InputError
from synth.records import Record, content_id

INSTRUCTION_KEYS = ("instruction", "prompt", "question", "problem", "query")
INPUT_KEYS = ("input", "context")
RESPONSE_KEYS = ("response", "output", "answer", "completion", "solution")
CHAT_KEYS = ("messages", "conversations", "conversation")
ID_KEYS = ("id", "task_id", "idx")

_MAPPED = frozenset(INSTRUCTION_KEYS + INPUT_KEYS + RESPONSE_KEYS + CHAT_KEYS + ID_KEYS)
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
            files = sorted(p for p in path.rglob("*") if _kind(p) in ("jsonl", "json"))
        if not files:
            raise InputError(f"{path} holds no .parquet, .jsonl or .json files")
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
        raise InputError(f"{path}: unsupported file type (use .jsonl, .json or .parquet)")


def _kind(path: Path) -> str:
    name = path.name.lower()
    for suffix, kind in ((".jsonl", "jsonl"), (".jsonl.gz", "jsonl"), (".ndjson", "jsonl"),
                         (".json", "json"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return kind
    return ""


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


def _first(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = row.get(key)
        if value is not None and value != "":
            return value
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
    """Map one dataset row onto a Record; unknown columns are kept in ``meta['extra']``."""
    chat = _first(row, CHAT_KEYS)
    if isinstance(chat, list):
        instruction, inp = _chat_text(chat, _USER), ""
        response = _chat_text(chat, _ASSISTANT)
    else:
        instruction = str(_first(row, INSTRUCTION_KEYS) or "")
        inp = str(_first(row, INPUT_KEYS) or "")
        response = str(_first(row, RESPONSE_KEYS) or "")
    raw_id = _first(row, ID_KEYS)
    # Without an id column the row's position is part of its id: two identical rows are two
    # samples of the input (deduplication is a filter's decision, not the reader's).
    rid = str(raw_id) if raw_id is not None else content_id("row", index, instruction, inp,
                                                            response)
    extra = {k: v for k, v in row.items() if k not in _MAPPED}
    meta: dict[str, Any] = {"index": index, "provenance": {"source": source, "row": index}}
    if extra:
        meta["extra"] = extra
    return Record(id=rid, seed=str(row.get("seed") or ""), task=str(row.get("task") or ""),
                  lang=str(row.get("lang") or ""), instruction=instruction, input=inp,
                  response=response, meta=meta)


def read_records(path: Path) -> Iterator[Record]:
    """Records from an instruction dataset file or directory, in file order."""
    path = Path(path)
    for index, row in enumerate(iter_rows(path)):
        yield row_to_record(row, index, str(path))
