"""Inputs and outputs on any filesystem fsspec knows: local paths, ``file://``, ``s3://``,
``gs://``, ``hf://``, ``memory://`` ...

The run directory itself stays on a local disk (its SQLite store needs real file locks and
atomic renames). What may live elsewhere:

- **inputs** (``--seeds``, ``--input``, corpus roots of ``seeds extract``): a URI is copied once
  per invocation into ``RUN/inputs/<hash>-<name>`` (a file, or a directory tree) and read from
  there, so readers, resuming and provenance work as for local files; the URI is what
  ``config.json`` records.
- **outputs** (``--output URI``): after the run, ``RUN/dataset/`` (parquet, jsonl, card) is
  uploaded to the URI; the run directory keeps its own copy.

Remote filesystems need their fsspec driver (``s3fs``, ``gcsfs``, ``huggingface_hub``) and the
credentials those read from the environment; synth never writes them anywhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from synth.errors import ConfigError, InputError

log = logging.getLogger("synth")

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
INPUTS_DIR = "inputs"


def is_uri(value: str | os.PathLike[str]) -> bool:
    """Whether ``value`` names a filesystem by scheme (``s3://...``) rather than a local path."""
    return bool(_URI.match(str(value)))


def _fs(uri: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError as exc:
        raise ConfigError(f"{uri}: URIs need fsspec: pip install fsspec") from exc
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"cannot open {uri}: {exc} (install the filesystem's fsspec "
                          "driver, e.g. s3fs or gcsfs)") from exc
    return fs, path


def localize(value: str | os.PathLike[str], run_dir: Path) -> Path:
    """A local path holding ``value``: the path itself, or a fresh copy of a URI's file/tree.

    Raises:
        InputError: the URI names nothing.
    """
    if not is_uri(value):
        return Path(value)
    uri = str(value)
    fs, path = _fs(uri)
    if not fs.exists(path):
        raise InputError(f"{uri} does not exist")
    name = path.rstrip("/").rsplit("/", 1)[-1] or "input"
    target = Path(run_dir) / INPUTS_DIR / f"{hashlib.sha256(uri.encode()).hexdigest()[:12]}-{name}"
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    if fs.isdir(path):
        tmp.mkdir()
        prefix = path.rstrip("/") + "/"
        for remote in sorted(fs.find(path)):
            rel = remote[len(prefix):] if remote.startswith(prefix) else remote.rsplit("/", 1)[-1]
            local = tmp / rel
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(local))
    else:
        fs.get_file(path, str(tmp))
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    os.replace(tmp, target)
    log.info("copied %s to %s", uri, target)
    return target


def publish(local_dir: Path, uri: str) -> None:
    """Upload the files under ``local_dir`` to ``uri`` (a directory there), same layout."""
    if not is_uri(uri):
        dest = Path(uri)
        if dest.resolve() != Path(local_dir).resolve():
            shutil.copytree(local_dir, dest, dirs_exist_ok=True)
        return
    fs, path = _fs(uri)
    root = path.rstrip("/")
    for local in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
        remote = f"{root}/{local.relative_to(local_dir).as_posix()}"
        fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(local), remote)
    log.info("uploaded %s to %s", local_dir, uri)
