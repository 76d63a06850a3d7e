"""synth: turn real source code into instruction-tuning datasets for code LLMs.

The Python API, for notebooks and other pipelines (the CLI is one client of it)::

    from synth import Job, Source, HeuristicScores, DiversitySelect, SelectConfig
    from synth.embed import Embedder

    with Job("runs/nb", "select") as job:
        job.run(Source.dataset("data.jsonl", materialize=True),
                [HeuristicScores(), DiversitySelect(SelectConfig(budget=100), Embedder())])

Whole commands are functions of :mod:`synth.jobs` (``generate``, ``filters``, ``decontam``,
``extract``, ``coreset``); the whole pipeline of a config file is :class:`Flow`. Names are
imported on first use, so ``import synth`` stays instant.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # the job and its parts
    "Job": "synth.job", "Source": "synth.job", "Sink": "synth.job",
    "Stage": "synth.pipeline", "Filter": "synth.pipeline", "AsyncStage": "synth.pipeline",
    "Record": "synth.records", "Flow": "synth.flow",
    # stages
    "TaskStage": "synth.generators.loop", "HeuristicScores": "synth.filters.heuristics",
    "DeitaScores": "synth.filters.scoring", "TestQuality": "synth.filters.testquality",
    "DiversitySelect": "synth.filters.select", "ExactDecontam": "synth.filters.decontam",
    "NgramDecontam": "synth.filters.decontam",
    # configs
    "LLMConfig": "synth.config", "GenerateConfig": "synth.config",
    "SeedsConfig": "synth.config", "CoresetConfig": "synth.config",
    "ScoreConfig": "synth.config", "SelectConfig": "synth.config",
    "SandboxConfig": "synth.config",
    # errors
    "SynthError": "synth.errors", "ConfigError": "synth.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'synth' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return [*globals(), *__all__]
