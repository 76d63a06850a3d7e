"""Seed snippets: Magicoder windows, whole functions or whole files, and the seeds file.

OSS-Instruct (Magicoder, Wei et al. 2023) seeds each prompt with a random run of 1–15
consecutive lines from a real file. We draw, per file, a length in ``[min_lines, max_lines]`` and
a start line where that length fits, from an RNG seeded by (``--seed``, file content, path): the
same file always yields the same windows whatever the walk order, so a corpus refresh keeps the
seeds (and ids) of unchanged files. ``--mode function`` takes whole functions/classes instead
(:mod:`synth.seeds.units`), ``--mode file`` whole files.

Every unit then goes through the quality gates (:mod:`synth.seeds.quality`), exact and near
dedup across the whole corpus (:mod:`synth.seeds.dedup`) and per-language quotas (Magicoder's
40K Python / 5K per other language split is ``--quota python=40000 --quota '*'=5000``). Each
drop is counted by reason. Everything streams: only the dedup index (and, with quotas, the
sampled seeds) grows with the corpus.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import json
import os
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from synth.config import SeedsConfig
from synth.errors import InputError
from synth.executors import Executor
from synth.filters.secrets import SeedScrubber
from synth.io.corpus import DatasetSource, iter_dataset_sources
from synth.records import Record, content_id
from synth.seeds.corpus import SourceFile, iter_candidate_paths, iter_source_files, read_source
from synth.seeds.dedup import Deduper
from synth.seeds.licenses import LicenseDetector, allowed
from synth.seeds.quality import gate
from synth.seeds.units import file_unit, function_units, iter_unit_text

MANIFEST_FILE = "seeds.manifest.json"
FILES_FILE = "seeds.files.jsonl"


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


def units_from_file(source: SourceFile, cfg: SeedsConfig,
                    counts: Counter[str]) -> Iterator[Record]:
    """The seeds of one file in ``cfg.mode`` that pass the quality gates (not yet deduped).

    Secrets and personal data are redacted (or the seed dropped) right after the quality gates,
    before dedup, so ids, dedup and everything downstream work on the redacted text.
    """
    scrub = SeedScrubber.for_file(source, cfg.secrets, cfg.secrets_allow, counts)
    source = scrub.source
    if cfg.mode == "window":
        records: Iterable[Record] = snippets_from_file(source, cfg)
    else:
        units = function_units(source, cfg, counts) if cfg.mode == "function" \
            else [file_unit(source)]
        records = (Record.from_seed(text, source.lang, {
            "root": source.root, "path": source.path, "start_line": unit.start,
            "end_line": unit.end, "file_sha256": source.sha256, "name": unit.name,
        }) for unit, text in iter_unit_text(source, units))
    for record in records:
        if not record.seed.strip():
            counts["drop_blank"] += 1
            continue
        reason = gate(record.seed, record.lang, cfg)
        if reason is not None:
            counts[f"drop_{reason}"] += 1
            continue
        record = scrub(record)  # after the gates: only seeds that may be kept are counted
        if record is None:
            continue
        record.meta["provenance"]["mode"] = cfg.mode
        yield record


def iter_sources(roots: Iterable[Path], cfg: SeedsConfig, counts: Counter[str],
                 datasets: Sequence[DatasetSource] = ()) -> Iterator[SourceFile]:
    """Every usable file under ``roots``, then every usable row of ``datasets``."""
    yield from iter_source_files(roots, counts, cfg.max_file_bytes)
    for src in datasets:
        yield from iter_dataset_sources(src, counts, cfg.max_file_bytes)


class FileIndex:
    """``RUN/seeds.files.jsonl``: ``[sha256, root, path]`` of every file seeds were taken from.

    Written line by line while extracting (constant memory) and renamed into place on
    :meth:`commit`. ``refresh`` reads it to tell unchanged, changed and new files apart, also
    for files that yielded no seed.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / FILES_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_suffix(".tmp")
        self._fh = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115 (closed in commit)

    def add(self, source: SourceFile) -> SourceFile:
        self._fh.write(json.dumps([source.sha256, source.root, source.path]) + "\n")
        return source

    def commit(self) -> None:
        self._fh.close()
        os.replace(self._tmp, self.path)

    def discard(self) -> None:
        self._fh.close()
        self._tmp.unlink(missing_ok=True)

    @staticmethod
    def read(run_dir: Path) -> dict[tuple[str, str], str]:
        """``(root, path) -> sha256`` of the last extraction (empty if there is no index)."""
        path = Path(run_dir) / FILES_FILE
        out: dict[tuple[str, str], str] = {}
        if path.exists():
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    sha, root, rel = json.loads(line)
                    out[(root, rel)] = sha
        return out


def dedup(records: Iterable[Record], deduper: Deduper, counts: Counter[str]) -> Iterator[Record]:
    """Records that duplicate none kept before (exactly or, if enabled, nearly)."""
    for record in records:
        reason = deduper.check(record.seed)
        if reason is not None:
            counts[f"drop_{reason}"] += 1
            continue
        yield record


def cap_for(quota: dict[str, int], lang: str) -> int | None:
    """The quota of ``lang``: its own entry, else the ``*`` entry, else None (no cap)."""
    return quota.get(lang, quota.get("*"))


def apply_quota(records: Iterable[Record], quota: dict[str, int], seed: int,
                counts: Counter[str], used: dict[str, int] | None = None) -> Iterator[Record]:
    """At most ``quota[lang]`` (minus ``used[lang]``) seeds per language, a uniform sample.

    Each seed gets a priority hashed from (``seed``, its id); a language keeps the seeds with the
    smallest priorities (a bottom-k sample: independent of input order, O(cap) memory).
    Uncapped languages stream through; capped ones are yielded at the end in input order.
    """
    if not quota:
        yield from records
        return
    heaps: dict[str, list[tuple[str, int, Record]]] = {}
    for order, record in enumerate(records):
        cap = cap_for(quota, record.lang)
        if cap is None:
            yield record
            continue
        cap = max(0, cap - (used or {}).get(record.lang, 0))
        heap = heaps.setdefault(record.lang, [])
        # A max-heap on the priority via negated hex digits: keep the cap smallest.
        item = (_neg(content_id(seed, record.id)), order, record)
        if len(heap) < cap:
            heapq.heappush(heap, item)
        elif cap and item > heap[0]:
            heapq.heapreplace(heap, item)
            counts["drop_quota"] += 1
        else:
            counts["drop_quota"] += 1
    kept = sorted((item for heap in heaps.values() for item in heap), key=lambda it: it[1])
    for _, _, record in kept:
        yield record


def _neg(hex_digest: str) -> str:
    return hex_digest.translate(_NEG_HEX)


_NEG_HEX = str.maketrans("0123456789abcdef", "fedcba9876543210")


def with_licenses(records: Iterable[Record], counts: Counter[str],
                  allow: tuple[str, ...] = (),
                  detector: LicenseDetector | None = None) -> Iterator[Record]:
    """Put each seed's repository licence into its provenance (``license``); with ``allow``,
    drop seeds whose licence is not on it, counted as ``drop_license_not_allowed``
    (``drop_license`` is the quality gate's count of licence-header snippets)."""
    detector = detector or LicenseDetector()
    for record in records:
        prov = record.meta["provenance"]
        prov["license"] = detector.for_file(str(prov.get("root", "")), str(prov.get("path", "")))
        if not allowed(prov["license"], allow):
            counts["drop_license_not_allowed"] += 1
            continue
        yield record


def extract_seeds(roots: Iterable[Path], cfg: SeedsConfig, counts: Counter[str],
                  datasets: Sequence[DatasetSource] = (),
                  index: FileIndex | None = None,
                  license_allow: tuple[str, ...] = (),
                  executor: Executor | None = None) -> Iterator[Record]:
    """Stream seeds from every usable file under ``roots`` and every row of ``datasets``.

    Units in ``cfg.mode`` pass the quality gates, then exact (whitespace-normalised) and near
    dedup across the whole corpus, then the per-language quotas; every drop is counted in
    ``counts`` (``drop_<reason>``, ``skip_<reason>`` for whole files). Every file read is
    recorded in ``index`` when given.

    With a non-local ``executor``, reading, vetting and cutting files into units runs there on
    shards of paths (:func:`units_of_paths`); dedup and quotas, which need the whole stream in
    order, stay here and see the units in the local order, so the seeds are the same.
    """
    cfg.validate()
    if executor is not None and executor.name != "local":
        units: Iterable[Record] = _sharded_units(roots, cfg, counts, datasets, index, executor)
    else:
        sources = iter_sources(roots, cfg, counts, datasets)
        if index is not None:
            sources = map(index.add, sources)
        units = (r for source in sources for r in units_from_file(source, cfg, counts))
    # Licences are looked up here, in the driver, on the units in order (a repository's
    # licence file is read once and cached), whatever cut them.
    units = with_licenses(units, counts, license_allow)
    unique = dedup(units, Deduper(cfg.near_dedup), counts)
    for record in apply_quota(unique, cfg.quota, cfg.seed, counts):
        counts["seeds"] += 1
        yield record


FileUnits = tuple[SourceFile | None, list[Record], dict[str, int]]


def units_of_paths(cfg: SeedsConfig, paths: list[tuple[str, str]]) -> list[FileUnits]:
    """On a worker: read, vet and cut each ``(root, path)`` into gated units.

    Returns per path the file (its text dropped: the driver only indexes it), its units and
    the counts it caused.
    """
    out: list[FileUnits] = []
    for root, path in paths:
        counts: Counter[str] = Counter()
        source = read_source(Path(path), Path(root), counts, cfg.max_file_bytes)
        records = list(units_from_file(source, cfg, counts)) if source is not None else []
        slim = dataclasses.replace(source, text="") if source is not None else None
        out.append((slim, records, dict(counts)))
    return out


def _sharded_units(roots: Iterable[Path], cfg: SeedsConfig, counts: Counter[str],
                   datasets: Sequence[DatasetSource], index: FileIndex | None,
                   executor: Executor) -> Iterator[Record]:
    def paths() -> Iterator[tuple[str, str]]:
        for root in roots:
            try:
                resolved = Path(root).resolve(strict=True)
            except (OSError, RuntimeError) as exc:
                raise InputError(f"{root} cannot be read: {exc}") from exc
            for path in iter_candidate_paths(resolved, counts):
                yield str(resolved), str(path)

    for source, records, counted in executor.map_batches(
            functools.partial(units_of_paths, cfg), paths(), batch_size=64):
        counts.update(counted)
        if source is not None and index is not None:
            index.add(source)
        yield from records
    # Dataset rows stream from one reader; they are cut here.
    for src in datasets:
        for row in iter_dataset_sources(src, counts, cfg.max_file_bytes):
            if index is not None:
                index.add(row)
            yield from units_from_file(row, cfg, counts)


def write_manifest(run_dir: Path, roots: Sequence[Path], datasets: Sequence[DatasetSource],
                   cfg: SeedsConfig, counts: Counter[str]) -> Path:
    """Record what the seeds were extracted from and how, so ``refresh`` can redo it."""
    path = Path(run_dir) / MANIFEST_FILE
    data = {"paths": [str(Path(p).resolve()) for p in roots],
            "datasets": [dataclasses.asdict(d) for d in datasets],
            "config": dataclasses.asdict(cfg), "counts": dict(sorted(counts.items()))}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_manifest(run_dir: Path) -> tuple[list[Path], list[DatasetSource], SeedsConfig]:
    """The sources and config of the last extraction in ``run_dir``."""
    path = Path(run_dir) / MANIFEST_FILE
    if not path.exists():
        raise InputError(f"{path} does not exist: run `synth seeds extract` in this run "
                         "directory first")
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return ([Path(p) for p in data["paths"]],
                [DatasetSource(**d) for d in data["datasets"]], SeedsConfig(**data["config"]))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a seeds manifest ({exc})") from exc


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
