"""The ``synth`` command line: typer commands that parse options and call the library.

Only this module turns a :class:`synth.errors.SynthError` into one red line and exit code 1
(``--debug`` shows the traceback instead). Heavy libraries are imported inside commands so
``synth --help`` stays instant.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from synth.errors import InputError, SynthError

app = typer.Typer(
    name="synth",
    help="Turn real source code into instruction-tuning datasets for code LLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state: dict[str, Any] = {"debug": False}


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More log output.")] = False,
) -> None:
    """synth: seeds → prompts → LLM → scored, decontaminated, diverse dataset."""
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpx2", "httpcore", "openai", "datasets", "filelock", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(exc: SynthError) -> typer.Exit:
    """Print one red line for ``exc`` and return the exit to raise."""
    if _state["debug"]:
        raise exc
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def _progress() -> Any:
    from synth.pipeline import default_progress

    return default_progress()


RunDir = Annotated[Path, typer.Option("--run-dir", "-o", help="Run directory (outputs, cache).")]


# -- seeds ---------------------------------------------------------------------------------

seeds_app = typer.Typer(help="Extract and manage seed snippets.", no_args_is_help=True)
app.add_typer(seeds_app, name="seeds")


@seeds_app.command("extract")
def seeds_extract(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Directories, git repositories or files. Default: this Python's standard library."
    )] = None,
    run_dir: RunDir = Path("runs/default"),
    per_file: Annotated[int, typer.Option(help="Snippets drawn per file.")] = 1,
    min_lines: Annotated[int, typer.Option(help="Fewest lines in a snippet.")] = 1,
    max_lines: Annotated[int, typer.Option(help="Most lines in a snippet.")] = 15,
    seed: Annotated[int, typer.Option(help="Random seed for snippet positions.")] = 0,
) -> None:
    """Take Magicoder-style seeds (random runs of consecutive lines) from source files."""
    from collections import Counter

    from synth.config import SeedsConfig
    from synth.seeds.corpus import default_corpus
    from synth.seeds.extract import SEEDS_FILE, extract_seeds, write_seeds

    try:
        cfg = SeedsConfig(per_file=per_file, min_lines=min_lines, max_lines=max_lines, seed=seed)
        cfg.validate()
        roots = list(paths) if paths else default_corpus()
        for root in roots:
            if not root.exists():
                raise InputError(f"{root} does not exist")
        counts: Counter[str] = Counter()
        out = run_dir / SEEDS_FILE
        n = write_seeds(extract_seeds(roots, cfg, counts), out)
    except SynthError as exc:
        raise fail(exc) from exc
    details = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    typer.echo(f"wrote {n} seeds to {out} ({details})")


# -- generate ------------------------------------------------------------------------------


@app.command()
def generate(
    task: Annotated[str, typer.Option(
        help="codegen, summarize, translate, repair, evol, or mix (see --weights).")] = "codegen",
    seeds: Annotated[Path | None, typer.Option(
        help="Seeds file (jsonl). Default: RUN/seeds.jsonl, extracted from the stdlib if absent."
    )] = None,
    num: Annotated[int | None, typer.Option(
        help="Use this many seeds (sampled with --seed).")] = None,
    run_dir: RunDir = Path("runs/default"),
    base_url: Annotated[str | None, typer.Option(
        help="OpenAI-compatible endpoint. Default: $OPENAI_BASE_URL, else the embedded server.",
        envvar="OPENAI_BASE_URL")] = None,
    model: Annotated[str | None, typer.Option(help="Model name at the endpoint.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Completion token limit.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    samples_per_seed: Annotated[int | None, typer.Option(help="Samples per seed.")] = None,
    answer_format: Annotated[str | None, typer.Option(
        help="auto (JSON schema where supported, else sections), json, or sections.")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests-per-minute limit.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens-per-minute limit.")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts per request.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds per request attempt.")] = None,
    templates: Annotated[Path | None, typer.Option(help="Directory overriding templates.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    config: Annotated[Path | None, typer.Option(help="synth.toml to read.")] = None,
    weights: Annotated[str | None, typer.Option(
        help="--task mix: task weights, e.g. codegen=0.5,summarize=0.2,translate=0.2,repair=0.1."
    )] = None,
    to: Annotated[str | None, typer.Option(
        help="translate: target language, or a comma-separated list drawn from per seed.")
    ] = None,
    input_path: Annotated[Path | None, typer.Option(
        "--input", help="evol: instruction dataset to evolve (jsonl, parquet or a directory).")
    ] = None,
    discriminator: Annotated[bool | None, typer.Option(
        "--discriminator/--no-discriminator",
        help="Check every sample with the discriminator and revise rejected ones.")] = None,
    max_rounds: Annotated[int | None, typer.Option(
        help="Generator–discriminator rounds per record (default 2).")] = None,
    memory_size: Annotated[int | None, typer.Option(
        help="Good and bad example cases kept per task (default 16).")] = None,
    memory_policy: Annotated[str | None, typer.Option(
        help="Which cases the memory keeps: last (newest) or best.")] = None,
    few_shot: Annotated[int | None, typer.Option(
        help="Good and bad cases shown per prompt, each (default 1; 0 for none).")] = None,
    memory_seed: Annotated[list[Path] | None, typer.Option(
        help="File of example cases to start the memory with (repeatable).")] = None,
) -> None:
    """Generate instruction samples from seeds with an LLM and write a dataset."""
    from synth.config import GenerateConfig, LLMConfig, load_toml, resolve
    from synth.generators.run import generate as run_generate

    try:
        toml = load_toml(config)
        gen = resolve(GenerateConfig, "generate", toml, {
            "task": task, "num": num, "max_tokens": max_tokens, "temperature": temperature,
            "samples_per_seed": samples_per_seed, "answer_format": answer_format, "seed": seed,
            "templates": str(templates) if templates else None, "weights": weights, "to": to,
            "input": str(input_path) if input_path else None, "discriminator": discriminator,
            "max_rounds": max_rounds, "memory_size": memory_size,
            "memory_policy": memory_policy, "few_shot": few_shot,
            "memory_seed": tuple(str(p) for p in memory_seed) if memory_seed else None})
        llm = resolve(LLMConfig, "llm", toml, {
            "base_url": base_url, "model": model, "concurrency": concurrency, "rpm": rpm,
            "tpm": tpm, "max_attempts": max_attempts, "timeout_s": timeout})
        if seeds is not None and not seeds.exists():
            raise InputError(f"seeds file {seeds} does not exist")
        for path in gen.memory_seed:
            if not Path(path).exists():
                raise InputError(f"--memory-seed {path} does not exist")
        stats = run_generate(run_dir, gen, llm, seeds, _progress())
    except SynthError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:
        typer.secho(f"interrupted; finished records are in {run_dir}", fg=typer.colors.YELLOW,
                    err=True)
        raise typer.Exit(code=130) from None
    typer.echo(f"kept {stats['kept']}, rejected {stats['rejected']} → {run_dir / 'dataset'} "
               f"({stats['llm'].get('requests', 0)} requests, "
               f"{stats['llm'].get('cache_hits', 0)} cache hits, {stats['wall_time_s']} s)")


# -- serve ---------------------------------------------------------------------------------


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8000,
    n_ctx: Annotated[int, typer.Option(help="Context window in tokens.")] = 4096,
) -> None:
    """Run the embedded llama.cpp server (SmolLM2-135M-Instruct) in the foreground."""
    import time

    from synth.llm.server import EmbeddedServer

    try:
        with EmbeddedServer(port=port, n_ctx=n_ctx) as server:
            typer.echo(f"serving {server.model} at {server.base_url} (Ctrl-C stops)")
            while server.proc is not None and server.proc.poll() is None:
                time.sleep(0.5)
            typer.secho("the server exited", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=1)
    except SynthError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:
        typer.echo("stopped")


# -- prompts -------------------------------------------------------------------------------

prompts_app = typer.Typer(help="Inspect prompt templates.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")


@prompts_app.command("show")
def prompts_show(
    task: Annotated[str, typer.Argument(help="Task whose templates to render.")],
    templates: Annotated[Path | None, typer.Option(help="Directory overriding templates.")] = None,
    answer_format: Annotated[str, typer.Option(help="json or sections.")] = "sections",
    judge: Annotated[bool, typer.Option(help="Show the discriminator's prompt instead.")] = False,
) -> None:
    """Print a task's rendered prompt with placeholders where the data goes."""
    from synth.generators import get_task
    from synth.generators.loop import template_hash
    from synth.generators.parsing import Reject
    from synth.prompts import Prompts
    from synth.records import Record

    try:
        t = get_task(task)
        prompts = Prompts(templates)
        placeholder = Record(id="example", seed="<<seed code>>", lang="<<lang>>",
                             instruction="<<instruction>>", input="<<information>>",
                             response="<<solution>>")
        prepared = t.prepare(placeholder, 0)
        if isinstance(prepared, Reject):
            raise AssertionError(f"the placeholder record cannot be prepared: {prepared}")
        messages = (t.judge_messages(prepared, prompts, answer_format) if judge
                    else t.messages(prepared, prompts, answer_format))
    except SynthError as exc:
        raise fail(exc) from exc
    typer.echo(f"# template {t.template} (hash {template_hash(prompts, t)})")
    for message in messages:
        typer.echo(f"\n--- {message['role']} ---\n{message['content']}")


# --- decontamination and leakage (issue 4) ---------------------------------------------------


def _benchmarks(specs: list[str], fields: str | None) -> list[Any]:
    from synth.filters.benchmarks import load_benchmark
    from synth.filters.fields import parse_fields

    chosen = parse_fields(fields) if fields else None
    return [load_benchmark(spec, chosen) for spec in specs]


@app.command()
def decontam(
    input: Annotated[Path, typer.Option("--input", "-i", help="Dataset to clean: .jsonl, "
                                        ".json, .parquet or a dataset directory.")],
    run_dir: RunDir = Path("runs/decontam"),
    benchmark: Annotated[list[str] | None, typer.Option(
        "--benchmark", "-b", help="humaneval (built in), NAME=PATH (jsonl/parquet) or "
        "ORG/NAME[:SPLIT] (hub, online only). Repeatable.")] = None,
    fields: Annotated[str | None, typer.Option(
        "--fields", help="Text columns of file/hub benchmarks, first = prompt, e.g. "
        "prompt,solution.")] = None,
    method: Annotated[str, typer.Option(help="exact, ngram or exact,ngram.")] = "exact,ngram",
    threshold: Annotated[float, typer.Option(
        help="n-gram: drop when max S(test, train) >= this.")] = 0.05,
    ngram: Annotated[str, typer.Option(help="n-gram sizes.")] = "4,5",
    train_fields: Annotated[str, typer.Option(
        help="Record fields compared (instruction, input, response, seed or a column).")]
        = "instruction,input,response",
    test_fields: Annotated[str | None, typer.Option(
        help="Benchmark fields joined for the n-gram method (default: the benchmark's "
        "prompt and solution).")] = None,
    allow: Annotated[Path | None, typer.Option(
        help="File of extra generic strings (one per line) the exact method ignores.")] = None,
    no_default_allow: Annotated[bool, typer.Option(
        "--no-default-allow", help="Do not use the built-in allow-list.")] = False,
) -> None:
    """Remove samples that contain benchmark problems (exact substrings and n-gram overlap)."""
    from synth.filters.decontam import DEFAULT_ALLOW, run_decontam
    from synth.filters.fields import parse_fields
    from synth.filters.ngrams import parse_sizes

    try:
        allowed = [] if no_default_allow else list(DEFAULT_ALLOW)
        if allow is not None:
            if not allow.exists():
                raise InputError(f"allow-list {allow} does not exist")
            allowed += [s for s in allow.read_text(encoding="utf-8").splitlines() if s.strip()]
        summary = run_decontam(
            input, run_dir, _benchmarks(benchmark or ["humaneval"], fields),
            methods=parse_fields(method), threshold=threshold, sizes=parse_sizes(ngram),
            train_fields=parse_fields(train_fields),
            test_fields=parse_fields(test_fields) if test_fields else None, allow=allowed,
            progress=_progress())
    except SynthError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:
        typer.secho(f"interrupted; finished records are in {run_dir}", fg=typer.colors.YELLOW,
                    err=True)
        raise typer.Exit(code=130) from None
    dropped = ", ".join(f"{k}={v}" for k, v in summary["dropped"].items()) or "none"
    typer.echo(f"kept {summary['kept']} of {summary['records_in']} records "
               f"(dropped: {dropped}) → {run_dir / 'dataset'}")


@app.command()
def tli(
    train: Annotated[Path, typer.Option("--train", help="Training data: .jsonl, .json, "
                                        ".parquet or a dataset directory.")],
    test: Annotated[str, typer.Option(
        "--test", help="humaneval, NAME=PATH or ORG/NAME[:SPLIT].")] = "humaneval",
    train_fields: Annotated[str, typer.Option(
        help="Record fields compared; default the user side.")] = "instruction,input",
    test_fields: Annotated[str | None, typer.Option(
        help="Benchmark fields compared; default the prompt (for files: prompt/question/"
        "text...).")] = None,
    k: Annotated[int, typer.Option("--k", help="Top-k similarities averaged per item.")] = 1,
    ngram: Annotated[str, typer.Option(help="n-gram sizes.")] = "4,5",
    top_pairs: Annotated[int, typer.Option(help="Most similar pairs to list.")] = 10,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the full report as JSON here.")] = None,
    markdown: Annotated[Path | None, typer.Option(
        "--markdown", help="Write the Markdown table here too.")] = None,
) -> None:
    """XCoder's Test Leakage Indicator (TLI-mean@k, TLI-max@k) of a training set vs a benchmark."""
    import json

    from synth.datafiles import read_records
    from synth.filters.fields import parse_fields
    from synth.filters.ngrams import parse_sizes
    from synth.filters.tli import compute_tli, tli_markdown

    try:
        bench = _benchmarks([test], test_fields)[0]
        report = compute_tli(
            read_records(train), bench, train_fields=parse_fields(train_fields),
            test_fields=parse_fields(test_fields) if test_fields else None, k=k,
            sizes=parse_sizes(ngram), top_pairs=top_pairs, train_source=str(train))
    except SynthError as exc:
        raise fail(exc) from exc
    text = tli_markdown(report, pairs=top_pairs)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text, encoding="utf-8")
    typer.echo(text)
