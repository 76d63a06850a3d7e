"""Template loading and rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from synth.errors import TemplateError
from synth.generators.codegen import CodegenTask
from synth.prompts import Prompts, code_fence
from synth.records import Record


def test_seed_with_template_syntax_renders_verbatim() -> None:
    seed = "x = '{{ secret }}'\n{% for i in range(3) %}{{ i }}{% endfor %}\n{# c #}"
    rec = Record(id="1", seed=seed, lang="python")
    messages = CodegenTask().messages(rec, Prompts(), "sections")
    assert seed in messages[-1]["content"]


def test_fence_longer_than_backticks_in_seed() -> None:
    seed = "s = '```'\nt = '````'"
    assert code_fence(seed) == "`````"
    content = CodegenTask().messages(Record(id="1", seed=seed, lang="python"), Prompts(),
                                     "json")[-1]["content"]
    assert "`````python\n" + seed + "\n`````" in content
    assert '"problem"' in content  # the JSON variant of the instructions


def test_override_directory_and_strict_undefined(tmp_path: Path) -> None:
    (tmp_path / "codegen").mkdir()
    (tmp_path / "codegen" / "user.j2").write_text("Seed: {{ seed }} in {{ lang }}")
    prompts = Prompts(tmp_path)
    msgs = CodegenTask().messages(Record(id="1", seed="a=1", lang="python"), prompts, "json")
    assert msgs[-1]["content"] == "Seed: a=1 in python"
    assert msgs[0]["role"] == "system"  # the packaged system part still applies
    assert prompts.template_hash("codegen") != Prompts().template_hash("codegen")

    (tmp_path / "codegen" / "user.j2").write_text("{{ not_a_variable }}")
    with pytest.raises(TemplateError, match="not_a_variable"):
        Prompts(tmp_path).messages("codegen", seed="", lang="", fence_lang="",
                                   answer_format="json")


def test_bad_override_and_unknown_task(tmp_path: Path) -> None:
    with pytest.raises(TemplateError):
        Prompts(tmp_path / "missing")
    (tmp_path / "codegen").mkdir()
    (tmp_path / "codegen" / "user.j2").write_text("{% if %}")
    with pytest.raises(TemplateError, match="line"):
        Prompts(tmp_path).messages("codegen", seed="")
    with pytest.raises(TemplateError, match="codegen"):
        Prompts().messages("nope")


def test_renderings_are_reused_only_where_the_text_depends_on_nothing_else(
        tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "system.j2").write_text("Write {{ lang | upper }} {{ seed | fence }}.")
    (tmp_path / "t" / "user.j2").write_text('{% include "t/part.j2" %} {{ seed }}')
    (tmp_path / "t" / "part.j2").write_text("{{ lang }}:")
    prompts = Prompts(tmp_path)
    first = prompts.render("t", "system", lang="go", seed="a")
    assert first == "Write GO ```."
    assert prompts.render("t", "system", lang="go", seed="a") is first  # rendered once
    assert prompts.render("t", "system", lang="c", seed="a") == "Write C ```."
    assert prompts.render("t", "system", lang="go", seed="``` x") == "Write GO ````."
    # an include hides what the text depends on: always rendered
    assert prompts.render("t", "user", lang="go", seed="s") == "go: s"
    assert prompts.render("t", "user", lang="rust", seed="s") == "rust: s"
    assert ("t", "user") not in prompts._names
