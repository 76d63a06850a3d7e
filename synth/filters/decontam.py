"""Decontamination: drop training samples that contain benchmark problems.

Two filter stages, usually run in this order:

- :class:`ExactDecontam` (StarCoder/Magicoder): a sample is dropped when a benchmark string (for
  HumanEval each docstring and canonical solution) occurs in its text, case-insensitively. We
  also collapse whitespace runs on both sides, so a docstring re-indented in a markdown block
  still matches. All strings are searched at once with an Aho–Corasick automaton
  (``pyahocorasick``): one pass over each sample's text, however many benchmark strings. Strings
  on the allow-list (generic one-liners such as ``return x + y``) are not searched.
- :class:`NgramDecontam` (XCoder): a sample is dropped when its overlap with some benchmark item,
  S(test, train) = |G_test ∩ G_train| / |G_test| over XCoder's padded word 4- and 5-grams, is at
  least ``threshold`` (0.05, XCoder's default). Samples are matched in batches through
  :class:`~synth.filters.ngrams.NgramIndex`.

Both read the record's text fields (default: instruction, input and response) and write
``meta['decontam']`` — method, benchmark, item id, score and what matched — on the records they
drop; the runner sends those to ``rejects.jsonl`` with reason ``exact:NAME`` / ``ngram:NAME``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from synth.errors import ConfigError
from synth.filters.benchmarks import Benchmark
from synth.filters.fields import SAMPLE_FIELDS, check_record_fields, record_text
from synth.filters.ngrams import DEFAULT_SIZES, NgramIndex, parse_sizes, word_ngrams
from synth.pipeline import Filter, Stage
from synth.records import Record

# Benchmark strings too generic to mean contamination (Magicoder's HUMAN_EVAL_STRINGS_OK, with
# its broken join string fixed to HumanEval's real solution, plus Euclid's gcd loop, which Code
# Alpaca contains as a textbook answer).
DEFAULT_ALLOW: tuple[str, ...] = (
    "return x + y",
    "return len(string)",
    "return n**2",
    "return ''.join(strings)",
    "while b: a, b = b, a % b return a",
)


def normalize(text: str) -> str:
    """Lower-case with every whitespace run collapsed to one space (the exact-match form)."""
    return " ".join(text.lower().split())


class ExactDecontam(Filter):
    """Drop records that contain a benchmark string verbatim (case- and whitespace-insensitive).

    Reads the record's ``train_fields``; writes ``meta['decontam']`` on drops.

    Args:
        benchmarks: the benchmarks to search for.
        fields: benchmark fields whose values are searched; None uses each benchmark's
            ``string_fields`` (HumanEval: docstring and solution).
        train_fields: record fields searched in (joined with a space).
        allow: strings never searched (compared after :func:`normalize`).
        min_chars: benchmark strings shorter than this (normalized) are not searched either.
    """

    name = "decontam_exact"

    def __init__(self, benchmarks: Sequence[Benchmark], *, fields: Sequence[str] | None = None,
                 train_fields: Sequence[str] = SAMPLE_FIELDS,
                 allow: Sequence[str] = DEFAULT_ALLOW, min_chars: int = 1) -> None:
        super().__init__()
        import ahocorasick

        self.train_fields = tuple(train_fields)
        self._checked = False
        allowed = {normalize(a) for a in allow}
        self.automaton = ahocorasick.Automaton()
        self.n_strings = 0
        self.n_allowed = 0
        for bench in benchmarks:
            use = tuple(fields or bench.string_fields)
            bench.check_fields(use)
            for item in bench.items:
                for f in use:
                    s = normalize(item.fields[f])
                    if len(s) < min_chars:
                        continue
                    if s in allowed:
                        self.n_allowed += 1
                        continue
                    if s not in self.automaton:  # identical strings: the first item reports
                        self.automaton.add_word(s, (bench.name, item.id, f, s))
                        self.n_strings += 1
        if self.n_strings == 0:
            raise ConfigError("exact decontamination has no benchmark strings left to search")
        self.automaton.make_automaton()

    def keep(self, record: Record) -> bool | tuple[bool, str]:
        if not self._checked:
            check_record_fields(record, self.train_fields)
            self._checked = True
        text = normalize(record_text(record, self.train_fields))
        for _end, (bench, item, fld, s) in self.automaton.iter(text):
            record.meta["decontam"] = {"method": "exact", "benchmark": bench, "item": item,
                                       "field": fld, "score": 1.0, "matched": s}
            return False, f"exact:{bench}"
        return True


class NgramDecontam(Filter):
    """Drop records whose n-gram overlap S with any benchmark item is ≥ ``threshold``.

    Reads the record's ``train_fields``; writes ``meta['decontam']`` (benchmark, item, score,
    shared n-grams) on drops. Decides a batch of records at once.

    Args:
        benchmarks: the benchmarks (test side).
        threshold: drop when max S(test, train) >= threshold (XCoder: 0.05).
        sizes: n-gram sizes (XCoder: 4 and 5).
        test_fields: benchmark fields joined into each item's text; None uses each benchmark's
            ``text_fields`` (HumanEval: prompt and solution).
        train_fields: record fields compared.
        max_shown: shared n-grams kept in ``meta`` per dropped record.
    """

    name = "decontam_ngram"
    batch_size = 4096

    def __init__(self, benchmarks: Sequence[Benchmark], *, threshold: float = 0.05,
                 sizes: Sequence[int] = DEFAULT_SIZES,
                 test_fields: Sequence[str] | None = None,
                 train_fields: Sequence[str] = SAMPLE_FIELDS, max_shown: int = 20) -> None:
        super().__init__()
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"--threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.sizes = parse_sizes(sizes)
        self.train_fields = tuple(train_fields)
        self.max_shown = max_shown
        self._checked = False
        self.items: list[tuple[str, str]] = []  # test index -> (benchmark, item id)
        self.texts: list[str] = []
        for bench in benchmarks:
            self.texts += bench.texts(tuple(test_fields or bench.text_fields))
            self.items += [(bench.name, item.id) for item in bench.items]
        self.index = NgramIndex(self.texts, self.sizes)

    def keep(self, record: Record) -> bool | tuple[bool, str]:
        return self.keep_batch([record])[0]

    def keep_batch(self, records: list[Record]) -> list[bool | tuple[bool, str]]:
        if not self._checked:
            check_record_fields(records[0], self.train_fields)
            self._checked = True
        texts = [record_text(r, self.train_fields) for r in records]
        ov = self.index.overlaps(texts)
        verdicts: list[bool | tuple[bool, str]] = [True] * len(records)
        if len(ov) == 0:
            return verdicts
        # Each record's most similar item (the first item on ties).
        order = np.lexsort((ov.test, -ov.score, ov.train))
        first = order[np.r_[True, ov.train[order][1:] != ov.train[order][:-1]]]
        for j in first[ov.score[first] >= self.threshold].tolist():
            i, t = int(ov.train[j]), int(ov.test[j])
            bench, item = self.items[t]
            records[i].meta["decontam"] = self._evidence(bench, item, float(ov.score[j]),
                                                         self.texts[t], texts[i])
            verdicts[i] = (False, f"ngram:{bench}")
        return verdicts

    def _evidence(self, bench: str, item: str, score: float, test_text: str,
                  train_text: str) -> dict[str, Any]:
        shared = sorted(word_ngrams(test_text, self.sizes) & word_ngrams(train_text, self.sizes))
        return {"method": "ngram", "benchmark": bench, "item": item, "score": score,
                "threshold": self.threshold, "n_shared": len(shared),
                "shared_ngrams": [" ".join(g) for g in shared[:self.max_shown]]}


def summary(stats: dict[str, Any], stages: Sequence[Stage],
             config: dict[str, Any]) -> dict[str, Any]:
    """What decontamination did: records in, kept, dropped per reason, plus ``config``."""
    dropped: dict[str, int] = {}
    for st in stats["stages"].values():
        for reason, n in st["rejected"].items():
            dropped[reason] = dropped.get(reason, 0) + n
    first = stats["stages"].get(stages[0].name, {})
    last = stats["stages"].get(stages[-1].name, {})
    return config | {"records_in": first.get("in", 0), "kept": last.get("out", 0),
                     "dropped": dict(sorted(dropped.items())),
                     "wall_time_s": stats["wall_time_s"]}


def decontam_markdown(summary: dict[str, Any]) -> str:
    """A Markdown section saying what decontamination removed (for the dataset card)."""
    benches = ", ".join(f"{b['name']} ({b['items']} items)" for b in summary["benchmarks"])
    lines = [
        "## Decontamination",
        "",
        f"Checked against {benches} with {' and '.join(summary['methods'])} matching "
        f"(n-gram sizes {'/'.join(map(str, summary['ngram_sizes']))}, drop when "
        f"S >= {summary['threshold']}); compared fields `{' + '.join(summary['train_fields'])}`.",
        "",
        "| records in | kept | dropped by reason |",
        "|---:|---:|---|",
        f"| {summary['records_in']} | {summary['kept']} | "
        + (", ".join(f"{k}: {v}" for k, v in summary["dropped"].items()) or "none") + " |",
    ]
    return "\n".join(lines)
