"""Everything the dataset card says, rebuilt from the run directory alone.

``write_outputs`` calls :func:`build_report` at the end of every run, and ``synth report RUN``
calls it again later: both read only files of the run directory (``config.json``,
``stats.json``, ``card.json``, ``seeds.manifest.json``, ``coreset.json``, ``decontam.json``,
``tli*.json``, the dataset's data files and, for scores before selection, ``store.sqlite``
read-only), so a rebuild writes the same README.md and byte-identical plots.

``card.json`` keeps what only the running command knew: the card's title, description and extra
sections, the exact command line, synth's version and the sha256 of the seeds file used.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import sqlite3
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.errors import InputError

CARD_FILE = "card.json"
SUMMARY_COLUMNS = ["lang", "task", "license", "model", "template", "template_hash", "scores",
                   "instruction", "response", "output", "messages"]
DATASET_DIR = "dataset"


@dataclass
class Summary:
    """The numbers the card and the plots show, read once from the run directory."""

    rows: int = 0
    languages: list[tuple[str, int]] = field(default_factory=list)
    tasks: list[tuple[str, int]] = field(default_factory=list)
    licenses: list[tuple[str, int]] = field(default_factory=list)
    models: list[tuple[str, int]] = field(default_factory=list)
    templates: list[tuple[str, str, int]] = field(default_factory=list)
    scores_after: dict[str, list[float]] = field(default_factory=dict)
    scores_before: dict[str, list[float]] = field(default_factory=dict)
    instruction_lengths: list[int] = field(default_factory=list)
    response_lengths: list[int] = field(default_factory=list)
    rejects: list[tuple[str, int]] = field(default_factory=list)


# -- what the running command knows ----------------------------------------------------------


def command_line(argv: list[str] | None = None) -> str:
    """The command as the user typed it, ``synth ...``, with URL passwords removed."""
    args = list(sys.argv if argv is None else argv)
    rest = args[1:] if args else []
    if args and Path(args[0]).name not in ("synth", "__main__.py", "-m"):
        rest = args
    text = shlex.join(["synth", *rest])
    return re.sub(r"(://)[^/@\s:]+(:[^/@\s]*)?@", r"\1", text)


def sha256_file(path: Path) -> str | None:
    """sha256 of a file's bytes (None when it does not exist)."""
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def card_facts(config: dict[str, Any], title: str, description: str | None,
               sections: list[str] | None) -> dict[str, Any]:
    """``card.json``: what the card needs that no other file of the run directory holds."""
    from synth import __version__

    seeds = config.get("seeds")
    return {
        "title": title, "description": description, "sections": list(sections or []),
        "command": command_line(), "synth_version": __version__,
        "seeds_file": seeds, "seeds_sha256": sha256_file(Path(seeds)) if seeds else None,
        "input": config.get("input"),
        "input_sha256": (sha256_file(Path(config["input"]))
                         if config.get("input") and Path(config["input"]).is_file() else None),
    }


# -- reading the run directory ------------------------------------------------------------


def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); rerun the command that wrote "
                         "it") from exc


def _counts(table: Any, name: str) -> list[tuple[str, int]]:
    """``(value, rows)`` of a string column, most frequent first (null counts as "")."""
    if name not in table.column_names:
        return []
    counts = table.column(name).value_counts().to_pylist()
    merged: Counter[str] = Counter()
    for item in counts:
        merged["" if item["values"] is None else str(item["values"])] += item["counts"]
    return sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))


def _lengths(table: Any, fmt: str) -> tuple[list[int], list[int]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if "messages" in table.column_names:
        turns = pc.list_flatten(table.column("messages"))
        if isinstance(turns, pa.ChunkedArray):
            turns = turns.combine_chunks()
        role = turns.field("role")
        content = turns.field("content")
        user = pc.utf8_length(pc.filter(content, pc.equal(role, "user")))
        assistant = pc.utf8_length(pc.filter(content, pc.equal(role, "assistant")))
        return user.to_pylist(), assistant.to_pylist()
    response = "output" if "output" in table.column_names else "response"
    if "instruction" not in table.column_names or response not in table.column_names:
        return [], []
    return (pc.utf8_length(table.column("instruction")).to_pylist(),
            pc.utf8_length(table.column(response)).to_pylist())


def _scores(table: Any) -> dict[str, list[float]]:
    import pyarrow as pa

    if "scores" not in table.column_names:
        return {}
    col = table.column("scores")
    if not pa.types.is_struct(col.type):
        return {}
    combined = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    out = {}
    for i in range(combined.type.num_fields):
        name = combined.type.field(i).name
        out[name] = [v for v in combined.field(i).to_pylist() if v is not None]
    return out


def _store_scores_rejected_at(run_dir: Path, stage: str) -> dict[str, list[float]]:
    """Scores of the records the last invocation dropped at ``stage`` (read-only)."""
    path = run_dir / "store.sqlite"
    if not path.is_file():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        gen = db.execute("SELECT MAX(gen) FROM runs").fetchone()[0]
        rows = db.execute(
            "SELECT json_extract(record, '$.scores') FROM results "
            "WHERE gen = ? AND status = 'rejected' AND stage = ? ORDER BY ord, id",
            (gen, stage)).fetchall()
    except sqlite3.DatabaseError:
        return {}
    finally:
        db.close()
    out: dict[str, list[float]] = {}
    for (text,) in rows:
        for name, value in (json.loads(text) if text else {}).items():
            if value is not None:
                out.setdefault(name, []).append(float(value))
    return out


def summarize(run_dir: Path) -> Summary:
    """The card's numbers, from the dataset's data files, stats.json and the store."""
    from synth.io.formats import read_table

    dataset = run_dir / DATASET_DIR
    # Only what the card shows: the seed, provenance and ids of 100k rows stay on disk.
    table = read_table(dataset, columns=SUMMARY_COLUMNS)
    stats = _json(run_dir / "stats.json") or {}
    cols = table.column_names
    s = Summary(rows=table.num_rows)
    s.languages = _counts(table, "lang")
    s.tasks = _counts(table, "task")
    s.licenses = _counts(table, "license")
    s.models = _counts(table, "model")
    if "template" in cols and "template_hash" in cols:
        pairs = table.group_by(["template", "template_hash"]).aggregate([([], "count_all")])
        s.templates = sorted((str(t), str(h), int(n)) for t, h, n in zip(
            pairs.column("template").to_pylist(), pairs.column("template_hash").to_pylist(),
            pairs.column("count_all").to_pylist(), strict=True) if t is not None)
    fmt = "messages" if "messages" in cols else ("alpaca" if "output" in cols else "raw")
    s.instruction_lengths, s.response_lengths = _lengths(table, fmt)
    s.scores_after = _scores(table)
    if "select" in stats.get("stages", {}):
        before = _store_scores_rejected_at(run_dir, "select")
        s.scores_before = {k: s.scores_after.get(k, []) + before.get(k, [])
                           for k in sorted(set(before) | set(s.scores_after))}
    rejects = {f"{stage}: {reason}": n for stage, st in stats.get("stages", {}).items()
               for reason, n in st.get("rejected", {}).items() if n}
    s.rejects = sorted(rejects.items(), key=lambda kv: (-kv[1], kv[0]))
    return s


def build_report(run_dir: Path) -> dict[str, Any]:
    """Write ``dataset/README.md`` (the card) and ``dataset/plots/*.png`` from ``run_dir``.

    Returns ``{"card": path, "plots": [paths], "rows": n}``.
    """
    from synth.io.card import render_card
    from synth.io.formats import data_files
    from synth.io.plots import PLOTS_DIR, draw_all

    run_dir = Path(run_dir)
    dataset = run_dir / DATASET_DIR
    if not dataset.is_dir():
        raise InputError(f"{dataset} does not exist: run generate/score/select/filter/decontam "
                         "in this run directory first")
    summary = summarize(run_dir)
    files = data_files(dataset)
    plots = draw_all(summary, dataset / PLOTS_DIR)
    text = render_card(run_dir, summary, files, [f"{PLOTS_DIR}/{p}" for p in plots])
    card = dataset / "README.md"
    tmp = card.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(card)
    return {"card": card, "plots": [dataset / PLOTS_DIR / p for p in plots],
            "rows": summary.rows}


# -- a whole `synth run`: one card for the final dataset -----------------------------------------

_PER_STEP_KEYS = ("input", "run_dir", "output")  # where each step read/wrote: not the flow's


def _add_numbers(into: dict[str, Any], more: dict[str, Any]) -> None:
    """Sum the numbers of ``more`` into ``into``, recursively; other values: the first wins."""
    for key, value in more.items():
        if isinstance(value, bool) or not isinstance(value, int | float | dict):
            into.setdefault(key, value)
        elif isinstance(value, dict):
            _add_numbers(into.setdefault(key, {}), value)
        else:
            into[key] = into.get(key, 0) + value


def flow_facts(run_dir: Path, steps: list[tuple[str, Path]], tables: dict[str, Any],
               title: str) -> None:
    """Write ``RUN/config.json``, ``stats.json``, ``card.json`` (and ``decontam.json``) for a
    ``synth run`` from its steps' own files, so :func:`build_report` makes one card that
    covers seeds, coreset, generation, verification, scores, decontamination and selection.

    ``steps`` are ``(name, out_dir)`` of the dataset steps in order. A setting table written
    by several steps (``ScoreConfig`` by score and again, with defaults, by select) is taken
    from the first; counters (requests, tokens, secrets found) are summed; stages keep their
    step's name where two steps share one (``select/heuristics``).
    """
    from synth.io.card import secrets_section
    from synth.store import write_json

    config: dict[str, Any] = {}
    stats: dict[str, Any] = {"stages": {}, "llm": {}, "wall_time_s": 0.0}
    sections: list[str] = []
    for name, out in steps:
        step_config = _json(out / "config.json") or {}
        for key, value in step_config.items():
            if key not in _PER_STEP_KEYS:
                config.setdefault(key, value)
        step_stats = _json(out / "stats.json") or {}
        for stage, counts in (step_stats.get("stages") or {}).items():
            stats["stages"][stage if stage not in stats["stages"] else f"{name}/{stage}"] = counts
        _add_numbers(stats["llm"], step_stats.get("llm") or {})
        if step_stats.get("secrets"):
            _add_numbers(stats.setdefault("secrets", {}), step_stats["secrets"])
        stats["wall_time_s"] = round(stats["wall_time_s"] + (step_stats.get("wall_time_s") or 0), 3)
        stats["kept"] = step_stats.get("kept", stats.get("kept", 0))  # the last step's rows
        for key in ("rejected", "left_to_retry"):
            stats[key] = stats.get(key, 0) + step_stats.get(key, 0)
        stats["interrupted"] = bool(stats.get("interrupted") or step_stats.get("interrupted"))
        facts = _json(out / CARD_FILE) or {}
        sections += [s for s in facts.get("sections") or []
                     if not s.startswith("## Secrets") and s not in sections]
        if (out / "decontam.json").is_file():
            (run_dir / "decontam.json").write_bytes((out / "decontam.json").read_bytes())
    with open(run_dir / "rejects.jsonl", "wb") as rejects:  # every step's, for synth inspect
        for _, out in steps:
            if (out / "rejects.jsonl").is_file():
                rejects.write((out / "rejects.jsonl").read_bytes())
    _add_numbers(stats.setdefault("secrets", {}), _seed_secrets(run_dir))
    section = secrets_section(stats)
    if section:
        sections.append(section)
    config["output"] = (_json(steps[-1][1] / "config.json") or {}).get("output", {})
    config["run"] = tables
    names = " → ".join(["seeds", *(["coreset"] if "coreset" in tables else []),
                        *(n for n, _ in steps)])
    write_json(run_dir / "config.json", config)
    write_json(run_dir / "stats.json", stats)
    write_json(run_dir / CARD_FILE, card_facts(
        config, title, f"Instruction samples written by `synth run` ({names}).", sections))


def _seed_secrets(run_dir: Path) -> dict[str, Any]:
    """What seed extraction found (``seeds.manifest.json`` counts), as stats.json's
    ``secrets`` counts of the place ``seeds``."""
    counts = (_json(run_dir / "seeds.manifest.json") or {}).get("counts") or {}
    kinds = {k.removeprefix("secret_"): n for k, n in counts.items() if k.startswith("secret_")}
    out: dict[str, Any] = {}
    if kinds:
        out = {"found": {"seeds": kinds}, "by_kind": dict(kinds)}
    if counts.get("secrets_redacted"):
        out["redacted"] = {"seeds": counts["secrets_redacted"]}
    if counts.get("drop_secrets"):
        out["dropped"] = {"seeds": counts["drop_secrets"]}
    return out
