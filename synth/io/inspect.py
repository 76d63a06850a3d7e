"""``synth inspect``: a readable look at samples of a run's dataset or at its rejects.

Rows are filtered by task, language and (for rejects) reason, and printed with rich: the
instruction and response as Markdown (fenced code is syntax-highlighted), the seed as code in
its language, and for rejects the stage, reason, detail and the raw LLM output exactly as it
came back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synth.errors import InputError


def dataset_rows(run_dir: Path, task: str | None = None,
                 lang: str | None = None) -> Iterator[dict[str, Any]]:
    """Rows of ``run_dir/dataset`` (any format) with the given task and language."""
    import pyarrow.compute as pc

    from synth.io.formats import read_table

    dataset = run_dir / "dataset"
    if not dataset.is_dir():
        raise InputError(f"{dataset} does not exist: no dataset was written in {run_dir}")
    table = read_table(dataset)
    for column, value in (("task", task), ("lang", lang)):
        if value is not None:
            if column not in table.column_names:
                return
            table = table.filter(pc.equal(table.column(column), value))
    for batch in table.to_batches(max_chunksize=256):
        yield from batch.to_pylist()


def reject_rows(run_dir: Path, task: str | None = None, lang: str | None = None,
                reason: str | None = None) -> Iterator[dict[str, Any]]:
    """Lines of ``run_dir/rejects.jsonl`` matching task, language and reason (or stage)."""
    path = run_dir / "rejects.jsonl"
    if not path.is_file():
        raise InputError(f"{path} does not exist: no run wrote rejects in {run_dir}")
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            record = row.get("record") or {}
            if task is not None and row.get("task") != task:
                continue
            if lang is not None and record.get("lang") != lang:
                continue
            if reason is not None and reason not in (row.get("reason"), row.get("stage"),
                                                     f"{row.get('stage')}:{row.get('reason')}"):
                continue
            yield row


def _sample_texts(row: dict[str, Any]) -> tuple[str, str, str]:
    """(instruction, input, response) of a row in any of the three formats."""
    if "messages" in row:
        user = [t["content"] for t in row["messages"] if t.get("role") == "user"]
        assistant = [t["content"] for t in row["messages"] if t.get("role") == "assistant"]
        return "\n\n".join(user), "", "\n\n".join(assistant)
    return (row.get("instruction") or "", row.get("input") or "",
            row.get("response") or row.get("output") or "")


def render(console: Any, row: dict[str, Any], rejected: bool, show_seed: bool = True) -> None:
    """Print one sample (or one reject) on ``console``."""
    from rich.markdown import Markdown
    from rich.panel import Panel
    from rich.rule import Rule
    from rich.syntax import Syntax
    from rich.text import Text

    record = row.get("record") or row
    instruction, inp, response = _sample_texts(record)
    lang = record.get("lang") or ""
    head = [f"id {row.get('id')}", f"task {row.get('task') or record.get('task') or '-'}",
            f"lang {lang or '-'}"]
    if rejected:
        head += [f"stage {row.get('stage')}", f"reason {row.get('reason')}"]
    else:
        head.append(f"license {row.get('license') or 'unknown'}")
        scores = {k: round(v, 3) for k, v in (row.get("scores") or {}).items() if v is not None}
        if scores:
            head.append("scores " + ", ".join(f"{k}={v}" for k, v in sorted(scores.items())))
    # The id on the rule, the rest on its own line: a long reason is never cut off.
    console.print(Rule(head[0], style="cyan"))
    console.print(Text(" · ".join(head[1:]), style="bold"))
    if show_seed and record.get("seed"):
        console.print(Panel(Syntax(record["seed"], lang.lower() or "text", line_numbers=False,
                                   word_wrap=True), title="seed", title_align="left"))
    if instruction:
        console.print(Panel(Markdown(instruction), title="instruction", title_align="left"))
    if inp:
        console.print(Panel(Markdown(inp), title="input", title_align="left"))
    if response:
        console.print(Panel(Markdown(response), title="response", title_align="left"))
    if rejected:
        if row.get("detail"):
            console.print(Panel(Text(str(row["detail"])), title="detail", title_align="left",
                                border_style="yellow"))
        raw = row.get("raw_output")
        console.print(Panel(Text(raw if raw is not None else "(no LLM output)"),
                            title=f"raw LLM output (finish_reason {row.get('finish_reason')})",
                            title_align="left", border_style="red"))


def inspect_run(run_dir: Path, console: Any, rejects: bool = False, task: str | None = None,
                lang: str | None = None, reason: str | None = None, n: int = 5,
                show_seed: bool = True) -> int:
    """Print up to ``n`` matching samples (or rejects); returns how many were printed."""
    if reason is not None:
        rejects = True
    rows = (reject_rows(run_dir, task, lang, reason) if rejects
            else dataset_rows(run_dir, task, lang))
    shown = 0
    for row in rows:
        if shown >= n:
            break
        render(console, row, rejects, show_seed)
        shown += 1
    return shown
