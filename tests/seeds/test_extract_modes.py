"""Seed extraction: modes, quality gates, dedup, quotas, dataset readers, bad input."""

from __future__ import annotations

import json
import os
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from synth.config import SeedsConfig, parse_quota
from synth.errors import ConfigError, InputError
from synth.io.corpus import DatasetSource
from synth.seeds import units as units_mod
from synth.seeds.corpus import SourceFile
from synth.seeds.extract import extract_seeds
from synth.seeds.quality import gate

PY = textwrap.dedent('''\
    """Module docstring."""
    import os


    def short(x):
        return x


    @decorator
    def documented(a, b):
        """Add two numbers."""
        total = a + b
        return total


    class Big:
        def method_one(self):
            value = 1
            value += 2
            return value

        def method_two(self):
            # explain
            other = 3
            other *= 4
            return other


    if os.name == "posix":
        def platform_helper(path):
            parts = path.split("/")
            joined = "-".join(parts)
            return joined
    ''')


def seeds_of(tmp_path: Path, files: dict[str, str | bytes], **cfg: object) -> tuple[list, Counter]:
    root = tmp_path / "corpus"
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    counts: Counter[str] = Counter()
    return list(extract_seeds([root], SeedsConfig(**cfg), counts)), counts  # type: ignore[arg-type]


def test_function_mode_python_splits_long_classes_and_keeps_decorators(tmp_path: Path) -> None:
    seeds, counts = seeds_of(tmp_path, {"m.py": PY}, mode="function", fn_min_lines=3,
                             fn_max_lines=8)
    names = [s.meta["provenance"]["name"] for s in seeds]
    assert names == ["documented", "Big.method_one", "Big.method_two", "platform_helper"]
    documented = seeds[0]
    assert documented.seed.startswith("@decorator\ndef documented(a, b):")
    assert documented.meta["provenance"]["start_line"] == 9
    assert documented.meta["provenance"]["mode"] == "function"
    assert counts["unit_too_long"] == 1 and counts["unit_too_short"] == 1
    doc_only, counts = seeds_of(tmp_path / "b", {"m.py": PY}, mode="function", fn_max_lines=8,
                                require_doc=True)
    assert [s.meta["provenance"]["name"] for s in doc_only] == ["documented", "Big.method_two"]
    assert counts["unit_no_doc"] == 2


def test_function_mode_skips_unparsable_python(tmp_path: Path) -> None:
    seeds, counts = seeds_of(tmp_path, {"bad.py": "def broken(:\n  pass\n"}, mode="function")
    assert seeds == [] and counts["skip_parse_error"] == 1


TREE_SITTER_CASES = {
    "lib.rs": ("rust", textwrap.dedent('''\
        /// Adds one.
        fn add_one(x: i32) -> i32 {
            let y = x + 1;
            y
        }

        impl Point {
            fn norm(&self) -> f64 {
                (self.x * self.x + self.y * self.y).sqrt()
            }
        }
        '''), ["add_one", "Point"]),
    "app.js": ("javascript", textwrap.dedent('''\
        // Greets someone.
        function greet(name) {
          const msg = "hi " + name;
          return msg;
        }
        class Counter {
          inc() {
            this.n += 1;
            return this.n;
          }
        }
        '''), ["greet", "Counter"]),
    "main.go": ("go", textwrap.dedent('''\
        package main

        func Sum(xs []int) int {
            total := 0
            for _, x := range xs { total += x }
            return total
        }
        '''), ["Sum"]),
}


@pytest.mark.parametrize("name", sorted(TREE_SITTER_CASES))
def test_function_mode_tree_sitter(tmp_path: Path, name: str) -> None:
    lang, code, expected = TREE_SITTER_CASES[name]
    pytest.importorskip(units_mod.GRAMMARS[lang][0])
    seeds, _ = seeds_of(tmp_path, {name: code}, mode="function", fn_min_lines=3)
    assert [s.meta["provenance"]["name"] for s in seeds] == expected
    assert all(s.lang == lang for s in seeds)
    if lang != "go":  # the leading doc comment belongs to the unit
        assert seeds[0].seed.lstrip().startswith("//")


def test_function_mode_without_grammar_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setitem(units_mod.GRAMMARS, "rust",
                        ("tree_sitter_not_installed", "language", frozenset({"function_item"})))
    units_mod._parser.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"synth\[treesitter\]"):
            seeds_of(tmp_path, {"lib.rs": TREE_SITTER_CASES["lib.rs"][1]}, mode="function")
    finally:
        units_mod._parser.cache_clear()


def test_file_mode_bounds_size(tmp_path: Path) -> None:
    big = "x = 1\n" * 5000
    seeds, counts = seeds_of(tmp_path, {"small.py": PY, "big.py": big}, mode="file",
                             max_chars=20_000)
    assert [s.meta["provenance"]["path"] for s in seeds] == ["small.py"]
    assert seeds[0].seed == PY.rstrip("\n")
    assert counts["drop_too_long"] == 1


@pytest.mark.parametrize("text, lang, reason", [
    ("x=1", "python", "too_short"),
    ("value = compute(" + "1, " * 300 + ")", "python", "long_lines"),
    ("# Code generated by protoc. DO NOT EDIT.\nx = 1\ny = 2", "python", "generated"),
    ("# Copyright 2020 ACME\n# Licensed under the MIT License\n# see LICENSE", "python",
     "license"),
    ("// a comment\n// another comment\n// and more words here", "rust", "mostly_comments"),
    ("=====================\n---------------------\n+++++++++++", "python", "low_alnum"),
    ("def ok(a):\n    return a + 1", "python", None),
])
def test_quality_gates(text: str, lang: str, reason: str | None) -> None:
    assert gate(text, lang, SeedsConfig()) == reason


def test_exact_and_near_dedup_across_files(tmp_path: Path) -> None:
    body = "\n".join(f"def f{i}(value):\n    return value * {i} + offset_{i}" for i in range(6))
    near = body.replace("offset_5", "offset_five")
    files = {"a.py": body, "b.py": body + "\n", "c.py": near}
    exact, counts = seeds_of(tmp_path, files, mode="file")
    assert len(exact) == 2 and counts["drop_duplicate"] == 1
    nd, counts = seeds_of(tmp_path / "n", files, mode="file", near_dedup=0.8)
    assert len(nd) == 1 and counts["drop_near_duplicate"] == 1


def test_quota_samples_per_language_deterministically(tmp_path: Path) -> None:
    files = {f"m{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(6)}
    files |= {f"s{i}.sh": f"echo step {i} && ls -la /tmp/{i}\n" for i in range(4)}
    seeds, counts = seeds_of(tmp_path, files, mode="file", quota={"python": 2, "*": 1})
    langs = Counter(s.lang for s in seeds)
    assert langs == {"python": 2, "shell": 1} and counts["drop_quota"] == 7
    again, _ = seeds_of(tmp_path / "again", files, mode="file", quota={"python": 2, "*": 1})
    assert [s.id for s in again] == [s.id for s in seeds]
    other, _ = seeds_of(tmp_path / "o", files, mode="file", quota={"python": 2, "*": 1}, seed=9)
    assert {s.id for s in other} != {s.id for s in seeds}  # the seed drives the sample


def test_parse_quota() -> None:
    assert parse_quota(["python=40000", "Rust=5000"]) == {"python": 40000, "rust": 5000}
    assert parse_quota(None) is None
    with pytest.raises(ConfigError):
        parse_quota(["python"])


def test_bad_files_are_skipped_with_counted_reasons(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    files: dict[str, str | bytes] = {
        "good.py": "def ok(a):\n    return a + 1\n",
        "latin1.py": "s = 'caf\xe9 cr\xe8me'\nprint(s)\n".encode("latin-1"),
        "blob.py": b"\x00\x01\x02binary",
        "huge.py": "x = 1\n" * 50_000,
        "mini.js": "var a=1;" * 400,
        "locked.py": "def locked():\n    return 1\n",
    }
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "loop_a.py").symlink_to(root / "loop_b.py")
    (root / "loop_b.py").symlink_to(root / "loop_a.py")
    (root / "link.py").symlink_to(root / "good.py")
    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "locked.py":
            raise PermissionError(13, "Permission denied")
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    seeds, counts = seeds_of(tmp_path, files, mode="file", max_file_bytes=100_000)
    assert sorted(s.meta["provenance"]["path"] for s in seeds) == ["good.py", "latin1.py"]
    assert "\ufffd" in next(s.seed for s in seeds if "latin1" in s.meta["provenance"]["path"])
    assert counts["decode_replaced"] == 1
    assert counts["skip_binary"] == 1
    assert counts["skip_too_large"] == 1
    assert counts["skip_minified"] == 1
    assert counts["skip_unreadable"] == 1
    assert counts["skip_symlink_loop"] == 2
    assert counts["skip_symlink"] == 1


def test_unreadable_directory_is_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_walk = os.walk

    def walk(top: str, onerror=None, followlinks: bool = False):  # noqa: ANN001, ANN202
        if onerror is not None:
            onerror(PermissionError(13, "Permission denied", str(top) + "/secret"))
        yield from real_walk(top, onerror=onerror, followlinks=followlinks)

    monkeypatch.setattr(os, "walk", walk)
    _, counts = seeds_of(tmp_path, {"a.py": "def a(x):\n    return x * 2\n"})
    assert counts["skip_unreadable"] == 1


def write_rows(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa

    table = pa.Table.from_pylist(rows)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    elif path.suffix == ".arrow":
        with pa.ipc.new_stream(str(path), table.schema) as writer:  # the format `datasets` saves
            writer.write_table(table)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".arrow"])
def test_local_dataset_files_with_columns(tmp_path: Path, suffix: str) -> None:
    rows = [
        {"code": "def add(a, b):\n    return a + b\n", "language": "Python", "path": "x/add.py"},
        {"code": "fn main() {\n    println!(\"hi\");\n}\n", "language": "Rust", "path": "m.rs"},
        {"code": "int main() { return 0; }\n", "language": "C++", "path": "m.cpp"},
        {"code": None, "language": "Python", "path": "none.py"},
        {"code": "x" * 5000, "language": "Python", "path": "minified.py"},
    ]
    data = tmp_path / f"rows{suffix}"
    write_rows(data, rows)
    src = DatasetSource(str(data), text_column="code", lang_column="language")
    counts: Counter[str] = Counter()
    seeds = list(extract_seeds([], SeedsConfig(mode="file"), counts, [src]))
    assert [(s.lang, s.meta["provenance"]["path"]) for s in seeds] == [
        ("python", "train/0:x/add.py"), ("rust", "train/1:m.rs"), ("cpp", "train/2:m.cpp")]
    assert counts["skip_bad_row"] == 1 and counts["skip_minified"] == 1
    # Without a language column the language comes from the path column's extension.
    auto = list(extract_seeds([], SeedsConfig(mode="file"), Counter(),
                              [DatasetSource(str(data), text_column="code")]))
    assert [s.lang for s in auto] == ["python", "rust", "cpp"]


def test_dataset_bytes_that_are_not_utf8_are_replaced_and_counted(tmp_path: Path) -> None:
    data = tmp_path / "rows.parquet"
    write_rows(data, [{"content": b"print('caf\xe9 ok')\nvalue = 42\n", "path": "a.py"}])
    counts: Counter[str] = Counter()
    seeds = list(extract_seeds([], SeedsConfig(mode="file"), counts,
                               [DatasetSource(str(data))]))
    assert len(seeds) == 1 and "\ufffd" in seeds[0].seed and counts["decode_replaced"] == 1


def test_dataset_missing_column_is_an_input_error(tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    write_rows(data, [{"text": "x = 1"}])
    with pytest.raises(InputError, match="--text-column"):
        list(extract_seeds([], SeedsConfig(), Counter(), [DatasetSource(str(data))]))


def test_hub_dataset_offline_is_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(InputError, match="cannot stream dataset"):
        list(extract_seeds([], SeedsConfig(), Counter(),
                           [DatasetSource("no-such-org/no-such-dataset-xyz")]))


def test_source_file_units_helper_counts_unknown_grammar() -> None:
    counts: Counter[str] = Counter()
    src = SourceFile(root="r", path="q.sql", lang="sql", text="select 1;", sha256="0")
    assert units_mod.function_units(src, SeedsConfig(mode="function"), counts) == []
    assert counts["skip_no_grammar"] == 1
