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
_HEAD_CHARS = 1000  # generated-code markers sit in headers; searching whole files is slow
_ASCII_SPACE = bytes(c for c in range(128) if chr(c).isspace())
_ASCII_ALNUM = bytes(c for c in range(128) if chr(c).isalnum())
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
    if GENERATED_MARK.search(text, 0, _HEAD_CHARS):
        return "generated"
    comments = comment_lines(lines, lang)
    if len(comments) > cfg.max_comment_fraction * len(lines):
        return "license" if LICENSE.search(" ".join(comments)) else "mostly_comments"
    visible, alnum = _visible_and_alnum(body)
    if alnum < cfg.min_alnum_fraction * visible:
        return "low_alnum"
    return None


def _visible_and_alnum(text: str) -> tuple[int, int]:
    """Non-whitespace and letter/digit character counts (C-speed: this runs on every unit)."""
    if text.isascii():
        data = text.encode("ascii")
        visible = len(data.translate(None, _ASCII_SPACE))
        return visible, len(data) - len(data.translate(None, _ASCII_ALNUM))
    return len(text) - _SPACE.subn("", text)[1], _ALNUM.subn("", text)[1]
