"""Licence detection: SPDX ids from licence texts and package metadata, the walk up, the
allow-list, and the licence column seeds carry."""

from __future__ import annotations

import json
import sysconfig
from collections import Counter
from pathlib import Path

import pytest

from synth.errors import ConfigError
from synth.seeds.licenses import (
    UNKNOWN,
    LicenseDetector,
    allowed,
    license_from_metadata,
    license_from_text,
    parse_allow,
)

MIT = """MIT License

Copyright (c) 2024 Someone

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction...

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
"""
APACHE = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/
   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION
"""
BSD3 = """Copyright (c) 2020, X. All rights reserved.
Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:
* Redistributions in binary form must reproduce the above copyright notice
* Neither the name of the copyright holder nor the names of its
  contributors may be used to endorse or promote products
"""
BSD2 = """Copyright (c) 2020, X.
Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:
1. Redistributions of source code must retain the above copyright notice.
2. Redistributions in binary form must reproduce the above copyright notice,
THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
"""
GPL3 = """                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007
 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>
"""
GPL2 = """                    GNU GENERAL PUBLIC LICENSE
                       Version 2, June 1991
 Copyright (C) 1989, 1991 Free Software Foundation, Inc.
"""
LGPL3 = """                   GNU LESSER GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007
  This version of the GNU Lesser General Public License incorporates
the terms and conditions of version 3 of the GNU General Public License
"""
LGPL21 = """                  GNU LESSER GENERAL PUBLIC LICENSE
                       Version 2.1, February 1999
"""
MPL2 = """Mozilla Public License Version 2.0
==================================
1. Definitions
"""
ISC = """ISC License
Copyright (c) 2004 Someone
Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted, provided that the above
"""
UNLICENSE = """This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or
"""
PSF = """A. HISTORY OF THE SOFTWARE
... releases have also been GPL-compatible; GNU GENERAL PUBLIC LICENSE ...
B. TERMS AND CONDITIONS FOR ACCESSING OR OTHERWISE USING PYTHON
PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2
--------------------------------------------
"""


@pytest.mark.parametrize("text, spdx", [
    (MIT, "MIT"), (APACHE, "Apache-2.0"), (BSD3, "BSD-3-Clause"), (BSD2, "BSD-2-Clause"),
    (GPL3, "GPL-3.0"), (GPL2, "GPL-2.0"), (LGPL3, "LGPL-3.0"), (LGPL21, "LGPL-2.1"),
    (MPL2, "MPL-2.0"), (ISC, "ISC"), (UNLICENSE, "Unlicense"), (PSF, "PSF-2.0"),
    (MIT.replace("\n", "\r\n").upper(), "MIT"),          # CRLF, shouting
    ("  Apache   License\n\n   Version 2.0 ", "Apache-2.0"),  # odd wrapping
    ("All rights reserved. Do not copy.", None),           # proprietary: no guess
    ("", None),
])
def test_license_from_text(text: str, spdx: str | None) -> None:
    assert license_from_text(text) == spdx


def test_the_running_pythons_license_is_psf() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if not (stdlib / "LICENSE.txt").is_file():
        pytest.skip("this Python ships no LICENSE.txt in its stdlib")
    assert LicenseDetector().for_file(str(stdlib), "json/decoder.py") == "PSF-2.0"


@pytest.mark.parametrize("name, content, spdx", [
    ("pyproject.toml", '[project]\nname = "x"\nlicense = "MIT"\n', "MIT"),
    ("pyproject.toml", '[project]\nlicense = {text = "Apache 2.0"}\n', "Apache-2.0"),
    ("pyproject.toml", '[tool.poetry]\nlicense = "BSD-3-Clause"\n', "BSD-3-Clause"),
    ("pyproject.toml", '[project]\nlicense = {file = "LICENSE"}\n', None),
    ("pyproject.toml", "not [valid toml", None),
    ("package.json", json.dumps({"name": "x", "license": "ISC"}), "ISC"),
    ("package.json", json.dumps({"license": {"type": "MIT"}}), "MIT"),
    ("package.json", json.dumps({"license": "UNLICENSED"}), None),
    ("package.json", "{broken", None),
    ("Cargo.toml", '[package]\nname = "x"\nlicense = "MIT OR Apache-2.0"\n',
     "MIT OR Apache-2.0"),
    ("Cargo.toml", '[package]\nlicense = "MIT/Apache-2.0"\n', "MIT OR Apache-2.0"),
])
def test_license_from_metadata(tmp_path: Path, name: str, content: str,
                               spdx: str | None) -> None:
    (tmp_path / name).write_text(content)
    assert license_from_metadata(tmp_path) == spdx


def test_walk_up_nearest_wins_and_caches(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "LICENSE").write_text(MIT)
    (repo / "vendor" / "lib").mkdir(parents=True)
    (repo / "vendor" / "lib" / "COPYING").write_text(GPL3)
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "src" / "pkg" / "licenses.py").write_text(PSF)  # a source file, not a licence
    det = LicenseDetector()
    assert det.for_file(str(repo), "src/pkg/a.py") == "MIT"
    assert det.for_file(str(repo), "vendor/lib/b.c") == "GPL-3.0"
    # A corpus root below the repository's top still finds the repository's licence.
    assert det.for_file(str(repo / "src"), "pkg/a.py") == "MIT"
    (repo / "LICENSE").unlink()
    assert det.for_file(str(repo), "src/pkg/c.py") == "MIT"  # cached per directory
    assert LicenseDetector().for_file(str(repo), "src/pkg/c.py") == UNKNOWN


def test_dual_and_lesser_files(tmp_path: Path) -> None:
    (tmp_path / "LICENSE-MIT").write_text(MIT)
    (tmp_path / "LICENSE-APACHE").write_text(APACHE)
    assert LicenseDetector().for_file(str(tmp_path), "a.rs") == "Apache-2.0 OR MIT"
    lesser = tmp_path / "l"
    lesser.mkdir()
    (lesser / "COPYING").write_text(GPL3)
    (lesser / "COPYING.LESSER").write_text(LGPL3)
    assert LicenseDetector().for_file(str(lesser), "a.c") == "LGPL-3.0"


def test_no_directory_is_unknown() -> None:
    assert LicenseDetector().for_file("bigcode/the-stack", "x.py") == UNKNOWN


def test_parse_allow_and_allowed() -> None:
    perm = parse_allow("permissive")
    assert "MIT" in perm and "PSF-2.0" in perm and "GPL-3.0" not in perm
    assert parse_allow("MIT, apache 2.0,unknown") == ("MIT", "Apache-2.0", "unknown")
    assert parse_allow(None) == ()
    with pytest.raises(ConfigError):
        parse_allow(" , ")
    assert allowed("MIT", ("MIT",)) and not allowed("GPL-3.0", perm)
    assert allowed("GPL-3.0 OR MIT", ("MIT",))
    assert not allowed("MIT AND GPL-3.0", ("MIT",))
    assert not allowed(UNKNOWN, perm) and allowed(UNKNOWN, ())


def test_seeds_carry_license_and_allow_list_drops(tmp_path: Path) -> None:
    from synth.config import SeedsConfig
    from synth.seeds.extract import extract_seeds

    for name, text in (("mit", MIT), ("gpl", GPL3)):
        d = tmp_path / name
        d.mkdir()
        (d / "LICENSE").write_text(text)
        (d / "m.py").write_text(f"def {name}_fn(x):\n    return x * 2  # {name}\n")
    counts: Counter[str] = Counter()
    seeds = list(extract_seeds([tmp_path / "mit", tmp_path / "gpl"], SeedsConfig(), counts))
    assert sorted(s.meta["provenance"]["license"] for s in seeds) == ["GPL-3.0", "MIT"]
    counts = Counter()
    kept = list(extract_seeds([tmp_path / "mit", tmp_path / "gpl"], SeedsConfig(), counts,
                              license_allow=parse_allow("permissive")))
    assert [s.meta["provenance"]["license"] for s in kept] == ["MIT"]
    assert counts["drop_license_not_allowed"] == 1


def test_license_filter_stage_rejects_with_the_licence(tmp_path: Path) -> None:
    from synth.filters.licenses import LicenseFilter
    from synth.pipeline import RunContext, run_stages
    from synth.records import Record
    from synth.store import RunStore

    recs = [Record(id=f"r{i}", meta={"index": i, "provenance": {"license": lic}})
            for i, lic in enumerate(["MIT", "GPL-3.0", None])]
    recs.append(Record(id="r3", meta={"index": 3, "extra": {"license": "ISC"}}))
    with RunStore(tmp_path) as store:
        store.begin("t")
        ctx = RunContext(store)
        run_stages(iter(recs), [LicenseFilter(parse_allow("permissive"))], ctx)
        kept = [r.id for _, _, r in store.iter_results("kept")]
        ctx.close()
    assert kept == ["r0", "r3"]
    assert dict(ctx.stats.stages["license"].rejected) == {"license:GPL-3.0": 1,
                                                          "license:unknown": 1}
