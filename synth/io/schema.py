"""The row schema: every column synth writes, declared once.

A dataset row is a :class:`~synth.records.Record` flattened: its own fields (``id``, ``task``,
``instruction``...), its ``scores`` as one struct, and the ``meta`` keys declared in
:data:`COLUMNS` as columns of their own. :func:`to_row` and :func:`from_row` are exact inverses
for every declared column, so a row read back by any command and written again is identical:

- a meta key absent from a record is a null cell, and a null cell is an absent key;
- ``json`` columns (nested values of no fixed shape: rounds, verdicts, evidence) are stored as
  JSON text in every format, so parquet and jsonl hold the same bytes and the reader decodes
  them the same way;
- meta keys that no column declares travel in the ``meta`` column (JSON), so a key a new stage
  adds is never lost, only untyped until it gets its own line here;
- columns of a foreign dataset that synth does not map stay in ``meta['extra']`` and are
  written back as the same top-level columns.

Adding a column is one line in :data:`COLUMNS` (and, for a provenance field, one name in
:data:`PROVENANCE`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from synth.records import Record, sorted_json


@dataclass(frozen=True)
class Column:
    """One dataset column.

    Attributes:
        name: the column name (and, for ``where="meta"``, the ``Record.meta`` key).
        kind: ``str``, ``int``, ``float``, ``bool``, ``json`` (any JSON value, stored as JSON
            text), ``provenance`` (the struct of :data:`PROVENANCE`) or ``scores`` (a struct of
            float64, one field per score name; NaN is stored as null).
        doc: what the column holds.
        where: ``record`` for a Record attribute, ``meta`` for a ``Record.meta`` key.
    """

    name: str
    kind: str
    doc: str
    where: str = "meta"


# Fields of the provenance struct; a seed or row without one has null there.
PROVENANCE: tuple[tuple[str, str], ...] = (
    ("root", "str"),          # corpus root (directory, repository or dataset name)
    ("path", "str"),          # file path under the root (or split/row of a dataset)
    ("start_line", "int"),    # first line of the seed (1-based)
    ("end_line", "int"),      # last line of the seed
    ("file_sha256", "str"),   # sha256 of the whole source file
    ("name", "str"),          # function mode: the function/class name
    ("mode", "str"),          # window, function or file
    ("source", "str"),        # foreign dataset: the file it was read from
    ("row", "int"),           # foreign dataset: the row number in that file
)

COLUMNS: tuple[Column, ...] = (
    Column("id", "str", "content hash of seed, task and sample index", "record"),
    Column("task", "str", "the task that made the sample (codegen, summarize...)", "record"),
    Column("instruction", "str", "the user side of the sample", "record"),
    Column("input", "str", "extra input shown with the instruction", "record"),
    Column("response", "str", "the assistant side of the sample", "record"),
    Column("lang", "str", "programming language", "record"),
    Column("seed", "str", "the seed code the sample was made from", "record"),
    Column("provenance", "provenance", "where the seed came from (see PROVENANCE)"),
    Column("model", "str", "the generator model"),
    Column("template", "str", "the prompt template directory"),
    Column("template_hash", "str", "hash of the rendered templates (prompt version)"),
    Column("license", "str", "licence of the seed's source (SPDX; unknown when not read)"),
    Column("answer_format", "str", "reply dialect of the last round (json or sections)"),
    Column("seed_id", "str", "id of the seed record"),
    Column("sample", "int", "sample index among the seed's samples"),
    Column("target_lang", "str", "translate: the target language"),
    Column("instance", "json", "the CodeOcean instance as parsed (task_name...)"),
    Column("rounds", "json", "generator/discriminator rounds: raw messages, replies, verdicts"),
    Column("verdict", "json", "the discriminator's last verdict per rule"),
    Column("failed_rules", "json", "rules the last verdict failed"),
    Column("evol", "json", "evol: method and the original sample"),
    Column("score_methods", "json", "how each score was computed (logprobs, parsed...)"),
    Column("score_errors", "json", "why a score is NaN, per score"),
    Column("score_raw", "json", "the scorer's raw reply, per score"),
    Column("score_mass", "json", "probability mass on the score tokens, per score"),
    Column("score_templates", "json", "template hash of each LLM score"),
    Column("unit_tests", "json", "XCoder test quality: per-test status and reasons"),
    Column("tests", "str", "verify: the sample's own tests (code in test_lang)"),
    Column("test_lang", "str", "verify: the language the tests run in"),
    Column("verified", "bool", "verify: the solution passed its own tests"),
    Column("execution", "json", "verify: status, reason, passed/total and a verdict per test"),
    Column("difficulty", "str", "verify, --responses >= 2: easy, medium or hard by pass rate"),
    Column("responses", "json", "verify: K responses, how many passed, which was kept"),
    Column("oracle", "json", "verify: the seed oracle's status (confirmed, mismatch...)"),
    Column("oracle_pairs", "json", "verify: the seed's true input/output pairs"),
    Column("mutation", "json", "verify: each mutant of the solution and whether it was killed"),
    Column("select_rank", "int", "order in which selection kept the sample (0 first)"),
    Column("decontam", "json", "decontamination evidence (on rejected records)"),
    Column("scores", "scores", "named scores, e.g. pass_rate, mutation_score; null=NaN", "record"),
    Column("meta", "json", "any other meta key, until it is declared above"),
)

# Meta keys that are run bookkeeping, not data: the input position (from the reader), the last
# raw reply (already in rounds) and reject details (in rejects.jsonl).
INTERNAL_META = frozenset({"index", "raw", "rejected", "parse_error", "llm_error",
                           "reject_detail", "extra"})

BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
META_COLUMNS = tuple(c.name for c in COLUMNS if c.where == "meta" and c.name != "meta")


def declared_names() -> frozenset[str]:
    return frozenset(BY_NAME)


def arrow_schema(score_names: list[str], extra: Any = None) -> Any:
    """The pyarrow schema of a dataset with these score names (and extra foreign fields)."""
    import pyarrow as pa

    types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
             "json": pa.string()}
    provenance = pa.struct([(name, types[kind]) for name, kind in PROVENANCE])
    fields = []
    for col in COLUMNS:
        if col.kind == "scores":
            if score_names:
                fields.append((col.name, pa.struct([(n, pa.float64()) for n in score_names])))
        elif col.kind == "provenance":
            fields.append((col.name, provenance))
        else:
            fields.append((col.name, types[col.kind]))
    schema = pa.schema(fields)
    for field in extra or ():
        schema = schema.append(field)
    return schema


def _json(value: Any) -> str | None:
    """A ``json`` cell: compact, keys sorted, a NaN written as null."""
    return None if value is None else sorted_json(value)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _how(col: Column) -> str:
    """How :func:`to_row` fills ``col``: one word, decided once per column."""
    if col.name in ("license", "meta"):
        return col.name
    if col.kind in ("scores", "provenance"):
        return col.kind
    if col.where == "record":
        return "record"
    return "json" if col.kind == "json" else "value"


_ROW_PLAN: tuple[tuple[str, str], ...] = tuple((c.name, _how(c)) for c in COLUMNS)
_NOT_REST = frozenset(BY_NAME) | INTERNAL_META
# The meta keys that are columns of their own, and how each is written ("value" or "json").
_META_HOW: dict[str, str] = {name: how for name, how in _ROW_PLAN if how in ("value", "json")}
_RECORD_COLUMNS = tuple(name for name, how in _ROW_PLAN if how == "record")
# Every column of a row, null and in table order, without and with a scores struct.
_BLANK_ROWS = {with_scores: dict.fromkeys(name for name, how in _ROW_PLAN
                                          if how != "scores" or with_scores)
               for with_scores in (False, True)}


def to_row(record: Record, score_names: list[str]) -> dict[str, Any]:
    """The dataset row of ``record``: every declared column, then its foreign extra columns.

    Starts from a row of nulls and visits the meta keys the record has (~15 of a generated
    record) rather than looking up each of the ~30 meta columns.
    """
    row = dict(_BLANK_ROWS[bool(score_names)])
    meta = record.meta
    rest: dict[str, Any] = {}  # meta keys that no column declares: the ``meta`` column
    for key, value in meta.items():
        how = _META_HOW.get(key)
        if how == "value":
            row[key] = value
        elif how == "json":
            row[key] = _json(value)
        elif key not in _NOT_REST:
            rest[key] = value
    for name in _RECORD_COLUMNS:
        row[name] = getattr(record, name)
    prov = meta.get("provenance")
    row["provenance"] = {n: prov.get(n) for n, _ in PROVENANCE} if prov else None
    row["license"] = record_license(record)
    if score_names:
        row["scores"] = {n: _float(record.scores.get(n)) for n in score_names}
    row["meta"] = _json(rest) if rest else None
    for key, value in (meta.get("extra") or {}).items():
        if key not in row:
            row[key] = value
    return row


def record_license(record: Record) -> str:
    """The licence a record carries: its ``license`` (a row read back), its seed's provenance,
    or a foreign dataset's ``license`` column; ``unknown`` otherwise."""
    prov = record.meta.get("provenance") or {}
    extra = record.meta.get("extra") or {}
    value = record.meta.get("license") or prov.get("license") or extra.get("license")
    return str(value) if value else "unknown"


def _decode(value: Any) -> Any:
    """A ``json`` cell: JSON text from synth; a foreign value is kept as it is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def from_row(row: dict[str, Any], index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The inverse of :func:`to_row` on declared columns.

    Returns ``(fields, meta)``: Record attribute values found in ``row`` and the meta keys of
    its declared meta columns (absent for null cells). Undeclared columns are not touched here;
    :mod:`synth.io.rows` keeps them in ``meta['extra']``.
    """
    fields: dict[str, Any] = {}
    meta: dict[str, Any] = {"index": index}
    for col in COLUMNS:
        if col.name not in row:
            continue
        value = row[col.name]
        if col.kind == "scores":
            if isinstance(value, dict):
                fields["scores"] = {str(k): math.nan if v is None else float(v)
                                    for k, v in value.items()}
            continue
        if col.where == "record":
            if value is not None:
                fields[col.name] = str(value)
            continue
        if value is None:
            continue
        if col.name == "meta":
            rest = _decode(value)
            if isinstance(rest, dict):
                meta.update(rest)
            continue
        if col.kind == "provenance":
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if v is not None}
        elif col.kind == "json":
            value = _decode(value)
        meta[col.name] = value
    return fields, meta
