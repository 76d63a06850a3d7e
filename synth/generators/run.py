"""``synth generate``: seeds → task prompts → LLM → parsed samples → dataset in the run directory.

Seed tasks (codegen, summarize, translate, repair, or a mix of them) read a seeds file; evol
reads an instruction dataset (``--input``). Each record then goes through the
generator–discriminator loop (:mod:`synth.generators.loop`) unless ``--no-discriminator``.

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
from synth.datafiles import read_records
from synth.errors import ConfigError, InputError
from synth.filters.licenses import license_stages
from synth.generators import build_tasks, choose_task, task_options
from synth.generators.base import Task
from synth.generators.evol import source_record
from synth.generators.loop import TaskStage, loop_card_section, template_hash
from synth.generators.memory import ExampleMemory
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
             progress: Progress | None = None, output: Any = None) -> dict[str, Any]:
    """Run one ``synth generate`` job; returns the stats written to ``stats.json``.

    Reads seeds (``seeds`` or RUN/seeds.jsonl) or, for evol, ``gen.input``; writes RUN/dataset,
    RUN/rejects.jsonl, RUN/stats.json and RUN/config.json. Outputs are written also when
    interrupted.
    """
    tasks, mix = build_tasks(gen.task, gen.weights, gen.to)
    prompts = Prompts(gen.templates)
    for task in tasks.values():  # fail on a broken override before starting a server
        template_hash(prompts, task)
    evol = gen.task == "evol"
    if evol and seeds is not None:
        raise ConfigError("--task evol reads --input, not --seeds")
    with RunStore(run_dir) as store:
        if evol:
            input_path = Path(str(gen.input))
            if not input_path.exists():
                raise InputError(f"--input {input_path} does not exist")
            records: Iterator[Record] = _evol_records(input_path, gen)
            total = gen.num * gen.samples_per_seed if gen.num is not None else None
            source = {"input": str(input_path)}
        else:
            seeds_path = ensure_seeds(run_dir, seeds, gen.seed)
            available = _count_lines(seeds_path)
            total = (min(gen.num, available) if gen.num is not None else available)
            total *= gen.samples_per_seed
            records = _task_records(seeds_path, gen, mix)
            source = {"seeds": str(seeds_path)}
        store.begin("generate")
        ctx = RunContext(store, progress, gen.seed)
        memory = ExampleMemory(store, gen.memory_size, gen.memory_policy, gen.few_shot, gen.seed)
        for path in gen.memory_seed:
            log.info("memory: %d new cases from %s", memory.seed_from(Path(path), tasks), path)
        ctx.stats.extra["memory"] = lambda: {"cases": memory.counts(), "block": memory.block,
                                             "lag_waits": memory.waits}
        with endpoint(llm.base_url, run_dir) as (base_url, embedded):
            client = LLMClient(base_url, llm.model or "", store, llm, stats=ctx.stats.llm)
            try:
                served = ctx.loop.run(client.list_models())
                client.model = resolve_model(llm.model, served, embedded, base_url)
                ctx.loop.run(client.check(served))
                resolved = dataclasses.replace(llm, base_url=_redact(base_url), model=client.model)
                config = as_dict(gen, resolved) | source | {"run_dir": str(run_dir),
                                                            "tasks": task_options(tasks)}
                if mix is not None:
                    config["mix"] = mix
                params = SamplingParams(temperature=gen.temperature, top_p=gen.top_p,
                                        max_tokens=gen.max_tokens, seed=gen.seed)
                stage = TaskStage(tasks, client, prompts, params, gen.answer_format,
                                  first_dialect="json_object" if embedded else "json_schema",
                                  memory=memory, discriminate=gen.discriminator,
                                  max_rounds=gen.max_rounds, seed=gen.seed)
                interrupted: KeyboardInterrupt | None = None
                finished = False
                try:
                    run_stages(records, license_stages(output) + [stage], ctx, total)
                    finished = True
                except KeyboardInterrupt as exc:  # also SIGTERM (cli.Terminated)
                    interrupted = exc
                    log.warning("interrupted: writing what finished so far")
                finally:
                    memory.close(complete=finished)
                    config["answer_dialect"] = stage.dialects()
                    sections = [loop_card_section(stage.counters)] if gen.discriminator else []
                    stats = write_outputs(ctx, config, f"synth {gen.task} dataset",
                                          interrupted is not None, sections,
                                          description=_description(tasks, mix),
                                          output=output)
                if interrupted is not None:
                    raise interrupted  # the same one: 130 for Ctrl-C, 143 for SIGTERM
                return stats
            finally:
                ctx.loop.run(client.aclose())
                ctx.close()


def _description(tasks: dict[str, Task], mix: dict[str, float] | None) -> str:
    if mix is None:
        return next(iter(tasks.values())).description
    return "A mix of synth tasks, drawn per seed:\n\n" + "\n".join(
        f"- {name} ({mix[name]:.0%}): {task.description}" for name, task in tasks.items())


def _task_records(seeds_path: Path, gen: GenerateConfig,
                  mix: dict[str, float] | None) -> Iterator[Record]:
    for seed in sample_seeds(read_seeds(seeds_path), gen.num, gen.seed):
        task = choose_task(mix, gen.seed, seed.id) if mix is not None else gen.task
        for sample in range(gen.samples_per_seed):
            yield seed.for_task(task, sample)


def _evol_records(path: Path, gen: GenerateConfig) -> Iterator[Record]:
    for row in sample_seeds(read_records(path), gen.num, gen.seed):
        for sample in range(gen.samples_per_seed):
            yield source_record(row, sample)
