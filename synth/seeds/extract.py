"""Seed snippets: Magicoder's OSS-Instruct windows of consecutive lines, and the seeds file.

OSS-Instruct (Magicoder, Wei et al. 2023) seeds each prompt with a random run of 1–15
consecutive lines from a real file. We draw, per file, a length in ``[min_lines, max_lines]`` and
a start line where that length fits, from an RNG seeded by (``--seed``, file content, path): the
same file always yields the same windows whatever the walk order, so a corpus refresh keeps the
seeds (and ids) of unchanged files.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from synth.config import SeedsConfig
from synth.errors import InputError
from synth.records import Record
from synth.seeds.corpus import SourceFile, iter_source_files

SEEDS_FILE = "seeds.jsonl"


def windows(n_lines: int, rng: random.Random, count: int, min_lines: int,
            max_lines: int) -> list[tuple[int, int]]:
    """``count`` windows ``[start, end)`` over ``n_lines`` lines (none if the file is too short)."""
    if n_lines < min_lines:
        return []
    spans = []
    for _ in range(count):
        length = rng.randint(min_lines, min(max_lines, n_lines))
        start = rng.randint(0, n_lines - length)
        spans.append((start, start + length))
    return spans


def normalised_key(text: str) -> bytes:
    """Key for exact-duplicate detection: whitespace runs collapsed."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8", "surrogatepass")).digest()[:16]


def snippets_from_file(source: SourceFile, cfg: SeedsConfig) -> Iterator[Record]:
    """The window seeds of one file (duplicates and blank windows not yet removed)."""
    rng = random.Random(f"{cfg.seed}:{source.sha256}:{source.path}")
    lines = source.text.splitlines()
    for start, end in windows(len(lines), rng, cfg.per_file, cfg.min_lines, cfg.max_lines):
        text = "\n".join(lines[start:end])
        yield Record.from_seed(text, source.lang, {
            "root": source.root, "path": source.path, "start_line": start + 1,
            "end_line": end, "file_sha256": source.sha256,
        })


def extract_seeds(roots: Iterable[Path], cfg: SeedsConfig,
                  counts: Counter[str]) -> Iterator[Record]:
    """Stream seeds from every usable file under ``roots``.

    Drops whitespace-only windows and exact duplicates (after whitespace normalisation) across
    the whole corpus; every drop is counted in ``counts``.
    """
    seen: set[bytes] = set()
    for source in iter_source_files(roots, counts, cfg.max_file_bytes):
        for record in snippets_from_file(source, cfg):
            if not record.seed.strip():
                counts["drop_blank"] += 1
                continue
            key = normalised_key(record.seed)
            if key in seen:
                counts["drop_duplicate"] += 1
                continue
            seen.add(key)
            counts["seeds"] += 1
            yield record


def write_seeds(records: Iterable[Record], path: Path) -> int:
    """Write seeds as JSON lines atomically; returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps({"id": record.id, "seed": record.seed, "lang": record.lang,
                                 "provenance": record.meta["provenance"]},
                                ensure_ascii=False) + "\n")
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


def sample_seeds(records: Iterable[Record], num: int | None, seed: int) -> Iterator[Record]:
    """``num`` seeds drawn uniformly (reservoir sampling, O(num) memory), in input order.

    With ``num`` None every seed is returned as it comes.
    """
    if num is None:
        yield from records
        return
    rng = random.Random(seed)
    reservoir: list[Record] = []
    for i, record in enumerate(records):
        if i < num:
            reservoir.append(record)
        else:
            j = rng.randint(0, i)
            if j < num:
                reservoir[j] = record
    reservoir.sort(key=lambda r: r.meta.get("index", 0))
    yield from reservoir
