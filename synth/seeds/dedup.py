"""Exact and near-duplicate detection across a whole seed corpus.

Exact: whitespace-normalised hash (:func:`normalised_key`). Near: MinHash
over token 5-gram shingles with locality-sensitive hashing (``datasketch``), the approach of the
BigCode/StarCoder near-dedup pipelines; a snippet whose estimated Jaccard similarity to one
already kept reaches the threshold is dropped. The first occurrence wins, so feeding seeds that
must survive (e.g. the kept seeds of a refresh) first makes them win.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from typing import Any

from synth.errors import ConfigError

_TOKEN = re.compile(r"\w+|[^\w\s]")
SHINGLE = 5


def normalised_key(text: str) -> bytes:
    """Key for exact-duplicate detection: whitespace runs collapsed."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8", "surrogatepass")).digest()[:16]


def shingles(text: str, n: int = SHINGLE) -> list[bytes]:
    """The distinct token ``n``-grams of ``text`` (the whole text if it is shorter)."""
    tokens = _TOKEN.findall(text)
    grams = {" ".join(tokens[i:i + n]) for i in range(max(1, len(tokens) - n + 1))}
    return [g.encode("utf-8", "surrogatepass") for g in sorted(grams)]


class Deduper:
    """Remembers the snippets it has kept and tells whether a new one duplicates one of them.

    Args:
        near_threshold: Jaccard threshold for near-duplicates; 0 keeps exact dedup only.
        num_perm: MinHash permutations (memory per kept snippet grows with it).
        seed: seed of the MinHash permutations.
    """

    def __init__(self, near_threshold: float = 0.0, num_perm: int = 64, seed: int = 1) -> None:
        self.exact: set[bytes] = set()
        self._lsh: Any = None
        self._count = 0
        if near_threshold > 0:
            try:
                from datasketch import MinHash, MinHashLSH
            except ImportError as exc:
                raise ConfigError("near-dedup needs datasketch: pip install 'synth[dedup]' "
                                  "(or pass --near-dedup 0)") from exc
            self._lsh = MinHashLSH(threshold=near_threshold, num_perm=num_perm)
            proto = MinHash(num_perm=num_perm, seed=seed)
            # crc32: deterministic across runs and a C call per shingle (datasketch's default
            # sha1 is several times slower on short snippets).
            self._new = lambda: MinHash(num_perm=num_perm, seed=seed, hashfunc=zlib.crc32,
                                        permutations=proto.permutations, scheme=proto.scheme)

    def check(self, text: str) -> str | None:
        """``"duplicate"``/``"near_duplicate"`` if ``text`` repeats a kept snippet; else keep it."""
        key = normalised_key(text)
        if key in self.exact:
            return "duplicate"
        sig = self._signature(text)
        if sig is not None and self._lsh.query(sig):
            return "near_duplicate"
        self._keep(key, sig)
        return None

    def add(self, text: str) -> None:
        """Remember ``text`` as kept without checking it."""
        self._keep(normalised_key(text), self._signature(text))

    def _keep(self, key: bytes, sig: Any) -> None:
        self.exact.add(key)
        if sig is not None:
            self._lsh.insert(self._count, sig, check_duplication=False)
            self._count += 1

    def _signature(self, text: str) -> Any:
        if self._lsh is None:
            return None
        mh = self._new()
        mh.update_batch(shingles(text))
        return mh
