"""Push to hub, stopped at huggingface_hub's call boundary (HfApi methods patched)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from run_factory import make_run  # noqa: F401 (the fixture)
from typer.testing import CliRunner

import synth.report
from synth.cli import app

TOKEN = "hf_test_token_never_written_0123456789"


@pytest.fixture
def hub_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    from huggingface_hub import HfApi

    calls: list[tuple[str, dict[str, Any]]] = []

    def create_repo(self: HfApi, repo_id: str, **kw: Any) -> str:
        calls.append(("create_repo", {"repo_id": repo_id, "token": self.token, **kw}))
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_folder(self: HfApi, **kw: Any) -> str:
        folder = Path(kw["folder_path"])
        kw["files"] = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                             if p.is_file())
        calls.append(("upload_folder", {"token": self.token, **kw}))
        return f"https://huggingface.co/datasets/{kw['repo_id']}/commit/abc"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def _all_bytes(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("public", [False, True])
def test_push_uses_repo_privacy_files_and_env_token(
        make_run: Callable[..., Path], hub_calls: list[tuple[str, dict[str, Any]]],
        monkeypatch: pytest.MonkeyPatch, public: bool) -> None:
    monkeypatch.setattr(synth.report, "build_report", lambda run_dir: {
        "card": run_dir / "dataset" / "README.md", "plots": [], "rows": 0})
    run = make_run(n=3, rejected=1)
    (run / "dataset" / "README.md").write_text("---\n---\n# card\n")
    args = ["report", str(run), "--push-to-hub", "someone/my-data"] + (
        ["--public"] if public else [])
    result = CliRunner().invoke(app, args, env={"HF_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    assert [name for name, _ in hub_calls] == ["create_repo", "upload_folder"]
    create, upload = hub_calls[0][1], hub_calls[1][1]
    assert create["repo_id"] == "someone/my-data" and create["repo_type"] == "dataset"
    assert create["private"] is (not public)
    assert create["token"] == TOKEN and upload["token"] == TOKEN
    assert upload["repo_id"] == "someone/my-data" and upload["repo_type"] == "dataset"
    assert Path(upload["folder_path"]) == run / "dataset"
    assert "README.md" in upload["files"]
    assert any(f.startswith("data/train-") and f.endswith(".parquet") for f in upload["files"])
    assert ("public" if public else "private") in result.output
    for path, data in _all_bytes(run):
        assert TOKEN.encode() not in data, path


def test_token_is_never_written_by_a_run(make_run: Callable[..., Path],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    run = make_run(n=3, rejected=1)
    for path, data in _all_bytes(run):
        assert TOKEN.encode() not in data, path


def test_push_without_token_is_one_red_line(make_run: Callable[..., Path],
                                            hub_calls: list[tuple[str, dict[str, Any]]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth.report, "build_report", lambda run_dir: {
        "card": run_dir / "dataset" / "README.md", "plots": [], "rows": 0})
    monkeypatch.delenv("HF_TOKEN", raising=False)
    run = make_run(n=2, rejected=0)
    (run / "dataset" / "README.md").write_text("# card\n")
    result = CliRunner().invoke(app, ["report", str(run), "--push-to-hub", "a/b"])
    assert result.exit_code == 1
    assert "HF_TOKEN" in result.output
    assert hub_calls == []
