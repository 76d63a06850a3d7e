"""``synth score``, ``synth select`` and ``synth filter`` over a dataset file or a run's output.

Input is any instruction dataset ``synth.datafiles`` reads (jsonl, json, parquet, a dataset
directory), by default the run directory's own ``dataset/``. The kept records go to
``RUN/dataset``, the dropped ones to ``RUN/rejects.jsonl``, counts (including NaN reasons and
score methods) to ``RUN/stats.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synth.config import LLMConfig, SandboxConfig, ScoreConfig, SelectConfig, as_dict
from synth.datafiles import read_records
from synth.errors import InputError
from synth.filters.licenses import license_stages
from synth.pipeline import Progress, RunContext, Stage, run_stages, write_outputs
from synth.records import Record
from synth.store import RunStore

log = logging.getLogger("synth")


def input_path(run_dir: Path, given: Path | None) -> Path:
    """``given``, else RUN/dataset when an earlier command wrote one."""
    if given is not None:
        if not given.exists():
            raise InputError(f"--input {given} does not exist")
        return given
    default = run_dir / "dataset"
    if not default.exists():
        raise InputError(f"no --input given and {default} does not exist; pass --input "
                         "data.jsonl|data.parquet|DATASET_DIR")
    return default


def run_filters(run_dir: Path, source: Path | None, command: str,
                score: ScoreConfig | None = None, select: SelectConfig | None = None,
                llm: LLMConfig | None = None, sandbox: SandboxConfig | None = None,
                progress: Progress | None = None, output: Any = None) -> dict[str, Any]:
    """Score and/or select the records of ``source``; returns the stats of ``stats.json``."""
    from synth.filters.heuristics import HeuristicScores

    path = input_path(run_dir, source)
    llm = llm or LLMConfig()
    # Heuristic scores are cheap and deterministic: select computes them too, so it can rank
    # raw datasets offline (by ast_complexity) without a prior ``synth score``.
    score = score or ScoreConfig()
    needs_llm = score.complexity or score.quality or score.tests
    with contextlib.ExitStack() as stack:
        box = None
        if score.tests:  # before anything starts: refuse early without isolation
            from synth.sandbox import Sandbox

            box = stack.enter_context(Sandbox(sandbox or SandboxConfig()))
        # Read everything before the store opens: RUN/dataset is replaced when we finish.
        records = list(read_records(path))
        store = stack.enter_context(RunStore(run_dir))
        store.begin(command)
        ctx = RunContext(store, progress)
        stack.callback(ctx.close)
        config: dict[str, Any] = {"input": str(path), "run_dir": str(run_dir)}
        stages: list[Stage] = license_stages(output)
        if score.heuristics:
            stages.append(HeuristicScores())
        if needs_llm:
            stages += _llm_stages(stack, ctx, run_dir, score, llm, box, config)
        if select is not None:
            stages.append(_select_stage(stack, select, run_dir))
            config |= as_dict(select)
        config |= as_dict(score)
        if box is not None:
            config |= as_dict(box.config) | {"sandbox_mode": box.mode}
        interrupted: KeyboardInterrupt | None = None
        try:
            run_stages(_records(records), stages, ctx, len(records))
        except KeyboardInterrupt as exc:  # also SIGTERM (cli.Terminated)
            interrupted = exc
            log.warning("interrupted: writing what finished so far")
        finally:
            stats = write_outputs(ctx, config, f"synth {command}", interrupted is not None,
                                  output=output)
        if interrupted is not None:
            raise interrupted  # the same one: 130 for Ctrl-C, 143 for SIGTERM
        return stats


def _records(records: list[Record]) -> Iterator[Record]:
    yield from records


def _select_stage(stack: contextlib.ExitStack, cfg: SelectConfig, run_dir: Path) -> Stage:
    from synth.embed import Embedder, EmbeddingCache
    from synth.filters.select import DiversitySelect

    cache = stack.enter_context(EmbeddingCache(run_dir))
    return DiversitySelect(cfg, Embedder(cfg.embedder), cache)


def _llm_stages(stack: contextlib.ExitStack, ctx: RunContext, run_dir: Path, score: ScoreConfig,
                llm: LLMConfig, box: Any, config: dict[str, Any]) -> list[Stage]:
    from synth.filters.scoring import DeitaScores
    from synth.filters.testquality import TestQuality
    from synth.generators.run import _redact, resolve_model
    from synth.llm.client import LLMClient
    from synth.llm.server import endpoint
    from synth.prompts import Prompts

    prompts = Prompts(score.templates)
    base_url, embedded = stack.enter_context(endpoint(llm.base_url, run_dir))
    client = LLMClient(base_url, llm.model or "", ctx.store, llm, stats=ctx.stats.llm)
    stack.callback(lambda: ctx.loop.run(client.aclose()))
    served = ctx.loop.run(client.list_models())
    client.model = resolve_model(llm.model, served, embedded, base_url)
    ctx.loop.run(client.check())
    config |= as_dict(dataclasses.replace(llm, base_url=_redact(base_url), model=client.model))
    stages: list[Stage] = []
    which = [k for k in ("complexity", "quality") if getattr(score, k)]
    if which:
        stages.append(DeitaScores(client, prompts, which, top_logprobs=score.top_logprobs))
    if score.tests:
        stages.append(TestQuality(client, prompts, box, num_tests=score.num_tests,
                                  test_timeout_s=score.test_timeout_s,
                                  max_tokens=score.test_max_tokens))
    return stages
