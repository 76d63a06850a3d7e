"""The ``synth`` command line: typer commands that parse options and call the library.

Only this module turns a :class:`synth.errors.SynthError` into one red line and exit code 1
(``--debug`` shows the traceback instead). Heavy libraries are imported inside commands so
``synth --help`` stays instant.
"""

from __future__ import annotations

import logging
import sys
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
