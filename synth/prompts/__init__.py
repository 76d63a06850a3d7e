"""Prompt templates: Jinja files shipped as package data, overridable from a directory.

A task's templates live in ``templates/<task>/``: the generator's ``system.j2`` (optional) and
``user.j2``, and the discriminator's ``judge_system.j2`` (optional) and ``judge_user.j2``. Parts
shared by every task (few-shot examples, the critique of a revise round, the rule checklist)
live in ``templates/_loop/`` and are pulled in with ``{% include %}``. ``--templates DIR`` puts
``DIR/<task>/*.j2`` (and ``DIR/_loop/*.j2``) in front of the packaged ones, file by file.
Rendering uses StrictUndefined, so a template that names a variable the task does not provide
fails loudly instead of rendering an empty string. Seed code is passed as a variable: Jinja
never evaluates the *content* of a variable, so a seed holding ``{{ }}`` or ``{% %}`` renders
verbatim.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes

from synth.errors import TemplateError

PARTS = ("system", "user")
JUDGE_PARTS = ("judge_system", "judge_user")


_BACKTICKS = re.compile(r"`+")


def code_fence(code: str) -> str:
    """A backtick fence longer than any backtick run inside ``code``."""
    if "`" not in code:  # most seeds: no regex pass (a template fences its seed twice)
        return "```"
    longest = max(map(len, _BACKTICKS.findall(code)), default=0)
    return "`" * max(3, longest + 1)


def _plain_variables(env: jinja2.Environment, source: str) -> tuple[str, ...] | None:
    """The variables a template's text depends on, when that is all it depends on: no
    include, import or extends (whose variables the parse does not show), no call."""
    try:
        ast = env.parse(source)
    except jinja2.TemplateSyntaxError:
        return None
    if any(True for _ in ast.find_all((jinja2.nodes.Include, jinja2.nodes.Import,
                                       jinja2.nodes.FromImport, jinja2.nodes.Extends,
                                       jinja2.nodes.Call))):
        return None
    return tuple(sorted(jinja2.meta.find_undeclared_variables(ast)))


# What a template spliced into its includer may not hold: anything with a scope or a name of
# its own (an include gives the included template a context of its own; these would see, or
# leak into, the includer's instead).
_NOT_INLINED = (jinja2.nodes.Extends, jinja2.nodes.Block, jinja2.nodes.Macro,
                jinja2.nodes.CallBlock, jinja2.nodes.Assign, jinja2.nodes.AssignBlock,
                jinja2.nodes.Import, jinja2.nodes.FromImport, jinja2.nodes.Scope,
                jinja2.nodes.With, jinja2.nodes.ScopedEvalContextModifier,
                jinja2.nodes.EvalContextModifier)
# Statements whose bodies get names of their own (a loop's ``loop`` and target, a macro's
# arguments): an include inside them stays an include.
_OWN_NAMES = (jinja2.nodes.For, jinja2.nodes.Macro, jinja2.nodes.CallBlock,
              jinja2.nodes.FilterBlock, jinja2.nodes.With, jinja2.nodes.Scope)


class _Environment(jinja2.Environment):
    """Compiles ``{% include "literal" %}`` of a plain template into the including one.

    An include renders the other template in a new context per call (three contexts per
    codegen prompt, half of its rendering time). Whitespace control and the trailing newline
    apply per source when each is parsed, so splicing the parsed body renders the same text;
    templates with their own names or scopes (see ``_NOT_INLINED``), includes inside loops and
    anything not literal stay includes. Only compilation changes: ``parse`` (and so
    :meth:`Prompts.template_hash`) still sees the includes.
    """

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one flat dict, not jinja's ChainMap over the environment's.

        Every render copies the globals into its context, and iterating a ChainMap costs
        more than the rest of making the context. Ours are all set before the first
        template loads and never change.
        """
        return {**self.globals, **(d or {})}

    def _generate(self, source: jinja2.nodes.Template, name: str | None,
                  filename: str | None, defer_init: bool = False) -> str:
        return super()._generate(self._inlined(source, (name,)), name, filename,
                                 defer_init=defer_init)

    def _inlined(self, tree: jinja2.nodes.Template,
                 stack: tuple[str | None, ...]) -> jinja2.nodes.Template:
        def walk(node: jinja2.nodes.Node) -> None:
            for field in node.fields:
                value = getattr(node, field)
                if not isinstance(value, list):
                    continue
                out: list[Any] = []
                for child in value:
                    body = self._include_body(child, stack) \
                        if isinstance(child, jinja2.nodes.Include) else None
                    if body is not None:
                        out.extend(body)
                        continue
                    if isinstance(child, jinja2.nodes.Node) \
                            and not isinstance(child, _OWN_NAMES):
                        walk(child)
                    out.append(child)
                setattr(node, field, out)

        walk(tree)
        return tree

    def _include_body(self, node: jinja2.nodes.Include,
                      stack: tuple[str | None, ...]) -> list[jinja2.nodes.Node] | None:
        target = node.template
        if not (isinstance(target, jinja2.nodes.Const) and isinstance(target.value, str)
                and node.with_context and not node.ignore_missing) or target.value in stack:
            return None
        try:
            source, _, _ = self.loader.get_source(self, target.value)  # type: ignore[union-attr]
            child = self._parse(source, target.value, None)
        except (jinja2.TemplateNotFound, jinja2.TemplateSyntaxError):
            return None  # the include itself reports it, as before
        if any(True for _ in child.find_all(_NOT_INLINED)):
            return None
        return list(self._inlined(child, (*stack, target.value)).body)


class Prompts:
    """Loads and renders task templates.

    Args:
        override_dir: a directory whose ``<task>/<part>.j2`` files replace the packaged ones.
    """

    def __init__(self, override_dir: Path | str | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            path = Path(override_dir)
            if not path.is_dir():
                raise TemplateError(f"--templates {path} is not a directory")
            loaders.append(jinja2.FileSystemLoader(str(path)))
        loaders.append(jinja2.PackageLoader("synth.prompts", "templates"))
        self.env = _Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
            # templates do not change during a run: no stat of the file on every render
            auto_reload=False,
        )
        self.env.filters["fence"] = code_fence
        self._templates: dict[tuple[str, str], jinja2.Template | None] = {}
        # Templates that include nothing and use no filter with hidden inputs: the variables
        # their text depends on, and their renderings by those values (a system prompt is
        # the same text for every record of a task).
        self._names: dict[tuple[str, str], tuple[str, ...]] = {}
        self._rendered: dict[tuple[Any, ...], str] = {}

    def _template(self, task: str, part: str) -> jinja2.Template | None:
        try:
            return self._templates[(task, part)]
        except KeyError:
            pass
        try:
            template: jinja2.Template | None = self.env.get_template(f"{task}/{part}.j2")
        except jinja2.TemplateNotFound:
            template = None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {task}/{part}.j2 line {exc.lineno}: {exc.message}") from exc
        self._templates[(task, part)] = template
        if template is not None:
            names = _plain_variables(self.env, self.source(task, part) or "")
            if names is not None:
                self._names[(task, part)] = names
        return template

    def source(self, task: str, part: str) -> str | None:
        """The raw text of ``<task>/<part>.j2``, or None when there is no such part."""
        try:
            src, _, _ = self.env.loader.get_source(self.env, f"{task}/{part}.j2")  # type: ignore[union-attr]
        except jinja2.TemplateNotFound:
            return None
        return src

    def tasks(self) -> list[str]:
        """Names of every task that has a ``user.j2``."""
        names = self.env.list_templates(filter_func=lambda n: n.endswith("/user.j2"))
        return sorted({n.split("/")[0] for n in names})

    def template_hash(self, task: str, extra: tuple[str, ...] = ()) -> str:
        """Short sha256 over the task's template sources, the ``extra`` template names and
        every template they include: changes whenever any of them does."""
        h = hashlib.sha256()
        seen: set[str] = set()
        todo = [f"{task}/{part}.j2" for part in PARTS + JUDGE_PARTS] + list(extra)
        while todo:
            name = todo.pop(0)
            if name in seen:
                continue
            seen.add(name)
            try:
                src, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
            except jinja2.TemplateNotFound:
                src = ""
            h.update(f"{name}\0{src}\0".encode())
            if src:
                try:
                    refs = jinja2.meta.find_referenced_templates(self.env.parse(src))
                except jinja2.TemplateSyntaxError as exc:
                    raise TemplateError(
                        f"template {name} line {exc.lineno}: {exc.message}") from exc
                todo += sorted(r for r in refs if r is not None)
        return h.hexdigest()[:12]

    def render(self, task: str, part: str, **variables: Any) -> str | None:
        template = self._template(task, part)
        if template is None:
            return None
        names = self._names.get((task, part))
        key: tuple[Any, ...] | None = None
        if names is not None:  # the text depends on these variables only: rendered once each
            key = (task, part, *(variables.get(n) for n in names))
            try:
                hit = self._rendered.get(key)
            except TypeError:  # an unhashable value: render as usual
                key, hit = None, None
            if hit is not None:
                return hit
        try:
            text = template.render(**variables).strip()
            if key is not None and len(self._rendered) < 1024:
                self._rendered[key] = text
            return text
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {task}/{part}.j2: {exc.message}") from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {task}/{part}.j2: {exc}") from exc

    def messages(self, task: str, *, parts: tuple[str, str] = PARTS,
                 **variables: Any) -> list[dict[str, str]]:
        """Chat messages for ``task``: the system part when it exists, then the user part.

        ``parts`` names the (system, user) templates: the generator's by default,
        :data:`JUDGE_PARTS` for the discriminator.
        """
        system_part, user_part = parts
        user = self.render(task, user_part, **variables)
        if user is None:
            known = ", ".join(self.tasks()) or "none"
            raise TemplateError(
                f"no template {task}/{user_part}.j2 (tasks with templates: {known})")
        system = self.render(task, system_part, **variables)
        out = [{"role": "system", "content": system}] if system else []
        out.append({"role": "user", "content": user})
        return out
