"""Endpoint set-up shared by every job: which URL, which model, a checked client.

:func:`connect` is the one place that turns an :class:`~synth.config.LLMConfig` into a working
:class:`~synth.llm.client.LLMClient`: the endpoint (``base_url``, else ``OPENAI_BASE_URL``,
else the embedded server), the model (``--model``, else the embedded one, else the only one
served), and a request to ``/models`` that fails fast on a wrong URL, key or model.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from synth.config import EMBEDDED_MODEL, LLMConfig
from synth.errors import ConfigError
from synth.llm.client import LLMClient
from synth.llm.server import endpoint
from synth.store import RunStore


def redact(url: str) -> str:
    """``url`` without any user:password part (what may be written to config.json)."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        parts = parts._replace(netloc=host + (f":{parts.port}" if parts.port else ""))
    return urlunsplit(parts)


def resolve_model(requested: str | None, served: list[str], embedded: bool, base_url: str) -> str:
    """The model to ask for: ``--model``, else the embedded one, else the only one served."""
    if requested:
        return requested
    if embedded:
        return EMBEDDED_MODEL
    if len(served) == 1:
        return served[0]
    raise ConfigError(
        f"{base_url} serves {len(served)} models; choose one with --model "
        f"({', '.join(served[:10]) or 'none listed'})")


@dataclasses.dataclass
class Connection:
    """A checked client and what was resolved: ``config`` is safe to write (no credentials)."""

    client: LLMClient
    embedded: bool
    config: LLMConfig


def connect(stack: contextlib.ExitStack, llm: LLMConfig, run_dir: Path, store: RunStore,
            stats: Counter[str], loop: asyncio.Runner, offline: bool = False,
            assume_embedded: bool = False) -> Connection:
    """Open the endpoint inside ``stack`` and return a checked client on it.

    The embedded server (when used) and the client are closed when ``stack`` closes.
    ``run_dir`` holds ``server.log``; ``store`` the request cache; ``stats`` the counters the
    client bumps; ``loop`` the job's :class:`asyncio.Runner`. ``offline``: no endpoint is opened
    or checked (dry runs, ``--batch`` without one); ``assume_embedded`` then says which prompt
    dialect to render.
    """
    if offline:  # an estimate or a queue-only --batch: nothing is contacted, nothing started
        base_url, embedded = llm.base_url or "", assume_embedded
        client = LLMClient(base_url, llm.model or EMBEDDED_MODEL, store, llm, stats=stats)
        stack.callback(lambda: loop.run(client.aclose()))
        return Connection(client, embedded,
                          dataclasses.replace(llm, base_url=redact(base_url), model=client.model))
    base_url, embedded = stack.enter_context(endpoint(llm.base_url, run_dir))
    client = LLMClient(base_url, llm.model or "", store, llm, stats=stats)
    stack.callback(lambda: loop.run(client.aclose()))
    served = loop.run(client.list_models())
    client.model = resolve_model(llm.model, served, embedded, base_url)
    loop.run(client.check(served))
    return Connection(client, embedded,
                      dataclasses.replace(llm, base_url=redact(base_url), model=client.model))
