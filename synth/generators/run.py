"""``synth generate``: seeds → task prompts → LLM → parsed samples → dataset in the run directory.

Resumable to the request: every response is cached in the run store before it is parsed, so
rerunning the same command after a crash sends only what is not cached, and a finished run
rerun sends nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from synth.config import EMBEDDED_MODEL, GenerateConfig, LLMConfig, SeedsConfig, as_dict
from synth.errors import ConfigError
from synth.generators import get_task
from synth.generators.base import TaskStage
from synth.llm.client import LLMClient, SamplingParams
from synth.llm.server import endpoint
from synth.pipeline import Progress, RunContext, run_stages, write_outputs
from synth.prompts import Prompts
from synth.records import Record
from synth.seeds.corpus import default_corpus
from synth.seeds.extract import SEEDS_FILE, extract_seeds, read_seeds, sample_seeds, write_seeds
from synth.store import RunStore

log = logging.getLogger("synth")


def ensure_seeds(run_dir: Path, seeds: Path | None, seed: int) -> Path:
    """The seeds file: ``seeds``, else RUN/seeds.jsonl (extracted from the stdlib if absent)."""
    if seeds is not None:
        return seeds
    path = run_dir / SEEDS_FILE
    if not path.exists():
        counts: Counter[str] = Counter()
        log.info("no seeds given: extracting seeds from the Python standard library")
        n = write_seeds(extract_seeds(default_corpus(), SeedsConfig(seed=seed), counts), path)
        log.info("wrote %d seeds to %s", n, path)
    return path


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _redact(url: str) -> str:
    """``url`` without any user:password part."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        parts = parts._replace(netloc=host + (f":{parts.port}" if parts.port else ""))
    return urlunsplit(parts)


def resolve_model(requested: str | None, served: list[str], embedded: bool, base_url: str) -> str:
    """The model to ask for: ``--model``, else the embedded one, else the only one served."""
    if requested:
        return requested
    if embedded:
        return EMBEDDED_MODEL
    if len(served) == 1:
        return served[0]
    raise ConfigError(
        f"{base_url} serves {len(served)} models; choose one with --model "
        f"({', '.join(served[:10]) or 'none listed'})")


def generate(run_dir: Path, gen: GenerateConfig, llm: LLMConfig, seeds: Path | None = None,
             progress: Progress | None = None) -> dict[str, Any]:
    """Run one ``synth generate`` job; returns the stats written to ``stats.json``.

    Reads seeds (``seeds`` or RUN/seeds.jsonl), writes RUN/dataset, RUN/rejects.jsonl,
    RUN/stats.json and RUN/config.json. Outputs are written also when interrupted.
    """
    task = get_task(gen.task)
    prompts = Prompts(gen.templates)
    prompts.template_hash(task.template)  # fail on a broken override before starting a server
    with RunStore(run_dir) as store:
        seeds_path = ensure_seeds(run_dir, seeds, gen.seed)
        available = _count_lines(seeds_path)
        total = min(gen.num, available) if gen.num is not None else available
        total *= gen.samples_per_seed
        store.begin("generate")
        ctx = RunContext(store, progress, gen.seed)
        with endpoint(llm.base_url, run_dir) as (base_url, embedded):
            client = LLMClient(base_url, llm.model or "", store, llm, stats=ctx.stats.llm)
            try:
                served = ctx.loop.run(client.list_models())
                client.model = resolve_model(llm.model, served, embedded, base_url)
                ctx.loop.run(client.check(served))
                resolved = dataclasses.replace(llm, base_url=_redact(base_url), model=client.model)
                config = as_dict(gen, resolved) | {"seeds": str(seeds_path),
                                                   "run_dir": str(run_dir)}
                params = SamplingParams(temperature=gen.temperature, top_p=gen.top_p,
                                        max_tokens=gen.max_tokens, seed=gen.seed)
                stage = TaskStage(task, client, prompts, params, gen.answer_format,
                                  first_dialect="json_object" if embedded else "json_schema")
                records = _task_records(seeds_path, gen, task.name)
                interrupted = False
                try:
                    run_stages(records, [stage], ctx, total)
                except KeyboardInterrupt:
                    interrupted = True
                    log.warning("interrupted: writing what finished so far")
                finally:
                    config["answer_dialect"] = stage.format.current
                    stats = write_outputs(ctx, config, f"synth {task.name} dataset", interrupted,
                                          description=task.description)
                if interrupted:
                    raise KeyboardInterrupt
                return stats
            finally:
                ctx.loop.run(client.aclose())
                ctx.close()


def _task_records(seeds_path: Path, gen: GenerateConfig, task: str) -> Iterator[Record]:
    for seed in sample_seeds(read_seeds(seeds_path), gen.num, gen.seed):
        for sample in range(gen.samples_per_seed):
            yield seed.for_task(task, sample)
