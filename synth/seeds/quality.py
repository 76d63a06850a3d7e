"""Quality gates for seed snippets: each rejects with a reason that is counted, never silently.

The heuristics follow the usual code-corpus filters (StarCoder/The Stack cleaning, datatrove's
code filters): snippets that are too short or long, mostly comments (a licence header is its own
reason), marked as generated, made of few alphanumeric characters (data tables, ASCII art) or
holding very long lines (minified code, embedded data).
"""

from __future__ import annotations

import re

from synth.config import SeedsConfig
from synth.seeds.corpus import GENERATED_MARK

_HASH = ("#",)
_SLASH = ("//", "/*", "*", "*/")
_DASH = ("--",)
COMMENT_PREFIXES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("python", "shell", "ruby", "perl", "r", "julia", "elixir", "makefile",
                     "dockerfile"), _HASH),
    **dict.fromkeys(("c", "cpp", "csharp", "java", "javascript", "typescript", "go", "rust",
                     "swift", "kotlin", "scala", "dart"), _SLASH),
    "php": _SLASH + _HASH,
    **dict.fromkeys(("lua", "sql", "haskell"), _DASH),
}
_SPACE = re.compile(r"\s")
_ALNUM = re.compile(r"[^\W_]")  # what str.isalnum accepts: letters and digits, any script
LICENSE = re.compile(r"\b(licen[cs]e[ds]?|copyright|spdx-license-identifier|all rights reserved|"
                     r"warranty|redistribut)", re.IGNORECASE)


def comment_lines(lines: list[str], lang: str) -> list[str]:
    """The lines of ``lines`` that are comments (by the language's line prefixes)."""
    prefixes = COMMENT_PREFIXES.get(lang, _HASH + _SLASH)
    return [ln for ln in lines if ln.lstrip().startswith(prefixes)]


def gate(text: str, lang: str, cfg: SeedsConfig) -> str | None:
    """The reason ``text`` is not a usable seed, or None when it passes every gate."""
    body = text.strip()
    if len(body) < cfg.min_chars:
        return "too_short"
    if len(text) > cfg.max_chars:
        return "too_long"
    lines = [ln for ln in body.splitlines() if ln.strip()]
    if max(len(ln) for ln in lines) > cfg.max_line_chars:
        return "long_lines"
    if GENERATED_MARK.search(text):
        return "generated"
    comments = comment_lines(lines, lang)
    if len(comments) > cfg.max_comment_fraction * len(lines):
        return "license" if LICENSE.search(" ".join(comments)) else "mostly_comments"
    # Counted by the regex engine: a per-character Python loop dominated whole-file mode.
    visible = len(body) - _SPACE.subn("", body)[1]
    if _ALNUM.subn("", body)[1] < cfg.min_alnum_fraction * visible:
        return "low_alnum"
    return None
