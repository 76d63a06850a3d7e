"""The card: YAML the Hub reads, configs that exist, plots that are PNGs, rebuilt identically."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from run_factory import make_run  # noqa: F401 (the fixture)
from typer.testing import CliRunner

from synth.cli import app
from synth.io.card import hub_licenses, size_category
from synth.io.formats import OutputConfig
from synth.report import command_line

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _front_matter(card: Path) -> dict[str, object]:
    text = card.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    header = text.split("---\n", 2)[1]
    data = yaml.safe_load(header)
    assert isinstance(data, dict)
    return data


def _snapshot(dataset: Path) -> dict[str, bytes]:
    return {p.relative_to(dataset).as_posix(): p.read_bytes()
            for p in sorted(dataset.rglob("*")) if p.is_file()
            and (p.name == "README.md" or p.suffix == ".png")}


def test_card_yaml_configs_plots_and_identical_rebuild(make_run: Callable[..., Path]) -> None:
    run = make_run()
    dataset = run / "dataset"
    meta = _front_matter(dataset / "README.md")
    assert meta["license"] == ["apache-2.0", "gpl-3.0", "mit"]
    assert meta["language"] == ["en"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert {"python", "rust", "go", "code"} <= set(meta["tags"])  # type: ignore[arg-type]
    assert meta["pretty_name"] == "test dataset"
    configs = meta["configs"]
    assert isinstance(configs, list)
    for config in configs:
        for spec in config["data_files"]:
            paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
            for rel in paths:
                assert (dataset / rel).is_file(), rel

    body = (dataset / "README.md").read_text(encoding="utf-8")
    for needle in ("## Sources and seeds", "## Tasks and templates", "codegenhash0001",
                   "## Verification and filters", "τ = 0.9", "## Rejects by stage and reason",
                   "generate:codegen: parse_error", "select: too_similar",
                   "## Tokens and cost", "## Reproduce", "seeds_sha256", "## Configuration",
                   "## Extra section", "A test set.", "fake-model"):
        assert needle in body, needle
    facts = json.loads((run / "card.json").read_text())
    assert facts["seeds_sha256"] and facts["seeds_sha256"] in body

    plots = sorted((dataset / "plots").glob("*.png"))
    assert [p.name for p in plots] == ["languages_tasks.png", "lengths.png", "rejects.png",
                                       "scores.png"]
    for plot in plots:
        data = plot.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
        assert b"Software" not in data  # no matplotlib version: a rebuild is byte-identical
        assert f"(plots/{plot.name})" in body

    before = _snapshot(dataset)
    for p in dataset.rglob("*.png"):
        p.unlink()
    (dataset / "README.md").unlink()
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert "README.md" in result.output
    assert _snapshot(dataset) == before


def test_scores_before_selection_include_the_dropped(make_run: Callable[..., Path]) -> None:
    from synth.report import summarize

    run = make_run(n=10, rejected=4)
    s = summarize(run)
    assert len(s.scores_after["complexity"]) == 10
    assert len(s.scores_before["complexity"]) == 12  # + the 2 dropped at select
    assert s.rejects == [("generate:codegen: parse_error", 2), ("select: too_similar", 2)]
    assert dict(s.licenses) == {"MIT": 4, "Apache-2.0": 3, "GPL-3.0": 3}


def test_report_on_a_missing_run_is_one_red_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_decontam_tli_and_coreset_show_in_the_card(make_run: Callable[..., Path]) -> None:
    from synth.report import build_report

    run = make_run(n=4, rejected=0)
    (run / "decontam.json").write_text(json.dumps({
        "benchmarks": [{"name": "humaneval", "items": 164, "source": "built-in"}],
        "methods": ["exact", "ngram"], "ngram_sizes": [4, 5], "threshold": 0.05,
        "train_fields": ["instruction"], "records_in": 10, "kept": 9,
        "dropped": {"exact:humaneval": 1}}))
    (run / "coreset.json").write_text(json.dumps({
        "k": 2, "metric": "cosine", "model": "all-MiniLM-L6-v2", "seed": 0,
        "radii": [1.0, 0.25], "ids": ["a", "b"]}))
    (run / "tli.json").write_text(json.dumps({
        "benchmark": "humaneval", "k": 1, "ngram_sizes": [4, 5], "train_fields": ["instruction"],
        "test_fields": ["prompt"], "n_test": 164, "n_train": 4, "tli_mean": 0.012,
        "tli_max": 0.2, "n_test_leaking": 3, "top_pairs": []}))
    build_report(run)
    body = (run / "dataset" / "README.md").read_text()
    assert "## Decontamination" in body and "exact:humaneval: 1" in body
    assert "Test leakage (TLI) vs humaneval" in body and "| 1.20 | 20.00 | 3 |" in body
    assert "2 of the seeds, coverage radius 0.2500 (cosine)" in body


@pytest.mark.parametrize("n, label", [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"),
                                      (100_000, "100K<n<1M")])
def test_size_category(n: int, label: str) -> None:
    assert size_category(n) == label


def test_hub_licenses() -> None:
    assert hub_licenses([("MIT", 3), ("unknown", 1)]) == ["mit", "unknown"]
    assert hub_licenses([("MIT OR Apache-2.0", 1)]) == ["apache-2.0", "mit"]
    assert hub_licenses([("WTFPL", 1)]) == ["other"]
    assert hub_licenses([]) == ["unknown"]


def test_command_line_drops_url_passwords() -> None:
    cmd = command_line(["/x/bin/synth", "generate", "--base-url", "https://u:pw@host/v1",
                        "--task", "a b"])
    assert cmd == "synth generate --base-url https://host/v1 --task 'a b'"


def test_arrow_card_names_the_arrow_files(make_run: Callable[..., Path]) -> None:
    run = make_run(OutputConfig(output_format="arrow"), n=3, rejected=0)
    meta = _front_matter(run / "dataset" / "README.md")
    path = meta["configs"][0]["data_files"][0]["path"]  # type: ignore[index]
    assert str(path).endswith(".arrow") and (run / "dataset" / str(path)).is_file()
