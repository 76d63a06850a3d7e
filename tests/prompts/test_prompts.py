"""Template loading and rendering."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import jinja2
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


def test_user_templates_keep_jinjas_globals(tmp_path: Path) -> None:
    """Template globals are one flat dict (cheaper to copy per render than jinja's ChainMap):
    the built-in globals are all still there, and a template's own globals overlay them."""
    (tmp_path / "codegen").mkdir()
    (tmp_path / "codegen" / "user.j2").write_text(
        "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}"
        "{% endfor %}{{ ns.n }} {{ dict(a=1)['a'] }} {{ cycler('x', 'y').next() }}")
    prompts = Prompts(tmp_path)
    assert prompts.messages("codegen", seed="")[-1]["content"] == "3 1 x"
    template = prompts.env.from_string("{{ range(2) | list }} {{ x }}", globals={"x": 7})
    assert type(template.globals) is dict and template.render() == "[0, 1] 7"


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


def _includes_kept(prompts: Prompts) -> Prompts:
    """The same templates under jinja2's own Environment: every include stays an include."""
    env = prompts.env
    plain = jinja2.Environment(loader=env.loader, undefined=jinja2.StrictUndefined,
                               autoescape=False, keep_trailing_newline=False, trim_blocks=True,
                               lstrip_blocks=True, auto_reload=False)
    plain.filters["fence"] = code_fence
    other = Prompts()
    other.env = plain
    return other


def _variable_sets() -> list[dict[str, Any]]:
    """Every variable a shipped template reads, in several combinations."""
    case = {"input": "Write `f`.\n\n  indented", "output": '{"problem": "p"}\n```py\nx\n```'}
    sets = []
    for answer_format, lang, shots, critique in itertools.product(
            ("json", "sections"), ("python", ""), (0, 1, 2), ("problems", "error", "execution")):
        examples = {"good": [dict(case, input=f"good {i}") for i in range(shots)],
                    "bad": [dict(case, problems=[{"rule": "r1", "reason": "vague"},
                                                 {"rule": "", "reason": ""}])][:shots]}
        v: dict[str, Any] = {
            name: f"{name} text\n  with {{{{ braces }}}} and ```fences```\n"
            for name in ("fence_lang", "information", "instruction", "lang_name", "method_text",
                         "name", "original_input", "original_instruction", "response", "seed",
                         "solution", "target_fence", "target_name", "task_name",
                         "test_lang_name", "test_note", "test_style")}
        v.update(answer_format=answer_format, lang=lang, examples=examples, round=2,
                 max_rounds=3, num_inputs=6, num_tests=5,
                 rules=[{"id": "r1", "text": "Rule one."}, {"id": "r2", "text": "Rule two."}],
                 problems=[{"rule": "r1", "text": "Rule one.", "reason": "no"}] * 2,
                 error="bad JSON" if critique == "error" else "",
                 execution="FAILED test_1" if critique == "execution" else "")
        if not lang:
            v["test_note"] = ""
        sets.append(v)
    return sets


def test_includes_compiled_in_render_what_jinja_includes_render() -> None:
    prompts = Prompts()
    reference = _includes_kept(prompts)
    names = prompts.env.list_templates(filter_func=lambda n: n.endswith(".j2"))
    assert len(names) > 30
    inlined = 0
    for name in names:
        task, part = name[:-3].split("/")
        template = prompts._template(task, part)
        assert template is not None
        inlined += "Include" in repr(prompts.env.parse(prompts.source(task, part) or "")) and \
            "include" not in (prompts.env.compile(prompts.source(task, part) or "", name,
                                                  raw=True) or "").lower()
        for variables in _variable_sets():
            assert prompts.render(task, part, **variables) == \
                reference.render(task, part, **variables), (name, variables)
    assert inlined >= 10  # the task templates' includes were compiled in


def test_includes_that_keep_a_scope_stay_includes(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "user.j2").write_text(
        '{% set x = "outer" %}[{% include "t/sets.j2" %}] {{ x }}\n'
        '{% for i in [1, 2] %}{% include "t/loop.j2" %}{% endfor %}\n'
        '{% include "t/self.j2" %}{% include "t/" ~ which %}')
    (tmp_path / "t" / "sets.j2").write_text('{% set x = "inner" %}{{ x }}')
    (tmp_path / "t" / "loop.j2").write_text("{{ i }} ")
    (tmp_path / "t" / "self.j2").write_text('<{% if deep %}{% include "t/self.j2" %}{% endif %}>')
    (tmp_path / "t" / "p.j2").write_text("{{ x }}")
    prompts = Prompts(tmp_path)
    text = prompts.render("t", "user", which="p.j2", deep=False)
    assert text == _includes_kept(prompts).render("t", "user", which="p.j2", deep=False)
    assert text == "[inner] outer\n1 2 <>outer"  # (trim_blocks eats the newline)
