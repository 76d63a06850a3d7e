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

from synth.errors import SynthError

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
    for noisy in ("httpx", "httpcore", "openai", "datasets", "filelock", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(exc: SynthError) -> typer.Exit:
    """Print one red line for ``exc`` and return the exit to raise."""
    if _state["debug"]:
        raise exc
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


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
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Where rejects.jsonl, stats.json "
                                          "and decontam.json go.")] = Path("run"),
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Kept records (.jsonl or .parquet); default "
        "RUN/decontaminated.jsonl.")] = None,
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
    from synth.errors import InputError
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
            methods=parse_fields(method), output=output, threshold=threshold,
            sizes=parse_sizes(ngram), train_fields=parse_fields(train_fields),
            test_fields=parse_fields(test_fields) if test_fields else None, allow=allowed)
    except SynthError as exc:
        raise fail(exc) from None
    dropped = ", ".join(f"{k}={v}" for k, v in summary["dropped"].items()) or "none"
    typer.echo(f"kept {summary['kept']} of {summary['records_in']} records "
               f"(dropped: {dropped}) -> {summary['output']}")


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
        raise fail(exc) from None
    text = tli_markdown(report, pairs=top_pairs)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text, encoding="utf-8")
    typer.echo(text)
