"""The good/bad example memory of the generator–discriminator loop (WaveCoder's case pools).

Every sample the discriminator accepts becomes a *good case* of its task; every sample it
rejects becomes a *bad case* carrying the failed rules and their reasons. Generator prompts
show a few whole cases of each kind as few-shot examples. Unlike WaveCoder's released sampler
(which drew characters of the pool's text), cases are drawn whole, with an RNG seeded by
``--seed`` and the record id.

The memory is bounded per task and kind: ``last`` keeps the K newest cases, ``best`` the K best
scored (good: accepted in fewer rounds; bad: more failed rules; newest first on ties). Cases a
user seeds from files are pinned: never evicted, always eligible. Everything lives in the run
store, and the cases each record was shown are stored too, so a rerun renders the very same
prompts and is served from the request cache.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synth.datafiles import read_records
from synth.errors import ConfigError, InputError
from synth.generators.base import NO_EXAMPLES, Examples, Task
from synth.records import Record, content_id
from synth.store import RunStore

log = logging.getLogger("synth")

KINDS = ("good", "bad")
POLICIES = ("last", "best")
_KIND_WORDS = {"good": "good", "yes": "good", "accepted": "good", "accept": "good",
               "bad": "bad", "no": "bad", "rejected": "bad", "reject": "bad"}


class ExampleMemory:
    """Good and bad cases per task, bounded, persisted in the run store, sampled as few-shot.

    Args:
        store: the run store holding the cases.
        size: cases kept per task and kind (pinned user cases not counted).
        policy: ``last`` (newest K) or ``best`` (best-scored K).
        shots: cases of each kind shown to the generator per record (0: none).
        seed: seeds the draw of cases.
    """

    def __init__(self, store: RunStore, size: int = 16, policy: str = "last", shots: int = 1,
                 seed: int = 0) -> None:
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

    def add(self, task: Task, record: Record, kind: str, score: float,
            problems: list[dict[str, str]] | None = None, pinned: bool = False) -> bool:
        """Remember ``record``'s sample as a ``kind`` case of ``task``; True when it is new."""
        case = {"input": task.example_input(record), "instance": task.instance(record),
                "problems": list(problems or []), "record_id": record.id}
        case_id = content_id("case", task.name, kind, case["input"],
                             json.dumps(case["instance"], sort_keys=True))
        added = self.store.memory_add(task.name, kind, case_id, case, score, pinned)
        if added and not pinned:
            self.store.memory_prune(task.name, kind, self.size, self.policy == "best")
        return added

    def cases(self, task: str, kind: str) -> list[dict[str, Any]]:
        return self.store.memory_cases(task, kind)

    def examples(self, task: str, record_id: str) -> Examples:
        """The few-shot cases for ``record_id``: drawn once, then the same on every rerun."""
        if self.shots == 0:
            return NO_EXAMPLES
        key = f"{task}:{self.shots}:{self.seed}"
        chosen = self.store.fewshot_get(record_id, key)
        if chosen is None:
            rng = random.Random(f"{self.seed}:{record_id}:fewshot")
            chosen = {}
            for kind in KINDS:
                pool = self.cases(task, kind)
                chosen[kind] = rng.sample(pool, min(self.shots, len(pool)))
            self.store.fewshot_put(record_id, key, chosen)
        return Examples(tuple(chosen["good"]), tuple(chosen["bad"]))

    def counts(self) -> dict[str, dict[str, int]]:
        """Cases held per task and kind."""
        rows = self.store.db.execute(
            "SELECT task, kind, COUNT(*) FROM memory GROUP BY task, kind").fetchall()
        out: dict[str, dict[str, int]] = {}
        for task, kind, n in rows:
            out.setdefault(task, {})[kind] = int(n)
        return out

    def seed_from(self, path: Path, tasks: Mapping[str, Task]) -> int:
        """Pin cases from an instruction dataset file or directory; returns how many were new.

        Each row is a sample (``instruction``/``input``/``response``, ``seed``, ``lang``,
        ``task``; a synth ``dataset/`` works as is). ``kind`` (good/bad, default good) says
        which pool it joins; a bad case's ``problems`` (list of ``{rule, reason}``) or
        ``critique`` says what is wrong with it. Rows of a task not in this run are skipped;
        without a ``task`` column the rows belong to the run's only task.
        """
        added = skipped = 0
        for row in read_records(path):
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
            added += self.add(task, row, kind, 1.0, _problems(extra), pinned=True)
        if skipped:
            log.warning("%s: skipped %d example rows whose task is not in this run", path, skipped)
        return added


def _problems(extra: dict[str, Any]) -> list[dict[str, str]]:
    problems = extra.get("problems")
    if isinstance(problems, list):
        return [p if isinstance(p, dict) else {"rule": "", "reason": str(p)} for p in problems]
    critique = extra.get("critique") or extra.get("analysis")
    return [{"rule": "", "reason": str(critique)}] if critique else []
