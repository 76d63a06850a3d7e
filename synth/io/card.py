"""The Hugging Face dataset card: a YAML header the Hub and ``datasets`` read, and a body that
lets someone judge the data and make it again.

The header carries ``license`` (from the rows' licence column), ``task_categories``,
``language`` (the natural language, ``en``; programming languages go into ``tags``, as on the
Hub's code datasets), ``size_categories``, ``configs`` naming the data files that exist, and
``pretty_name``. The body: summary, plots, sources and seeds, coreset, tasks and templates with
their hashes, model and sampling, verification and filter settings, per-stage counts,
decontamination and TLI, rejects by stage and reason, tokens and cost, a reproducibility block,
and the exact configuration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Licence ids the Hub's ``license`` field knows (lower-case); any other licence is "other".
HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "isc", "unlicense", "mpl-2.0",
    "gpl-2.0", "gpl-3.0", "lgpl-2.1", "lgpl-3.0", "agpl-3.0", "bsl-1.0", "zlib", "cc0-1.0",
    "0bsd", "psf-2.0",
})

_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
          (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]


def size_category(n: int) -> str:
    """The Hub's size bucket for ``n`` rows."""
    for bound, label in _SIZES:
        if n < bound:
            return label
    return "n>100M"


def hub_licenses(licenses: list[tuple[str, int]]) -> list[str]:
    """The card's ``license`` values for the rows' licences (``unknown`` when none is known)."""
    out: set[str] = set()
    for lic, _ in licenses:
        for option in lic.replace("(", " ").replace(")", " ").split(" OR "):
            lid = option.strip().lower()
            if not lid or lid == "unknown":
                out.add("unknown")
            else:
                out.add(lid if lid in HUB_LICENSES else "other")
    return sorted(out) or ["unknown"]


def _tag(lang: str) -> str:
    return lang.strip().lower().replace(" ", "-").replace("#", "sharp").replace("+", "p")


def yaml_header(title: str, summary: Any, files: dict[str, Any]) -> str:
    """The card's YAML front matter (a plain dump, so ``yaml.safe_load`` reads it back)."""
    import yaml

    langs = [_tag(lang) for lang, _ in summary.languages if lang]
    meta: dict[str, Any] = {
        "pretty_name": title,
        "license": hub_licenses(summary.licenses),
        "language": ["en"],
        "task_categories": ["text-generation"],
        "size_categories": [size_category(summary.rows)],
        "tags": ["code", "synthetic", "instruction-tuning", "synth"] + sorted(set(langs)),
    }
    if files["files"]:
        meta["configs"] = [{"config_name": "default", "data_files": [
            {"split": "train", "path": files["files"] if len(files["files"]) > 1
             else files["files"][0]}]}]
    body = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{body}---\n"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def _read(path: Path) -> Any:
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _find(config: dict[str, Any], key: str) -> Any:
    """``key`` at the top of config.json or inside one of its per-class tables."""
    if key in config:
        return config[key]
    for value in config.values():
        if isinstance(value, dict) and key in value:
            return value[key]
    return None


def render_card(run_dir: Path, summary: Any, files: dict[str, Any], plots: list[str]) -> str:
    """The whole README.md of ``run_dir/dataset``."""
    config = _read(run_dir / "config.json") or {}
    stats = _read(run_dir / "stats.json") or {}
    facts = _read(run_dir / "card.json") or {}
    title = facts.get("title") or "synth dataset"
    out: list[str] = [f"# {title}", ""]
    out += [facts.get("description") or "Instruction samples written by synth.", ""]

    configured = _find(config, "model")
    models = ", ".join(f"`{m}`" for m, _ in summary.models if m) or (
        f"`{configured}`" if configured else "-")
    out += _table(["", ""], [
        ["rows", summary.rows],
        ["format", f"{(config.get('output') or {}).get('format', 'raw')} rows as "
                   f"{files['kind']}"],
        ["model", models or "-"],
        ["tasks", ", ".join(f"{t} ({n})" for t, n in summary.tasks) or "-"],
        ["languages", ", ".join(f"{t} ({n})" for t, n in summary.languages) or "-"],
        ["licences", ", ".join(f"{t} ({n})" for t, n in summary.licenses) or "-"],
    ]) + [""]
    out += ["```python", "import datasets",
            ("ds = datasets.load_from_disk('path/to/this/directory')"
             if files["kind"] == "arrow"
             else "ds = datasets.load_dataset('path/to/this/directory', split='train')"),
            "```", ""]

    out += ["## Plots", ""]
    from synth.io.plots import PLOT_FILES

    for rel in plots:
        out += [f"![{PLOT_FILES.get(Path(rel).name, rel)}]({rel})", ""]

    out += _sources(run_dir, facts)
    out += ["## Tasks and templates", ""]
    out += _table(["template", "template sha256", "rows"],
                  [[t, f"`{h}`", n] for t, h, n in summary.templates]) + [""]
    tasks = config.get("tasks")
    if tasks:
        out += ["Task options:", "", "```json", json.dumps(tasks, indent=2, sort_keys=True),
                "```", ""]

    out += _model_section(config)
    out += _filters_section(config, stats)
    out += _decontam_section(run_dir)
    out += ["## Rejects by stage and reason", ""]
    out += (_table(["stage: reason", "records"], [[k, n] for k, n in summary.rejects])
            if summary.rejects else ["None."]) + [""]
    out += ["Every dropped record, with its raw LLM output, is in `rejects.jsonl` of the run "
            "directory (`synth inspect RUN --rejects`).", ""]
    out += _tokens_section(stats)
    for section in facts.get("sections") or []:
        out += [section, ""]
    out += _repro_section(config, facts, summary)
    out += ["## Configuration", "", "```json", json.dumps(config, indent=2, sort_keys=True),
            "```", ""]
    return yaml_header(title, summary, files) + "\n".join(out)


def _sources(run_dir: Path, facts: dict[str, Any]) -> list[str]:
    out = ["## Sources and seeds", ""]
    manifest = _read(run_dir / "seeds.manifest.json")
    if manifest:
        paths = manifest.get("paths") or []
        sets = [d.get("name") for d in manifest.get("datasets") or []]
        out += [f"- sources: {', '.join(f'`{p}`' for p in paths + sets) or '-'}"]
        cfg = manifest.get("config") or {}
        out += [f"- extraction: mode `{cfg.get('mode')}`, {cfg.get('per_file')} per file, "
                f"{cfg.get('min_lines')}–{cfg.get('max_lines')} lines, near-dedup "
                f"{cfg.get('near_dedup')}, seed {cfg.get('seed')}"]
        counts = manifest.get("counts") or {}
        if counts:
            out += ["", *_table(["extraction count", "n"],
                                [[k, v] for k, v in sorted(counts.items())]), ""]
    if facts.get("seeds_file"):
        out += [f"- seeds file: `{facts['seeds_file']}` (sha256 `{facts.get('seeds_sha256')}`)"]
    if facts.get("input"):
        out += [f"- input dataset: `{facts['input']}`"
                + (f" (sha256 `{facts['input_sha256']}`)" if facts.get("input_sha256") else "")]
    coreset = _read(run_dir / "coreset.json")
    if coreset:
        radii = coreset.get("radii") or []
        radius = f"{radii[-1]:.4f}" if radii else "-"
        out += [f"- coreset (KCenterGreedy over seed embeddings): {len(coreset.get('ids') or [])}"
                f" of the seeds, coverage radius {radius} ({coreset.get('metric')}), embedder "
                f"`{coreset.get('model')}`, seed {coreset.get('seed')} (`coreset.jsonl`)"]
    if len(out) == 2:
        out += ["No seed extraction recorded in this run directory."]
    return out + [""]


def _model_section(config: dict[str, Any]) -> list[str]:
    llm = config.get("LLMConfig") or {}
    gen = config.get("GenerateConfig") or {}
    if not llm and not gen:
        return []
    keys = [("model", llm.get("model")), ("endpoint", llm.get("base_url")),
            ("temperature", gen.get("temperature")), ("top_p", gen.get("top_p")),
            ("max_tokens", gen.get("max_tokens")), ("samples per seed",
                                                      gen.get("samples_per_seed")),
            ("answer format", gen.get("answer_format")), ("answer dialect",
                                                          config.get("answer_dialect")),
            ("random seed", gen.get("seed"))]
    return ["## Model and sampling", "",
            *_table(["setting", "value"], [[k, f"`{v}`"] for k, v in keys if v is not None]), ""]


def _filters_section(config: dict[str, Any], stats: dict[str, Any]) -> list[str]:
    out = ["## Verification and filters", ""]
    gen = config.get("GenerateConfig") or {}
    if gen:
        out += [f"- discriminator: {'on' if gen.get('discriminator') else 'off'}, at most "
                f"{gen.get('max_rounds')} rounds, memory {gen.get('memory_size')} cases "
                f"({gen.get('memory_policy')}), {gen.get('few_shot')} shown per prompt"]
    score = config.get("ScoreConfig")
    if score:
        out += ["- scores: " + ", ".join(
            k for k in ("heuristics", "complexity", "quality", "tests") if score.get(k))
            + (f"; {score.get('num_tests')} unit tests per sample, "
               f"{score.get('test_timeout_s')} s each" if score.get("tests") else "")]
    select = config.get("SelectConfig")
    if select:
        out += [f"- selection: budget {select.get('budget')}, τ = {select.get('tau')} (cosine "
                f"similarity), fusion {select.get('fusion')} (α {select.get('alpha')}), "
                f"embedder `{select.get('embedder') or 'all-MiniLM-L6-v2'}`"]
    output = config.get("output") or {}
    if output.get("license_allow"):
        out += [f"- licences allowed: {', '.join(output['license_allow'])}"]
    stages = stats.get("stages") or {}
    if stages:
        rows = [[name, s.get("in"), s.get("out"),
                 ", ".join(f"{k}: {v}" for k, v in (s.get("rejected") or {}).items()) or "-"]
                for name, s in stages.items()]
        out += ["", *_table(["stage", "in", "out", "rejected"], rows)]
    if len(out) == 2:
        out += ["No filter ran."]
    return out + [""]


def _decontam_section(run_dir: Path) -> list[str]:
    out: list[str] = []
    summary = _read(run_dir / "decontam.json")
    if summary:
        from synth.filters.decontam import decontam_markdown

        out += [decontam_markdown(summary), ""]
    for path in sorted(run_dir.glob("tli*.json")):
        from synth.filters.tli import tli_markdown

        report = _read(path)
        if isinstance(report, dict) and "benchmark" in report:
            out += ["## Test leakage", "", tli_markdown(report), ""]
    return out or ["## Decontamination", "",
                   "Not run on this dataset (`synth decontam -i RUN/dataset`; `synth tli --train "
                   "RUN/dataset --out RUN/tli.json` adds the leakage indicator here).", ""]


def _tokens_section(stats: dict[str, Any]) -> list[str]:
    llm = stats.get("llm") or {}
    if not llm:
        return []
    rows = [[k, v] for k, v in sorted(llm.items())]
    if "cost_usd" not in llm:
        rows.append(["cost_usd", "not priced (no price known for this endpoint)"])
    return ["## Tokens and cost", "", *_table(["counter", "value"], rows),
            "", f"Wall time: {stats.get('wall_time_s')} s.", ""]


def _repro_section(config: dict[str, Any], facts: dict[str, Any], summary: Any) -> list[str]:
    templates = {t: h for t, h, _ in summary.templates}
    block = {
        "synth_version": facts.get("synth_version"),
        "command": facts.get("command"),
        "model": _find(config, "model"),
        "seeds_file": facts.get("seeds_file"),
        "seeds_sha256": facts.get("seeds_sha256"),
        "input_sha256": facts.get("input_sha256"),
        "template_hashes": templates,
        "random_seed": _find(config, "seed"),
    }
    return ["## Reproduce", "",
            "Run the command below with the same synth version, seeds file (same sha256) and "
            "templates (same hashes) in a run directory holding this run's `store.sqlite`: "
            "every LLM response is served from that cache, so it writes the same rows without "
            "a request. Without the cache the same model at temperature 0 comes closest.", "",
            "```bash", str(facts.get("command") or "synth ..."), "```", "",
            "```json", json.dumps(block, indent=2, sort_keys=True), "```", ""]


def secrets_section(stats: dict[str, Any]) -> str | None:
    """The dataset card's "Secrets and personal data" section from stats.json's ``secrets``."""
    sec = stats.get("secrets")
    if not sec:
        return None
    if sec.get("mode") == "off":
        return ("## Secrets and personal data\n\nMode `off`: seeds, input rows and LLM replies "
                "were not scanned for secrets or personal data.")
    lines = ["## Secrets and personal data", "",
             f"Mode `{sec.get('mode')}`: findings in seeds, input rows and LLM replies are "
             "replaced by typed placeholders (`<API_KEY>`, `<PASSWORD>`, `<EMAIL>`, ...)"
             + (" or the record is left out" if sec.get("mode") == "drop" else "") + "."]
    by_kind = sec.get("by_kind") or {}
    if by_kind:
        lines += ["", "| kind | found |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in by_kind.items()]
    else:
        lines += ["", "Nothing was found."]
    return "\n".join(lines)
