"""Seed sources beyond directories: Hugging Face datasets and local parquet/jsonl/arrow files.

A dataset row becomes a :class:`~synth.seeds.corpus.SourceFile`: its text column is the file
content, its language column (or a path column's extension) the language, and
``<split>/<row>`` (or the path column) its path, so the same extraction, gates, dedup and refresh
apply as for files on disk. Hub datasets are streamed (``datasets.load_dataset(...,
streaming=True)``) and never loaded whole; local files are read in batches
(:func:`synth.io.rows.iter_rows`). Rows are vetted like files: over-size, binary, minified and
generated rows are skipped with counted reasons, bytes that are not UTF-8 are decoded with
replacement and counted.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.errors import InputError
from synth.seeds.corpus import SourceFile, vet_text
from synth.seeds.languages import detect_language

PATH_COLUMNS = ("path", "max_stars_repo_path", "file_path", "filepath", "filename")
LANG_ALIASES = {"c++": "cpp", "c#": "csharp", "js": "javascript", "ts": "typescript",
                "bash": "shell", "sh": "shell", "py": "python", "golang": "go", "rs": "rust"}


@dataclass(frozen=True)
class DatasetSource:
    """Where to read rows from and which columns matter.

    Attributes:
        name: a Hugging Face hub name (``bigcode/the-stack-smol``) or a local parquet, jsonl,
            json or arrow file or directory of them.
        split: the split to stream from the hub.
        text_column: the column holding code.
        lang_column: the column holding the language name; None to detect it from a path
            column's extension.
        data_dir: the hub dataset's sub-directory (``data/python``), if any.
    """

    name: str
    split: str = "train"
    text_column: str = "content"
    lang_column: str | None = None
    data_dir: str | None = None

    def is_local(self) -> bool:
        return Path(self.name).exists()


def normalise_lang(value: Any) -> str | None:
    """``"C++"`` → ``"cpp"``; None for an empty value."""
    if value is None:
        return None
    lang = str(value).strip().lower()
    return LANG_ALIASES.get(lang, lang) or None


def iter_rows(src: DatasetSource) -> Iterator[dict[str, Any]]:
    """Rows of a local file/directory, or streamed from the hub."""
    if src.is_local():
        from synth.io.rows import iter_rows as iter_local_rows

        yield from iter_local_rows(Path(src.name))
        return
    try:
        import datasets
    except ImportError as exc:
        raise InputError("--hf needs the datasets package: pip install datasets") from exc
    try:
        ds = datasets.load_dataset(src.name, data_dir=src.data_dir, split=src.split,
                                   streaming=True)
        yield from ds
    except (FileNotFoundError, ConnectionError, ValueError, OSError) as exc:
        raise InputError(
            f"cannot stream dataset {src.name!r} split {src.split!r}: {exc} (offline? set "
            "HF_HUB_OFFLINE=0 to allow the hub, or pass a local parquet/jsonl/arrow path)"
        ) from exc


def iter_dataset_sources(src: DatasetSource, counts: Counter[str],
                         max_bytes: int = 1_000_000) -> Iterator[SourceFile]:
    """Every usable row of ``src`` as a source file (skips counted in ``counts``)."""
    for index, row in enumerate(iter_rows(src)):
        if index == 0 and src.text_column not in row:
            raise InputError(f"{src.name}: no column {src.text_column!r} (columns: "
                             f"{', '.join(sorted(map(str, row)))}); pass --text-column")
        if index == 0 and src.lang_column and src.lang_column not in row:
            raise InputError(f"{src.name}: no column {src.lang_column!r}; pass --lang-column")
        value = row.get(src.text_column)
        if isinstance(value, bytes | bytearray):
            raw = bytes(value)
            if len(raw) > max_bytes:
                counts["skip_too_large"] += 1
                continue
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError:
                value = raw.decode("utf-8", errors="replace")
                counts["decode_replaced"] += 1
        if not isinstance(value, str):
            counts["skip_bad_row"] += 1
            continue
        data = value.encode("utf-8", "surrogatepass")
        if len(data) > max_bytes:
            counts["skip_too_large"] += 1
            continue
        path = next((str(row[c]) for c in PATH_COLUMNS if row.get(c)), None)
        lang = normalise_lang(row.get(src.lang_column)) if src.lang_column else None
        if lang is None and path is not None:
            lang = detect_language(path, value.split("\n", 1)[0])
        if lang is None:
            counts["skip_unknown_language"] += 1
            continue
        if not vet_text(value, counts):
            continue
        counts["files_read"] += 1
        yield SourceFile(root=src.name, path=f"{src.split}/{index}" + (f":{path}" if path else ""),
                         lang=lang, text=value, sha256=hashlib.sha256(data).hexdigest())
