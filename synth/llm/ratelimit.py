"""Requests- and tokens-per-minute limits: async token buckets, tiktoken counts."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

log = logging.getLogger("synth.llm")


class TokenBucket:
    """A bucket refilled continuously at ``per_minute / 60`` units per second.

    ``acquire(n)`` waits until ``n`` units are available; a request larger than the whole
    bucket is let through once the bucket is full, so it can never wait forever.
    """

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    async def acquire(self, amount: float) -> None:
        amount = min(float(amount), self.capacity)
        async with self._lock:  # FIFO: waiting requests are served in order
            self._refill()
            while self.level < amount:
                await asyncio.sleep((amount - self.level) / self.rate)
                self._refill()
            self.level -= amount


@functools.cache
def _encoding() -> Any:
    import tiktoken

    try:
        return tiktoken.get_encoding("cl100k_base")
    except Exception as exc:  # tiktoken fetches its BPE file on first use; offline that fails
        log.warning("tiktoken's cl100k_base is not available offline (%s); --tpm counts "
                    "tokens as characters/4", exc.__class__.__name__)
        return None


def count_tokens(text: str) -> int:
    """Token count of ``text`` with tiktoken's cl100k_base (an estimate for other models)."""
    enc = _encoding()
    if enc is None:
        return max(1, len(text) // 4)
    return len(enc.encode(text, disallowed_special=()))
