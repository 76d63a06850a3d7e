"""The seeds file (``RUN/seeds.jsonl``, ``RUN/coreset.jsonl``): one seed record per line.

A line holds ``id``, ``seed``, ``lang`` and ``provenance`` (the struct of
:data:`synth.io.schema.PROVENANCE`: root, path, line span, file sha256 and, in function mode,
``name`` and ``mode``). Every key of a seed's provenance is written and read back unchanged, so
``generate`` carries function-mode fields into the dataset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from synth.errors import InputError
from synth.records import Record

SEEDS_FILE = "seeds.jsonl"


def seed_line(record: Record) -> str:
    """One line of a seeds file (with its newline)."""
    return json.dumps({"id": record.id, "seed": record.seed, "lang": record.lang,
                       "provenance": record.meta["provenance"]}, ensure_ascii=False) + "\n"


def write_seeds(records: Iterable[Record], path: Path) -> int:
    """Write seeds as JSON lines atomically; returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(seed_line(record))
            n += 1
    os.replace(tmp, path)
    return n


def read_seeds(path: Path) -> Iterator[Record]:
    """Seeds from a seeds.jsonl file, numbered in file order (``meta['index']``)."""
    if not path.exists():
        raise InputError(f"seeds file {path} does not exist; run `synth seeds extract` first")
    with open(path, encoding="utf-8") as fh:
        for index, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                record = Record.from_seed(row["seed"], row.get("lang", ""),
                                          row.get("provenance", {}))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InputError(f"{path}:{index + 1}: not a seed record ({exc})") from exc
            record.meta["index"] = index
            yield record
