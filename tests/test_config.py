"""Config precedence (CLI > synth.toml > defaults) and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from synth.config import GenerateConfig, LLMConfig, as_dict, load_toml, resolve
from synth.errors import ConfigError


def test_precedence(tmp_path: Path) -> None:
    path = tmp_path / "synth.toml"
    path.write_text('[llm]\nconcurrency = 32\nmodel = "from-toml"\n[generate]\nmax_tokens = 99\n')
    toml = load_toml(path)
    llm = resolve(LLMConfig, "llm", toml, {"model": "from-cli", "concurrency": None})
    assert llm.model == "from-cli" and llm.concurrency == 32 and llm.max_attempts == 6
    gen = resolve(GenerateConfig, "generate", toml, {"temperature": 0.5})
    assert gen.max_tokens == 99 and gen.temperature == 0.5


@pytest.mark.parametrize(("text", "match"), [
    ("[llm]\nconcurency = 3\n", "unknown key"),
    ("[llm]\nconcurrency = 0\n", "--concurrency"),
    ("llm = 3\n", "must be a table"),
    ("[llm\n", "invalid TOML"),
])
def test_bad_config_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "synth.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        resolve(LLMConfig, "llm", load_toml(path), {})


def test_missing_explicit_config_and_no_secret_fields(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "nope.toml")
    dumped = str(as_dict(LLMConfig(), GenerateConfig())).lower()
    assert "key" not in dumped and "secret" not in dumped and "token" not in dumped.replace(
        "max_tokens", "").replace("tpm", "").replace("budget_tokens", "")
