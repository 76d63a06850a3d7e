"""Shared fixtures for the filter tests: real Code Alpaca rows and HumanEval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synth.filters.benchmarks import Benchmark, humaneval


def _find_code_alpaca() -> Path:
    # shared/ sits beside the repository (CI clones next to it; worktrees are one level deeper).
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data" / "code_alpaca"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("shared/data/code_alpaca not found beside the repository")


@pytest.fixture(scope="session")
def code_alpaca_dir() -> Path:
    return _find_code_alpaca()


@pytest.fixture(scope="session")
def code_alpaca_rows(code_alpaca_dir: Path) -> list[dict[str, Any]]:
    """All rows of both Code Alpaca files (instruction/input/output)."""
    rows = []
    for name in ("code_alpaca_2k.jsonl", "new_codealpaca.jsonl"):
        with open(code_alpaca_dir / name, encoding="utf-8") as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    return rows


@pytest.fixture(scope="session")
def he() -> Benchmark:
    return humaneval()
