"""The good/bad example memory of the generator–discriminator loop (WaveCoder's case pools).

Every sample the discriminator accepts becomes a *good case* of its task; every sample it
rejects becomes a *bad case* carrying the failed rules and their reasons. Generator prompts
show a few whole cases of each kind as few-shot examples. Unlike WaveCoder's released sampler
(which drew characters of the pool's text), cases are drawn whole, with an RNG seeded by
``--seed`` and the record id.

Bounded: per task and kind, ``last`` keeps the K newest cases, ``best`` the K best scored
(good: accepted in fewer rounds; bad: more failed rules; the newer first on ties). Cases a user
seeds from files are pinned: never evicted, always eligible.

Deterministic under concurrency: records are numbered in input order and grouped in blocks
(the stage's window). A record of block ``b`` draws from the memory as it stood after blocks
``0..b-2`` had all finished, cases added in record order — never from whatever happened to
finish first. The previous block is skipped because it is usually still in flight, so a record
waits only when a record two blocks back is still running (a bounded lag, not lock-step). The
same inputs therefore give the same prompts whatever the timing, and a run resumed after a kill
renders the prompts the uninterrupted run would have.

Persisted: the memory is saved in the run store as blocks complete; an invocation starts from
the memory of the last invocation that completed (a resumed run starts where the killed run
started and replays its outcomes from the cache). The cases each record was shown are stored
too, so a rerun renders the very same prompts and is served from the request cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.errors import ConfigError, InputError
from synth.generators.base import NO_EXAMPLES, Examples, Task
from synth.io.rows import read_records
from synth.records import Record, content_id
from synth.store import RunStore

log = logging.getLogger("synth")

KINDS = ("good", "bad")
POLICIES = ("last", "best")
_KIND_WORDS = {"good": "good", "yes": "good", "accepted": "good", "accept": "good",
               "bad": "bad", "no": "bad", "rejected": "bad", "reject": "bad"}

Pools = dict[tuple[str, str], list[dict[str, Any]]]  # (task, kind) → cases, oldest first


@dataclass
class Outcome:
    """A case one record produced: which pool it joins, its score, the case itself."""

    task: str
    kind: str
    score: float
    case: dict[str, Any]


@dataclass
class _Block:
    finished: int = 0
    outcomes: list[tuple[int, int, Outcome]] = field(default_factory=list)  # (seq, n, outcome)


def make_case(task: Task, record: Record,
              problems: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A whole case as prompts show it: the generator's input and reply (and what was wrong)."""
    case: dict[str, Any] = {"input": task.example_input(record), "instance": task.instance(record),
            "problems": list(problems or []), "record_id": record.id}
    case["id"] = content_id("case", task.name, case["input"],
                            json.dumps(case["instance"], sort_keys=True))
    return case


class ExampleMemory:
    """Good and bad cases per task, bounded, persisted in the run store, sampled as few-shot.

    Args:
        store: the run store (its current invocation must have begun).
        size: cases kept per task and kind (pinned user cases not counted).
        policy: ``last`` (newest K) or ``best`` (best-scored K).
        shots: cases of each kind shown to the generator per record (0: none).
        seed: seeds the draw of cases.
        block: records per block (the stage sets its window here before the first record).
    """

    def __init__(self, store: RunStore, size: int = 16, policy: str = "last", shots: int = 1,
                 seed: int = 0, block: int = 16) -> None:
        if policy not in POLICIES:
            raise ConfigError(f"--memory-policy must be one of {', '.join(POLICIES)}, "
                              f"got {policy!r}")
        if size < 0 or shots < 0:
            raise ConfigError("--memory-size and --few-shot must not be negative")
        self.store = store
        self.size = size
        self.policy = policy
        self.shots = shots
        self.seed = seed
        self.block = block
        self.pinned: Pools = {}
        for task, kind, _, _, body in store.memory_load(0):
            self.pinned.setdefault((task, kind), []).append(body)
        base: Pools = {}
        base_gen = store.memory_base_gen()
        for task, kind, _, score, body in store.memory_load(base_gen) if base_gen else []:
            base.setdefault((task, kind), []).append(body | {"score": score})
        # snapshots[j]: the memory after blocks 0..j-1 (snapshots[0] is the base)
        self._snapshots: dict[int, Pools] = {0: base}
        self._latest = 0
        self._blocks: dict[int, _Block] = {}
        self._events: dict[int, asyncio.Event] = {}
        self.waits = 0  # records that had to wait for an older block (bounded-lag stalls)

    # -- what a record sees ------------------------------------------------------------------

    async def examples(self, task: str, record_id: str, seq: int) -> Examples:
        """The few-shot cases for record number ``seq``: drawn once, the same on every rerun."""
        if self.shots == 0:
            return NO_EXAMPLES
        key = f"{task}:{self.shots}:{self.seed}"
        chosen = self.store.fewshot_get(record_id, key)
        if chosen is None:
            pools = await self.snapshot(max(seq // self.block - 1, 0))
            rng: random.Random | None = None  # (seeding costs more than a draw: only if used)
            chosen = {}
            for kind in KINDS:
                pool = self.pinned.get((task, kind), []) + pools.get((task, kind), [])
                if not pool:  # sampling nothing draws nothing: the next kind's draw is the same
                    chosen[kind] = []
                    continue
                rng = rng or random.Random(f"{self.seed}:{record_id}:fewshot")
                chosen[kind] = [_public(c) for c in rng.sample(pool, min(self.shots, len(pool)))]
            self.store.fewshot_put(record_id, key, chosen)
        return Examples(tuple(chosen["good"]), tuple(chosen["bad"]))

    async def snapshot(self, index: int) -> Pools:
        """The memory after blocks ``0..index-1``, waiting for them to finish if need be."""
        if index not in self._snapshots:
            if index <= self._latest:
                raise RuntimeError(f"memory snapshot {index} was already dropped")
            self.waits += 1
            await self._events.setdefault(index, asyncio.Event()).wait()
        # Records start in input order, so no later record asks for an older snapshot.
        for old in [j for j in self._snapshots if j < index]:
            del self._snapshots[old]
        return self._snapshots[index]

    # -- what a record produced --------------------------------------------------------------

    def finish(self, seq: int, outcomes: list[Outcome]) -> None:
        """Record number ``seq`` is done (accepted, rejected or failed) with ``outcomes``.

        Every record the stage takes must finish exactly once, or later blocks wait forever.
        """
        block = self._blocks.setdefault(seq // self.block, _Block())
        block.finished += 1
        block.outcomes += [(seq, n, o) for n, o in enumerate(outcomes)]
        while self._blocks.get(self._latest, _Block()).finished == self.block:
            self._advance()

    def close(self, complete: bool) -> None:
        """Save the memory; ``complete`` (the run finished) also folds in the last, partial
        block and makes this the memory the next invocation starts from."""
        if complete:
            while self._latest in self._blocks:
                self._advance(save=False)
        self.store.memory_save(self._rows(self._snapshots[self._latest]), complete)

    def _advance(self, save: bool = True) -> None:
        block = self._blocks.pop(self._latest)
        pools = {key: list(cases) for key, cases in self._snapshots[self._latest].items()}
        for _, _, o in sorted(block.outcomes, key=lambda t: (t[0], t[1])):
            # a case seen again (a model repeating itself) is refreshed, not duplicated
            pool = [c for c in pools.get((o.task, o.kind), []) if c["id"] != o.case["id"]]
            pool.append(o.case | {"score": o.score})
            pools[(o.task, o.kind)] = self._bound(pool)
        self._latest += 1
        self._snapshots[self._latest] = pools
        if save:
            self.store.memory_save(self._rows(pools))
        event = self._events.pop(self._latest, None)
        if event is not None:
            event.set()

    def _bound(self, pool: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(pool) <= self.size:
            return pool
        if self.policy == "last":
            return pool[len(pool) - self.size:] if self.size else []
        # best: the top K by score, the newer first on ties; kept in insertion order
        ranked = sorted(range(len(pool)), key=lambda i: (pool[i]["score"], i), reverse=True)
        keep = set(ranked[:self.size])
        return [c for i, c in enumerate(pool) if i in keep]

    @staticmethod
    def _rows(pools: Pools) -> list[tuple[str, str, str, float, dict[str, Any]]]:
        return [(task, kind, c["id"], float(c["score"]), _public(c))
                for (task, kind), cases in sorted(pools.items()) for c in cases]

    # -- inspection and seeding --------------------------------------------------------------

    def cases(self, task: str, kind: str) -> list[dict[str, Any]]:
        """The cases of ``task`` and ``kind`` in the latest snapshot, pinned ones first."""
        latest = self._snapshots.get(self._latest, {})
        return self.pinned.get((task, kind), []) + latest.get((task, kind), [])

    def counts(self) -> dict[str, dict[str, int]]:
        """Cases held per task and kind in the latest snapshot (pinned ones included)."""
        out: Counter[tuple[str, str]] = Counter()
        for pools in (self.pinned, self._snapshots.get(self._latest, {})):
            for key, cases in pools.items():
                out[key] += len(cases)
        result: dict[str, dict[str, int]] = {}
        for (task, kind), n in sorted(out.items()):
            result.setdefault(task, {})[kind] = n
        return result

    def seed_from(self, path: Path, tasks: Mapping[str, Task],
                  scrub: Callable[[Iterable[Record]], Iterable[Record]] | None = None) -> int:
        """Pin cases from an instruction dataset file or directory; returns how many were new.

        Each row is a sample (``instruction``/``input``/``response``, ``seed``, ``lang``,
        ``task``; a synth ``dataset/`` works as is). ``kind`` (good/bad, default good) says
        which pool it joins; a bad case's ``problems`` (list of ``{rule, reason}``) or
        ``critique`` says what is wrong with it. Rows of a task not in this run are skipped;
        without a ``task`` column the rows belong to the run's only task.
        """
        added = skipped = 0
        rows: Iterable[Record] = read_records(path)
        for row in scrub(rows) if scrub is not None else rows:
            extra = dict(row.meta.get("extra") or {})
            name = row.task or (next(iter(tasks)) if len(tasks) == 1 else "")
            task = tasks.get(name)
            if task is None:
                skipped += 1
                continue
            kind = _KIND_WORDS.get(str(extra.get("kind", "good")).strip().lower())
            if kind is None:
                raise InputError(f"{path}: row {row.meta.get('index')}: kind must be good or "
                                 f"bad, got {extra.get('kind')!r}")
            for key in ("target_lang", "evol"):
                if key in extra:
                    row.meta[key] = extra[key]
            case = make_case(task, row, _problems(extra))
            if self.store.memory_pin(task.name, kind, case["id"], case):
                self.pinned.setdefault((task.name, kind), []).append(case)
                added += 1
        if skipped:
            log.warning("%s: skipped %d example rows whose task is not in this run", path, skipped)
        return added


def _public(case: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in case.items() if k != "score"}


def _problems(extra: dict[str, Any]) -> list[dict[str, str]]:
    problems = extra.get("problems")
    if isinstance(problems, list):
        return [{"rule": str(p.get("rule", "")), "reason": str(p.get("reason", ""))}
                if isinstance(p, dict) else {"rule": "", "reason": str(p)} for p in problems]
    critique = extra.get("critique") or extra.get("analysis")
    return [{"rule": "", "reason": str(critique)}] if critique else []
