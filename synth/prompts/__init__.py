"""Prompt templates: Jinja files shipped as package data, overridable from a directory.

A task's templates live in ``templates/<task>/``: ``system.j2`` (optional) and ``user.j2``.
``--templates DIR`` puts ``DIR/<task>/*.j2`` in front of the packaged ones, file by file.
Rendering uses StrictUndefined, so a template that names a variable the task does not provide
fails loudly instead of rendering an empty string. Seed code is passed as a variable: Jinja
never evaluates the *content* of a variable, so a seed holding ``{{ }}`` or ``{% %}`` renders
verbatim.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jinja2

from synth.errors import TemplateError

PARTS = ("system", "user")


def code_fence(code: str) -> str:
    """A backtick fence longer than any backtick run inside ``code``."""
    longest = run = 0
    for ch in code:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


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
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["fence"] = code_fence

    def _template(self, task: str, part: str) -> jinja2.Template | None:
        try:
            return self.env.get_template(f"{task}/{part}.j2")
        except jinja2.TemplateNotFound:
            return None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {task}/{part}.j2 line {exc.lineno}: {exc.message}") from exc

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

    def template_hash(self, task: str) -> str:
        """Short sha256 over the task's template sources: changes whenever a template does."""
        h = hashlib.sha256()
        for part in PARTS:
            h.update(f"{part}\0{self.source(task, part) or ''}\0".encode())
        return h.hexdigest()[:12]

    def render(self, task: str, part: str, **variables: Any) -> str | None:
        template = self._template(task, part)
        if template is None:
            return None
        try:
            return template.render(**variables).strip()
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {task}/{part}.j2: {exc.message}") from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {task}/{part}.j2: {exc}") from exc

    def messages(self, task: str, **variables: Any) -> list[dict[str, str]]:
        """Chat messages for ``task``: the system part when it exists, then the user part."""
        user = self.render(task, "user", **variables)
        if user is None:
            known = ", ".join(self.tasks()) or "none"
            raise TemplateError(f"no template {task}/user.j2 (tasks with templates: {known})")
        system = self.render(task, "system", **variables)
        out = [{"role": "system", "content": system}] if system else []
        out.append({"role": "user", "content": user})
        return out
