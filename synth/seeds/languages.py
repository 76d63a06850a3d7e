"""Programming languages by file extension (and a few well-known file names)."""

from __future__ import annotations

from pathlib import PurePath

EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hh": "cpp", ".hpp": "cpp",
    ".hxx": "cpp", ".ipp": "cpp",
    ".cs": "csharp",
    ".go": "go",
    ".rs": "rust",
    ".php": "php",
    ".rb": "ruby",
    ".swift": "swift",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".ksh": "shell",
    ".kt": "kotlin", ".kts": "kotlin",
    ".scala": "scala",
    ".lua": "lua",
    ".pl": "perl", ".pm": "perl",
    ".r": "r",
    ".jl": "julia",
    ".hs": "haskell",
    ".ex": "elixir", ".exs": "elixir",
    ".dart": "dart",
    ".sql": "sql",
}

FILENAMES: dict[str, str] = {
    "makefile": "makefile",
    "dockerfile": "dockerfile",
}

SHEBANGS: dict[str, str] = {
    "python": "python", "python3": "python", "bash": "shell", "sh": "shell", "zsh": "shell",
    "node": "javascript", "ruby": "ruby", "perl": "perl", "php": "php",
}


def detect_language(path: str | PurePath, first_line: str = "") -> str | None:
    """The language of ``path`` from its extension, name or ``#!`` line; None if not code."""
    p = PurePath(path)
    lang = EXTENSIONS.get(p.suffix.lower()) or FILENAMES.get(p.name.lower())
    if lang is None and not p.suffix and first_line.startswith("#!"):
        words = first_line[2:].split()
        if words:
            prog = words[-1] if words[0].endswith("/env") and len(words) > 1 else words[0]
            lang = SHEBANGS.get(PurePath(prog).name)
    return lang


def fence_tag(lang: str) -> str:
    """The Markdown code-fence tag for a language name."""
    return {"csharp": "cs", "shell": "bash"}.get(lang, lang)


_NAMES = {"javascript": "JavaScript", "typescript": "TypeScript", "cpp": "C++", "csharp": "C#",
          "php": "PHP", "sql": "SQL", "r": "R", "makefile": "Makefile", "shell": "shell"}


def language_name(lang: str) -> str:
    """How people write a language's name in prose (``cpp`` → ``C++``); "" stays ""."""
    return _NAMES.get(lang, lang.capitalize())
