"""Coreset selection over a run's seeds, and incremental refresh of seeds and coreset.

``select`` (WaveCoder's CodeOcean step): embed every seed of ``RUN/seeds.jsonl`` (cached by seed
id and model), run KCenterGreedy for ``k`` centres, write the chosen seeds in pick order to
``RUN/coreset.jsonl`` and the selection state to ``RUN/coreset.json``.

``refresh``: re-scan the sources recorded in ``RUN/seeds.manifest.json``. A file (or dataset
row) whose content hash is unchanged keeps its seeds as they are (same ids); new and changed
files are extracted afresh (gates, dedup against the kept seeds, quotas minus what is kept);
seeds of deleted or changed files go. If a coreset exists, its centres that survive are kept as
already selected and KCenterGreedy adds new centres up to ``k``; only seeds without a cached
embedding are embedded. A refresh with no corpus change rewrites nothing and embeds nothing.

Files written, all atomically::

    RUN/seeds.jsonl          every seed
    RUN/seeds.manifest.json  sources and config of the extraction (read by refresh)
    RUN/seeds.files.jsonl    content hash of every file read (read by refresh)
    RUN/embeddings.sqlite    embedding cache keyed by (model, seed id)
    RUN/coreset.json         k, metric, model, seed, chosen ids in pick order, radii
    RUN/coreset.jsonl        the chosen seeds in pick order (``synth generate --seeds``)
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.embed import Embedder, EmbeddingCache, embed_cached
from synth.errors import ConfigError, InputError
from synth.io.seeds import SEEDS_FILE, read_seeds, write_seeds
from synth.records import Record
from synth.seeds.coreset import kcenter_greedy
from synth.seeds.dedup import Deduper
from synth.seeds.extract import (
    FileIndex,
    apply_quota,
    cap_for,
    dedup,
    iter_sources,
    read_manifest,
    units_from_file,
    with_licenses,
)
from synth.seeds.licenses import LicenseDetector

CORESET_STATE = "coreset.json"
CORESET_SEEDS = "coreset.jsonl"


@dataclass
class CoresetReport:
    """What a selection did."""

    k: int
    seeds: int
    embedded: int
    kept: int = 0
    added: int = 0
    removed: int = 0
    radius: float = 0.0
    changed: bool = True


@dataclass
class RefreshReport:
    """What a refresh did: files and seeds added/removed/kept, and the coreset update."""

    files: Counter[str] = field(default_factory=Counter)
    added: int = 0
    removed: int = 0
    kept: int = 0
    coreset: CoresetReport | None = None

    def changed(self) -> bool:
        return bool(self.added or self.removed)


def _seed_key(record: Record) -> tuple[str, str]:
    prov = record.meta.get("provenance", {})
    return str(prov.get("root", "")), str(prov.get("path", ""))


def select_coreset(run_dir: Path, k: int, embedder: Embedder, *, metric: str = "cosine",
                   seed: int = 0, device: str | None = None,
                   on_embed: Callable[[int, int], None] | None = None,
                   on_pick: Callable[[int, float], None] | None = None) -> CoresetReport:
    """Choose ``k`` seeds of ``RUN/seeds.jsonl`` by KCenterGreedy over their embeddings."""
    seeds = list(read_seeds(Path(run_dir) / SEEDS_FILE))
    if not seeds:
        raise InputError(f"{Path(run_dir) / SEEDS_FILE} holds no seeds")
    if k < 1:
        raise ConfigError(f"--k must be positive, got {k}")
    k = min(k, len(seeds))
    with EmbeddingCache(run_dir) as cache:
        emb, embedded = embed_cached([r.id for r in seeds], [r.seed for r in seeds], embedder,
                                     cache, on_progress=on_embed)
    result = kcenter_greedy(emb, k, metric=metric, seed=seed, device=device, on_pick=on_pick)
    chosen = [seeds[i] for i in result.indices]
    _write_coreset(run_dir, chosen, {"k": k, "metric": metric, "model": embedder.name,
                                     "max_seq_length": embedder.max_seq_length, "seed": seed,
                                     "radii": result.radii.tolist()})
    return CoresetReport(k=k, seeds=len(seeds), embedded=embedded, added=k,
                         radius=float(result.radii[-1]))


def _write_coreset(run_dir: Path, chosen: list[Record], state: dict[str, Any]) -> None:
    write_seeds(chosen, Path(run_dir) / CORESET_SEEDS)
    path = Path(run_dir) / CORESET_STATE
    tmp = path.with_suffix(".tmp")
    state = {**state, "ids": [r.id for r in chosen]}
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_coreset_state(run_dir: Path) -> dict[str, Any] | None:
    """``RUN/coreset.json``, or None when no coreset was selected in this run directory."""
    path = Path(run_dir) / CORESET_STATE
    if not path.exists():
        return None
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not a coreset state file ({exc})") from exc
    missing = [key for key in ("ids", "k", "model", "metric") if key not in state]
    if missing:
        raise InputError(f"{path} is not a coreset state file (no {', '.join(missing)})")
    return state


def refresh(run_dir: Path, counts: Counter[str], *, device: str | None = None,
            embed_with: Callable[[Embedder], Embedder] | None = None,
            on_embed: Callable[[int, int], None] | None = None, secrets: str | None = None,
            secrets_allow: tuple[str, ...] | None = None) -> RefreshReport:
    """Bring ``RUN/seeds.jsonl`` (and the coreset, if any) up to date with the sources.

    ``secrets``/``secrets_allow`` override the extraction's (from the manifest) for new and
    changed files. New seeds are embedded with the coreset's own embedder
    (:func:`coreset_embedder`), built only when some must be; ``embed_with`` wraps it (an
    executor's embedding actors).
    """
    run_dir = Path(run_dir)
    roots, datasets, cfg = read_manifest(run_dir)
    if secrets is not None or secrets_allow is not None:
        cfg = dataclasses.replace(cfg, secrets=secrets or cfg.secrets,
                                  secrets_allow=tuple(secrets_allow or cfg.secrets_allow))
        cfg.validate()
    seeds_path = run_dir / SEEDS_FILE
    old_files = FileIndex.read(run_dir)
    old: dict[tuple[str, str], list[Record]] = {}
    old_ids: list[str] = []
    for record in read_seeds(seeds_path):
        key = _seed_key(record)
        old_files.setdefault(key, str(record.meta["provenance"].get("file_sha256", "")))
        old.setdefault(key, []).append(record)
        old_ids.append(record.id)

    report = RefreshReport()
    deduper = Deduper(cfg.near_dedup)
    kept: list[Record] = []
    fresh: list[Record] = []
    seen: set[tuple[str, str]] = set()
    index = FileIndex(run_dir)
    licenses = LicenseDetector()
    try:
        for source in iter_sources(roots, cfg, counts, datasets):
            index.add(source)
            key = (source.root, source.path)
            seen.add(key)
            prev_sha = old_files.get(key)
            if prev_sha == source.sha256:
                report.files["unchanged"] += 1
                for record in old.get(key, ()):
                    deduper.add(record.seed)  # kept seeds win against new near-duplicates
                    kept.append(record)
                continue
            report.files["changed" if prev_sha is not None else "new"] += 1
            fresh.extend(with_licenses(units_from_file(source, cfg, counts), counts,
                                       detector=licenses))
    except BaseException:
        index.discard()
        raise
    report.files["deleted"] = sum(1 for key in old_files if key not in seen)

    used = Counter(r.lang for r in kept if cap_for(cfg.quota, r.lang) is not None)
    added = list(apply_quota(dedup(fresh, deduper, counts), cfg.quota, cfg.seed, counts, used))
    new_seeds = kept + added
    new_ids = {r.id for r in new_seeds}
    before = set(old_ids)
    report.added = len(new_ids - before)
    report.removed = len(before - new_ids)
    report.kept = len(before & new_ids)
    if report.changed() or report.files["new"] or report.files["changed"] \
            or report.files["deleted"]:
        index.commit()
    else:
        index.discard()
    if report.changed():
        write_seeds(new_seeds, seeds_path)
    else:
        new_seeds = list(read_seeds(seeds_path))  # untouched file, untouched order
    state = read_coreset_state(run_dir)
    if state is not None:
        report.coreset = _extend_coreset(run_dir, state, new_seeds, report.changed(),
                                         embed_with, device, on_embed)
    return report


def _extend_coreset(run_dir: Path, state: dict[str, Any], seeds: list[Record], changed: bool,
                    embed_with: Callable[[Embedder], Embedder] | None, device: str | None,
                    on_embed: Callable[[int, int], None] | None) -> CoresetReport:
    """Keep the surviving centres as already chosen and add new ones by KCenterGreedy up to k."""
    position = {r.id: i for i, r in enumerate(seeds)}
    surviving = [position[c] for c in state["ids"] if c in position]
    k = min(int(state["k"]), len(seeds))
    report = CoresetReport(k=k, seeds=len(seeds), embedded=0, kept=min(len(surviving), k),
                           removed=len(state["ids"]) - min(len(surviving), k))
    if not changed and len(surviving) == len(state["ids"]) == k:
        report.changed = False
        report.radius = float((state.get("radii") or [0.0])[-1])
        return report
    chosen: list[int] = []
    radii: list[float] = []
    if k:
        embedder = coreset_embedder(state, device)
        if embed_with is not None:
            embedder = embed_with(embedder)
        if embedder.name != state["model"]:
            raise ConfigError(f"the coreset was built with embedder {state['model']!r}; refresh "
                              f"with the same one (got {embedder.name!r})")
        with EmbeddingCache(run_dir) as cache:
            emb, report.embedded = embed_cached([r.id for r in seeds], [r.seed for r in seeds],
                                                embedder, cache, on_progress=on_embed)
        result = kcenter_greedy(emb, k, metric=state["metric"], initial=surviving,
                                device=device)
        chosen, radii = result.indices.tolist(), result.radii.tolist()
    report.added = len(chosen) - report.kept
    report.radius = radii[-1] if radii else 0.0
    _write_coreset(run_dir, [seeds[i] for i in chosen], {
        **{key: state[key] for key in ("k", "metric", "model", "seed") if key in state},
        "max_seq_length": state.get("max_seq_length"), "radii": radii})
    return report


def coreset_embedder(state: dict[str, Any], device: str | None = None) -> Embedder:
    """The embedder a coreset was built with (its model and token limit), for extending it."""
    return Embedder(_base_model(state), device=device, max_seq_length=state.get("max_seq_length"))


def _base_model(state: dict[str, Any]) -> str:
    """The model name without the ``@max_seq_length`` suffix that the cache key carries."""
    model = str(state["model"])
    if state.get("max_seq_length") is not None:
        model = model.rsplit("@", 1)[0]
    return model
