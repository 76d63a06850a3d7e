"""The licence of a seed's source: an SPDX id read from the repository it came from.

For a file, walk up from its directory to the corpus root (and on to the enclosing git work
tree's top, when the root is a sub-directory of one). The nearest directory that says something
wins: first a licence file (``LICENSE*``, ``LICENCE*``, ``COPYING*``) recognised by phrases only
its licence text has, then package metadata (``pyproject.toml`` ``license``, ``package.json``
``license``, ``Cargo.toml`` ``package.license``). Nothing readable gives ``unknown``. Results are
cached per directory, so a corpus of 100k files reads each licence file once.

The text rules are deliberately conservative: a file that matches none of them is ``unknown``,
never a guess. Python's own LICENSE (the default corpus, the standard library) mentions the
GPL many times, so the PSF rule comes first.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from synth.errors import ConfigError

UNKNOWN = "unknown"

#: What ``--license-allow permissive`` stands for.
PERMISSIVE = frozenset({
    "MIT", "MIT-0", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "0BSD", "ISC", "Unlicense",
    "PSF-2.0", "Python-2.0", "Zlib", "CC0-1.0", "BSL-1.0",
})

# LICENSE, LICENSE.txt, LICENSE-MIT, LICENCE.md, COPYING, COPYING.LESSER, UNLICENSE: but not
# a source file that happens to start with the word (licenses.py, license_check.go).
_LICENSE_NAME = re.compile(r"^(un)?licen[cs]es?([-_][a-z0-9-]+)?(\.[a-z0-9]+)?$|"
                           r"^copying([-_][a-z0-9-]+)?(\.[a-z0-9]+)?$", re.IGNORECASE)
_READ_BYTES = 64 * 1024


def _has(*phrases: str) -> Any:
    pats = [re.compile(p, re.IGNORECASE) for p in phrases]
    return lambda text: all(p.search(text) for p in pats)


# Ordered: the first rule whose phrases all occur names the licence. Texts are whitespace-
# normalised first, so phrases match across line breaks.
_RULES: list[tuple[str, Any]] = [
    ("PSF-2.0", _has(r"PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2")),
    ("AGPL-3.0", _has(r"GNU AFFERO GENERAL PUBLIC LICENSE", r"Version 3")),
    ("LGPL-3.0", _has(r"GNU LESSER GENERAL PUBLIC LICENSE", r"Version 3")),
    ("LGPL-2.1", _has(r"GNU LESSER GENERAL PUBLIC LICENSE", r"Version 2\.1")),
    ("LGPL-2.0", _has(r"GNU LIBRARY GENERAL PUBLIC LICENSE", r"Version 2")),
    ("GPL-3.0", _has(r"GNU GENERAL PUBLIC LICENSE", r"Version 3, 29 June 2007")),
    ("GPL-2.0", _has(r"GNU GENERAL PUBLIC LICENSE", r"Version 2, June 1991")),
    ("MPL-2.0", _has(r"Mozilla Public License,? (Version|v\.?) ?2\.0")),
    ("Apache-2.0", _has(r"Apache License", r"Version 2\.0")),
    ("Unlicense", _has(r"free and unencumbered software released into the public domain")),
    ("MIT", _has(r"Permission is hereby granted, free of charge, to any person obtaining a copy",
                 r"THE SOFTWARE IS PROVIDED \W?AS IS\W?")),
    ("ISC", _has(r"Permission to use, copy, modify, and(/or)? distribute this software for any "
                 r"purpose with or without fee is hereby granted")),
    ("BSD-3-Clause", _has(r"Redistribution and use in source and binary forms",
                          r"(Neither the name|names of (its|the) contributors)")),
    ("BSD-2-Clause", _has(r"Redistribution and use in source and binary forms",
                          r"Redistributions in binary form must reproduce")),
    ("BSL-1.0", _has(r"Boost Software License - Version 1\.0")),
    ("Zlib", _has(r"This software is provided 'as-is', without any express or implied warranty",
                  r"The origin of this software must not be misrepresented")),
]

# Common free-text names in package metadata and their SPDX ids.
_ALIASES = {
    "mit": "MIT", "mit license": "MIT", "the mit license": "MIT", "expat": "MIT",
    "apache 2.0": "Apache-2.0", "apache-2": "Apache-2.0", "apache 2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0", "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0", "apache2": "Apache-2.0",
    "bsd": "BSD-3-Clause", "bsd license": "BSD-3-Clause", "new bsd": "BSD-3-Clause",
    "bsd-3": "BSD-3-Clause", "3-clause bsd": "BSD-3-Clause", "bsd-2": "BSD-2-Clause",
    "simplified bsd": "BSD-2-Clause", "2-clause bsd": "BSD-2-Clause",
    "isc license": "ISC", "mpl 2.0": "MPL-2.0", "mpl-2": "MPL-2.0",
    "gplv3": "GPL-3.0", "gpl-3": "GPL-3.0", "gpl v3": "GPL-3.0", "gplv2": "GPL-2.0",
    "gpl-2": "GPL-2.0", "gpl-3.0-only": "GPL-3.0", "gpl-3.0-or-later": "GPL-3.0",
    "gpl-2.0-only": "GPL-2.0", "gpl-2.0-or-later": "GPL-2.0", "lgplv3": "LGPL-3.0",
    "lgpl-3.0-only": "LGPL-3.0", "lgpl-3.0-or-later": "LGPL-3.0", "lgpl-2.1-only": "LGPL-2.1",
    "lgpl-2.1-or-later": "LGPL-2.1", "unlicense": "Unlicense", "the unlicense": "Unlicense",
    "psf": "PSF-2.0", "psf license": "PSF-2.0", "python software foundation license": "PSF-2.0",
}


def license_from_text(text: str) -> str | None:
    """The SPDX id of a licence file's text, or None when no rule matches it."""
    flat = " ".join(text.split())
    for spdx, matches in _RULES:
        if matches(flat):
            return spdx
    return None


def normalize(name: str) -> str | None:
    """An SPDX id (or SPDX expression) for a metadata licence string; None for nothing."""
    name = name.strip()
    if not name or name.upper() in ("UNKNOWN", "NOASSERTION", "UNLICENSED", "SEE LICENSE"):
        return None
    alias = _ALIASES.get(name.lower())
    if alias:
        return alias
    if name.lower().startswith("see license"):
        return None
    # Keep SPDX ids and expressions ("MIT OR Apache-2.0") as they are; long prose is no id.
    return name if len(name) <= 80 and "\n" not in name else None


def license_from_metadata(directory: Path) -> str | None:
    """The licence declared by pyproject.toml, package.json or Cargo.toml in ``directory``."""
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        data = _toml(pyproject)
        project = data.get("project", {})
        lic = project.get("license") if isinstance(project, dict) else None
        if isinstance(lic, dict):
            lic = lic.get("text")
        if not lic:
            poetry = data.get("tool", {}).get("poetry", {})
            lic = poetry.get("license") if isinstance(poetry, dict) else None
        if isinstance(lic, str) and normalize(lic):
            return normalize(lic)
    package = directory / "package.json"
    if package.is_file():
        try:
            lic = json.loads(package.read_text(encoding="utf-8", errors="replace")).get("license")
        except (json.JSONDecodeError, AttributeError, OSError):
            lic = None
        if isinstance(lic, dict):
            lic = lic.get("type")
        if isinstance(lic, str) and normalize(lic):
            return normalize(lic)
    cargo = directory / "Cargo.toml"
    if cargo.is_file():
        pkg = _toml(cargo).get("package", {})
        lic = pkg.get("license") if isinstance(pkg, dict) else None
        if isinstance(lic, str) and normalize(lic):
            return normalize(lic.replace("/", " OR "))
    return None


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (tomllib.TOMLDecodeError, OSError):
        return {}


def _is_license_file(name: str) -> bool:
    from synth.seeds.languages import EXTENSIONS

    return bool(_LICENSE_NAME.match(name)) and Path(name).suffix.lower() not in EXTENSIONS


def license_of_directory(directory: Path) -> str | None:
    """What ``directory`` itself says about its licence (files first, then metadata)."""
    try:
        entries = sorted(p for p in directory.iterdir() if _is_license_file(p.name)
                         and p.is_file())
    except OSError:
        entries = []
    found: set[str] = set()
    for path in entries:
        try:
            with open(path, "rb") as fh:
                text = fh.read(_READ_BYTES).decode("utf-8", errors="replace")
        except OSError:
            continue
        spdx = license_from_text(text)
        if spdx:
            found.add(spdx)
    if found:
        # COPYING + COPYING.LESSER is the LGPL; LICENSE-MIT + LICENSE-APACHE is a choice.
        lesser = sorted(f for f in found if f.startswith("LGPL"))
        return lesser[0] if lesser else " OR ".join(sorted(found))
    return license_from_metadata(directory)


class LicenseDetector:
    """Finds the licence of files under corpus roots, caching what each directory says."""

    def __init__(self) -> None:
        self._own: dict[Path, str | None] = {}
        self._resolved: dict[Path, str] = {}
        self._top: dict[Path, Path] = {}

    def _says(self, directory: Path) -> str | None:
        if directory not in self._own:
            self._own[directory] = license_of_directory(directory)
        return self._own[directory]

    def _stop(self, root: Path) -> Path:
        """Where the walk up ends: the git work tree's top above ``root``, else ``root``."""
        if root not in self._top:
            top = root
            for parent in [root, *root.parents]:
                if (parent / ".git").exists():
                    top = parent
                    break
            self._top[root] = top
        return self._top[root]

    def for_file(self, root: str, path: str) -> str:
        """The SPDX id for ``root/path`` (``unknown`` when nothing on the way up says)."""
        base = Path(root)
        if not base.is_dir():
            return UNKNOWN
        return self.for_directory((base / path).parent, base)

    def for_directory(self, directory: Path, root: Path) -> str:
        if directory in self._resolved:
            return self._resolved[directory]
        stop = self._stop(root)
        walked: list[Path] = []
        result = UNKNOWN
        current = directory
        while True:
            if current in self._resolved:
                result = self._resolved[current]
                break
            walked.append(current)
            said = self._says(current)
            if said:
                result = said
                break
            if current == stop or current == current.parent or stop not in current.parents:
                break
            current = current.parent
        for d in walked:
            self._resolved[d] = result
        return result


def parse_allow(value: str | None) -> tuple[str, ...]:
    """``--license-allow MIT,Apache-2.0`` or ``permissive`` → the SPDX ids allowed."""
    if not value:
        return ()
    out: list[str] = []
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        if item.lower() == "permissive":
            out += sorted(PERMISSIVE)
        elif item.lower() == UNKNOWN:
            out.append(UNKNOWN)
        else:
            out.append(normalize(item) or item)
    if not out:
        raise ConfigError(f"--license-allow names no licence: {value!r}")
    return tuple(dict.fromkeys(out))


def allowed(license_id: str | None, allow: tuple[str, ...] | frozenset[str]) -> bool:
    """Whether a source under ``license_id`` may be used; an SPDX ``A OR B`` needs one of
    them allowed, ``A AND B`` needs both. An empty allow-list allows everything."""
    if not allow:
        return True
    lid = license_id or UNKNOWN
    ok = set(allow)
    for option in re.split(r"\s+OR\s+", lid.strip("() ")):
        parts = [p.strip("() ") for p in re.split(r"\s+AND\s+", option)]
        if all(p in ok for p in parts):
            return True
    return False


def record_license(record: Any) -> str:
    """The licence a record carries (see :func:`synth.io.schema.record_license`)."""
    from synth.io.schema import record_license as of_record

    return of_record(record)
