"""Generators: one module per task family, all run by :class:`synth.generators.loop.TaskStage`.

``mix`` is not a task of its own: it draws one of several tasks per seed (``--weights``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from synth.errors import ConfigError
from synth.generators.base import Task
from synth.generators.codegen import CodegenTask
from synth.generators.evol import EvolTask
from synth.generators.repair import RepairTask
from synth.generators.summarize import SummarizeTask
from synth.generators.translate import TranslateTask, parse_targets

TASKS: dict[str, type[Task]] = {t.name: t for t in (CodegenTask, SummarizeTask, TranslateTask,
                                                    RepairTask, EvolTask)}
MIX = "mix"
# Tasks made from code seeds; evol reads an instruction dataset instead.
SEED_TASKS = ("codegen", "summarize", "translate", "repair")
DEFAULT_WEIGHTS = dict.fromkeys(SEED_TASKS, 0.25)


def get_task(name: str, to: str | None = None) -> Task:
    """The task called ``name``; a ConfigError lists the known ones.

    ``to`` is translate's ``--to`` (one language or a comma-separated list).
    """
    try:
        cls = TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose one of: "
                          f"{', '.join([*TASKS, MIX])}") from None
    if cls is TranslateTask:
        return TranslateTask(parse_targets(to))
    return cls()


def parse_weights(option: str | None) -> dict[str, float]:
    """``--weights codegen=0.5,summarize=0.2,...`` → normalised weights of seed tasks."""
    if option is None or not option.strip():
        return dict(DEFAULT_WEIGHTS)
    weights: dict[str, float] = {}
    for item in option.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--weights: expected task=weight, got {item.strip()!r}")
        if name not in SEED_TASKS:
            hint = (" (evol reads an instruction dataset; run it on its own)" if name == "evol"
                    else "")
            raise ConfigError(f"--weights: {name!r} is not a seed task; choose from "
                              f"{', '.join(SEED_TASKS)}{hint}")
        try:
            weight = float(value)
        except ValueError:
            raise ConfigError(f"--weights: {name}={value.strip()!r} is not a number") from None
        if weight < 0 or weight != weight:
            raise ConfigError(f"--weights: {name} must be a non-negative number")
        weights[name] = weight
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError("--weights: at least one weight must be positive")
    return {name: w / total for name, w in weights.items() if w > 0}


def choose_task(weights: dict[str, float], seed: int, seed_id: str) -> str:
    """The task of one seed in a mix: a weighted draw seeded by ``seed`` and the seed's id, so
    it does not depend on the order or the number of seeds."""
    names = sorted(weights)
    return random.Random(f"{seed}:{seed_id}:mix").choices(names, [weights[n] for n in names])[0]


def build_tasks(task: str, weights: str | None = None,
                to: str | None = None) -> tuple[dict[str, Task], dict[str, float] | None]:
    """The tasks of a run, and for a ``mix`` the normalised weights of its tasks."""
    if weights is not None and task != MIX:
        raise ConfigError("--weights only applies to --task mix")
    mix = parse_weights(weights) if task == MIX else None
    names: Iterable[str] = mix if mix is not None else [task]
    tasks = {name: get_task(name, to) for name in names}
    if to is not None and "translate" not in tasks:
        raise ConfigError("--to only applies to the translate task (or a mix that has it)")
    return tasks, mix


def task_options(tasks: dict[str, Task]) -> dict[str, Any]:
    """Per-task settings worth recording in config.json."""
    out: dict[str, Any] = {}
    for name, t in tasks.items():
        if isinstance(t, TranslateTask):
            out[name] = {"targets": list(t.targets)}
        elif isinstance(t, EvolTask):
            out[name] = {"methods": list(t.methods)}
    return out
