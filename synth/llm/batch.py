"""The OpenAI Batch API: requests out as JSONL files, answers back into the request cache.

The flow, each step safe to repeat after a crash::

    synth generate --batch ...   run the pipeline in "collect" mode: every request that is not
                                 cached is queued in the run store (not sent), then submitted
    synth batch status           per-batch counts (the batch ids live in the run store)
    synth batch collect          download output and error files into the SAME request cache
    synth generate --batch ...   the next round (discriminator, retries) goes out as one batch;
                                 when nothing is left to send it writes the dataset, from cache
    synth batch submit --retry-failed   resubmit only the requests that failed or expired

``custom_id`` is the request cache key (:func:`synth.llm.client.cache_key`), so an answer lands
exactly where a live call would have put it, and a request whose answer is cached is never
queued again. Files are split at the API's limits (:data:`MAX_REQUESTS` requests,
:data:`MAX_BYTES` bytes). Uploaded files are kept under ``RUN/batch/``; vLLM's
``python -m vllm.entrypoints.openai.run_batch -i FILE -o OUT --model M`` takes them as they are,
and ``synth batch collect --output OUT`` reads its output back (see the README).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.errors import LLMError
from synth.llm.client import LLMRequestFailed, MalformedResponse, completion_from_data
from synth.llm.cost import CostMeter, attribution
from synth.store import RunStore, write_json

log = logging.getLogger("synth.llm")

MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
ENDPOINT = "/v1/chat/completions"
FINAL = ("completed", "failed", "expired", "cancelled")
# Request states in the store: pending (queued, not in a batch), submitted, succeeded, failed,
# expired, cancelled. Only the last three go back to pending, and only with --retry-failed.
RETRYABLE = ("failed", "expired", "cancelled")
# The secrets policy of the run that queued the requests (RUN/batch/secrets.json): collect
# redacts the answers with it before they are cached, as a live call would.
SECRETS_FILE = "secrets.json"


@dataclass
class Collector:
    """The client's ``defer`` hook: remembers every request that is not cached.

    Each request is kept with the record and stage it was for (for cost attribution) and its
    task (for estimates), in the order they were asked.
    """

    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    scope: dict[str, tuple[str, str]] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)

    def __call__(self, key: str, body: dict[str, Any]) -> None:
        from synth.llm.cost import current_task

        self.requests.setdefault(key, body)
        self.scope.setdefault(key, attribution())
        self.tasks.setdefault(key, current_task())

    def queue(self, store: RunStore) -> int:
        """Queue the collected requests in the store; returns how many were new."""
        rows = [(key, *self.scope[key], json.dumps(body, ensure_ascii=False))
                for key, body in self.requests.items()]
        return store.batch_add_requests(rows)


def save_secrets(store: RunStore, mode: str, allow: tuple[str, ...]) -> None:
    """Record the queuing run's secrets policy for ``collect`` (which runs without it)."""
    out_dir = store.run_dir / "batch"
    out_dir.mkdir(exist_ok=True)
    write_json(out_dir / SECRETS_FILE, {"mode": mode, "allow": list(allow)})


def saved_secrets(store: RunStore) -> tuple[str | None, tuple[str, ...]]:
    """The policy :func:`save_secrets` recorded (``None``: none recorded; redact then)."""
    path = store.run_dir / "batch" / SECRETS_FILE
    if not path.exists():
        return None, ()
    data = json.loads(path.read_text(encoding="utf-8"))
    return data.get("mode"), tuple(data.get("allow") or ())


def batch_line(key: str, body: dict[str, Any] | str) -> str:
    """One line of a Batch API input file."""
    if isinstance(body, str):
        body = json.loads(body)
    return json.dumps({"custom_id": key, "method": "POST", "url": ENDPOINT, "body": body},
                      ensure_ascii=False)


def split(lines: list[tuple[str, str]], max_requests: int = MAX_REQUESTS,
          max_bytes: int = MAX_BYTES) -> Iterator[list[tuple[str, str]]]:
    """Chunks of ``(key, line)`` within both limits (a line larger than max_bytes goes alone)."""
    chunk: list[tuple[str, str]] = []
    size = 0
    for key, line in lines:
        n = len(line.encode("utf-8")) + 1
        if chunk and (len(chunk) >= max_requests or size + n > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append((key, line))
        size += n
    if chunk:
        yield chunk


def _client(base_url: str | None) -> Any:
    import openai

    from synth.config import api_key

    if not base_url:
        raise LLMError("the Batch API needs an endpoint: pass --base-url or set OPENAI_BASE_URL")
    return openai.OpenAI(base_url=base_url, api_key=api_key(), max_retries=3)


def _counts(batch: Any) -> dict[str, int]:
    rc = getattr(batch, "request_counts", None)
    if rc is None:
        return {}
    return {"total": rc.total, "completed": rc.completed, "failed": rc.failed}


def _adopt_orphans(store: RunStore, client: Any) -> None:
    """Finish a submission a crash cut between upload and recording the batch id."""
    orphans = [b for b in store.batch_list() if b["id"].startswith("file:")]
    if not orphans:
        return
    known = {b.input_file_id: b for b in client.batches.list(limit=100)}
    for row in orphans:
        batch = known.get(row["input_file_id"])
        if batch is None:
            batch = client.batches.create(input_file_id=row["input_file_id"], endpoint=ENDPOINT,
                                          completion_window="24h")
        _rename(store, row["id"], batch.id, batch.status, _counts(batch))


def _rename(store: RunStore, old: str, new: str, status: str, counts: dict[str, int]) -> None:
    with store._writing(), store.db:  # a full disk: StoreWriteFailed (exit 3), not a traceback
        store.db.execute("BEGIN")
        store.db.execute("UPDATE batches SET id = ?, status = ?, counts = ? WHERE id = ?",
                         (new, status, json.dumps(counts), old))
        store.db.execute("UPDATE batch_requests SET batch_id = ? WHERE batch_id = ?", (new, old))


def submit(store: RunStore, base_url: str | None, retry_failed: bool = False,
           max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES) -> list[str]:
    """Upload every pending request as Batch API jobs; returns the new batch ids.

    With ``retry_failed``, requests that failed, expired or were cancelled are pending again
    first. Requests already submitted or answered are never submitted again.
    """
    client = _client(base_url)
    _adopt_orphans(store, client)
    if retry_failed:
        for state in RETRYABLE:
            keys = [k for k, _ in store.batch_requests(state)]
            store.batch_set_state(keys, "pending")
    pending = store.batch_requests("pending")
    if not pending:
        return []
    out_dir = store.run_dir / "batch"
    out_dir.mkdir(exist_ok=True)
    lines = [(key, batch_line(key, body)) for key, body in pending]
    ids: list[str] = []
    n_files = len(list(out_dir.glob("input-*.jsonl")))
    for chunk in split(lines, max_requests, max_bytes):
        path = out_dir / f"input-{n_files:04d}.jsonl"
        n_files += 1
        data = "".join(line + "\n" for _, line in chunk).encode("utf-8")
        path.write_bytes(data)
        uploaded = client.files.create(file=(path.name, data), purpose="batch")
        placeholder = f"file:{uploaded.id}"
        keys = [k for k, _ in chunk]
        # Recorded before the batch exists: a crash from here on is finished by _adopt_orphans.
        store.batch_put(placeholder, uploaded.id, "uploaded", len(chunk), {})
        store.batch_set_state(keys, "submitted", placeholder)
        batch = client.batches.create(input_file_id=uploaded.id, endpoint=ENDPOINT,
                                      completion_window="24h",
                                      metadata={"synth_run": store.run_dir.name[:64]})
        _rename(store, placeholder, batch.id, batch.status, _counts(batch))
        ids.append(batch.id)
        log.info("batch %s: %d requests (%s, %d bytes)", batch.id, len(chunk), path.name,
                 len(data))
    return ids


def status(store: RunStore, base_url: str | None) -> list[dict[str, Any]]:
    """Refresh every batch that is not final and return all of them with per-batch counts."""
    client = _client(base_url)
    _adopt_orphans(store, client)
    for row in store.batch_list():
        if row["status"] in FINAL:
            continue
        batch = client.batches.retrieve(row["id"])
        store.batch_put(row["id"], row["input_file_id"], batch.status, row["requests"],
                        _counts(batch), batch.output_file_id, batch.error_file_id,
                        row["collected"])
    return store.batch_list()


@dataclass
class Collected:
    succeeded: int = 0
    failed: int = 0
    expired: int = 0
    batches: int = 0


Scrub = Callable[[str], str]


def read_results(store: RunStore, text: str, meter: CostMeter | None, result: Collected,
                 submitted: dict[str, str], scrub: Scrub | None = None) -> None:
    """Apply one output or error file: answers into the cache, failures marked.

    ``submitted`` maps the keys still waiting to their request body; handled keys are removed
    (a line for a key already answered is ignored, so nothing is booked twice). ``scrub``
    redacts each answer's text before it is cached (the secrets policy's ``reply``), as the
    live client does: the cache never holds a finding.
    """
    done: list[str] = []
    failed: list[tuple[str, str]] = []
    scopes = store.batch_scopes()
    # One transaction per file: answers, their spend rows and their new state commit together,
    # so a crash mid-collect neither loses an answer nor books it twice on the next collect.
    with store._writing(), store.db:
        store.db.execute("BEGIN")
        _read_lines(store, text, meter, submitted, scopes, done, failed, scrub)
        store.db.executemany("UPDATE batch_requests SET state = 'succeeded', error = NULL "
                             "WHERE key = ?", [(k,) for k in done])
        store.db.executemany("UPDATE batch_requests SET state = ?, error = ? WHERE key = ?",
                             [("expired" if "expired" in why else "failed", why, k)
                              for k, why in failed])
    result.succeeded += len(done)
    result.failed += sum(1 for _, why in failed if "expired" not in why)
    result.expired += sum(1 for _, why in failed if "expired" in why)


def _read_lines(store: RunStore, text: str, meter: CostMeter | None, submitted: dict[str, str],
                scopes: dict[str, tuple[str, str]], done: list[str],
                failed: list[tuple[str, str]], scrub: Scrub | None) -> None:
    for line in text.splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        key = item.get("custom_id", "")
        body = submitted.pop(key, None)
        if body is None:
            continue
        response = item.get("response") or {}
        error = item.get("error")
        code = response.get("status_code")
        payload = response.get("body") or {}
        if error is None and code == 200:
            try:
                completion = completion_from_data(payload)
            except (MalformedResponse, LLMRequestFailed) as exc:
                failed.append((key, f"unusable answer: {exc}"))
                continue
            if scrub is not None:
                completion.text = scrub(completion.text)
            model = json.loads(body).get("model", "")
            store.put_response(key, model, completion.to_cache())
            if meter is not None:
                meter.add(model, key, scopes.get(key, ("", "")), 200, completion.tokens_in,
                          completion.tokens_out, ok=True, batch=True)
            done.append(key)
        else:
            err = error or (payload.get("error") if isinstance(payload, dict) else None) or {}
            failed.append((key, f"{code}: {err.get('code', '')} {err.get('message', '')}"
                           .strip()[:300]))


def collect(store: RunStore, base_url: str | None, meter: CostMeter | None,
            scrub: Scrub | None = None) -> Collected:
    """Download the files of every finished batch into the request cache (once per batch).

    Requests of a finished batch with no line in either file are marked expired (a batch that
    expired or was cancelled answers only part of its requests).
    """
    client = _client(base_url)
    result = Collected()
    for row in status(store, base_url):
        if row["status"] not in FINAL or row["collected"]:
            continue
        submitted = dict(store.batch_requests("submitted", row["id"]))
        for file_id in (row["output_file_id"], row["error_file_id"]):
            if file_id:
                read_results(store, client.files.content(file_id).text, meter, result,
                             submitted, scrub)
        left = list(submitted)
        state = "failed" if row["status"] == "failed" else "expired"
        store.batch_set_state(left, state, error=f"batch {row['status']}")
        if state == "failed":
            result.failed += len(left)
        else:
            result.expired += len(left)
        store.batch_put(row["id"], row["input_file_id"], row["status"], row["requests"],
                        row["counts"], row["output_file_id"], row["error_file_id"], True)
        result.batches += 1
    return result


def collect_file(store: RunStore, path: Path, meter: CostMeter | None,
                 scrub: Scrub | None = None) -> Collected:
    """Read a local output file (vLLM ``run_batch``) into the request cache."""
    result = Collected()
    submitted = dict(store.batch_requests("submitted")) | dict(store.batch_requests("pending"))
    read_results(store, path.read_text(encoding="utf-8"), meter, result, submitted, scrub)
    return result


def cancel(store: RunStore, base_url: str | None) -> list[str]:
    """Cancel every batch of the run that is not final; returns their ids."""
    client = _client(base_url)
    ids = []
    for row in status(store, base_url):
        if row["status"] not in FINAL and not row["id"].startswith("file:"):
            client.batches.cancel(row["id"])
            ids.append(row["id"])
    return ids


def export(store: RunStore, path: Path) -> int:
    """Write the pending requests as one Batch JSONL file (for vLLM ``run_batch``)."""
    pending = store.batch_requests("pending")
    with open(path, "w", encoding="utf-8") as fh:
        for key, body in pending:
            fh.write(batch_line(key, body) + "\n")
    store.batch_set_state([k for k, _ in pending], "submitted", f"local:{path.name}")
    return len(pending)
