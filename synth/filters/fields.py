"""What the filters share: which text of a record they compare, and batching of records."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from synth.errors import ConfigError
from synth.records import Record

USER_FIELDS: tuple[str, ...] = ("instruction", "input")
SAMPLE_FIELDS: tuple[str, ...] = ("instruction", "input", "response")
RECORD_TEXT_FIELDS: tuple[str, ...] = ("instruction", "input", "response", "seed")

T = TypeVar("T")


def parse_fields(spec: str) -> tuple[str, ...]:
    """``"instruction,input"`` -> ``("instruction", "input")``."""
    fields = tuple(f.strip() for f in spec.split(",") if f.strip())
    if not fields:
        raise ConfigError(f"expected comma-separated field names, got {spec!r}")
    return fields


def record_text(record: Record, fields: Sequence[str]) -> str:
    """``fields`` of a record joined with one space (XCoder joins its keys the same way).

    A field is a Record text attribute (``instruction``, ``input``, ``response``, ``seed``) or a
    column of the input file kept in ``meta['extra']``; a column missing from a row counts as "".
    For chat data ``instruction`` holds the user turns, so the default user side
    (instruction + input) is XCoder's "user turns" for chat.
    """
    extra = record.meta.get("extra") or {}
    parts = []
    for f in fields:
        value = getattr(record, f) if f in RECORD_TEXT_FIELDS else extra.get(f)
        parts.append("" if value is None else str(value))
    return " ".join(parts)


def check_record_fields(record: Record, fields: Sequence[str]) -> None:
    """Raise :class:`ConfigError` if a field is neither a Record text field nor a column."""
    extra = record.meta.get("extra") or {}
    missing = [f for f in fields if f not in RECORD_TEXT_FIELDS and f not in extra]
    if missing:
        raise ConfigError(
            f"the data has no field(s) {', '.join(missing)}; use "
            f"{', '.join(RECORD_TEXT_FIELDS)} or one of its columns "
            f"({', '.join(sorted(extra)) or 'none'})")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to ``size`` items, in order."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
