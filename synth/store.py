"""The run directory: a SQLite store for the request cache and record results, plus outputs.

Layout of a run directory::

    RUN/
      store.sqlite     request cache (every LLM response, written before it is used) and the
                       state of every record (kept / rejected), so a rerun resumes
      seeds.jsonl      seeds with provenance (written by ``synth seeds extract``)
      dataset/         the dataset (parquet + jsonl + README card), written by synth.io.dataset
      rejects.jsonl    dropped records with stage, reason and raw LLM text
      stats.json       counts per stage and reason, tokens, requests, cache hits, wall time
      config.json      the resolved config, without secrets
      batch/           Batch API input files as uploaded (``synth batch``), and secrets.json:
                       the secrets policy ``synth batch collect`` redacts the answers with

The store books every LLM attempt (``spend``: tokens and USD, failed ones too) and the
Batch API jobs of the run (``batches``, ``batch_requests``), so cost, budgets and batch status
survive crashes and resumes.

The store also caches every sandbox execution of generated code by content hash (sha256 of
language, program, tests and limits; ``executions``), so a rerun never runs the same code twice.
It also keeps the generator–discriminator loop's example memory (good and bad cases per
task, bounded) and which cases each record was shown, so a rerun renders the same prompts and
is served from the request cache.

Writes go to a WAL with synchronous=NORMAL (no fsync per commit). LLM responses that arrive in
the same event-loop tick are committed together in one transaction at the end of that tick (a
burst at concurrency 64 is one commit, not 64), and any response still pending is committed in
the same transaction as, or before, the next record result, read or close: a response is always
durable before the record that used it is reported done, so a ``kill -9`` loses at most the
responses of the current tick. A second synth process on the same directory is refused by a
file lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from synth.errors import StoreError, StoreWriteFailed
from synth.records import Record

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key        TEXT PRIMARY KEY,
    model      TEXT NOT NULL,
    response   TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    id      TEXT PRIMARY KEY,
    ord     INTEGER NOT NULL,
    status  TEXT NOT NULL,
    stage   TEXT,
    reason  TEXT,
    gen     INTEGER NOT NULL,
    record  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_gen ON results (gen, status, ord);
CREATE TABLE IF NOT EXISTS runs (
    gen        INTEGER PRIMARY KEY AUTOINCREMENT,
    command    TEXT NOT NULL,
    started_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS memory (
    gen     INTEGER NOT NULL,
    task    TEXT NOT NULL,
    kind    TEXT NOT NULL,
    id      TEXT NOT NULL,
    ord     INTEGER NOT NULL,
    score   REAL NOT NULL,
    body    TEXT NOT NULL,
    PRIMARY KEY (gen, task, kind, id)
);
CREATE TABLE IF NOT EXISTS memory_runs (
    gen      INTEGER PRIMARY KEY,
    complete INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    key        TEXT PRIMARY KEY,
    result     TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS spend (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    gen        INTEGER NOT NULL,
    key        TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    stage      TEXT NOT NULL,
    status     INTEGER,
    tokens_in  INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    usd        REAL,
    ok         INTEGER NOT NULL,
    batch      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS spend_record ON spend (record_id);
CREATE TABLE IF NOT EXISTS batches (
    id             TEXT PRIMARY KEY,
    input_file_id  TEXT NOT NULL,
    status         TEXT NOT NULL,
    requests       INTEGER NOT NULL,
    counts         TEXT NOT NULL,
    output_file_id TEXT,
    error_file_id  TEXT,
    collected      INTEGER NOT NULL DEFAULT 0,
    created_at     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_requests (
    key       TEXT PRIMARY KEY,
    record_id TEXT NOT NULL,
    stage     TEXT NOT NULL,
    body      TEXT NOT NULL,
    batch_id  TEXT,
    state     TEXT NOT NULL,
    error     TEXT
);
CREATE INDEX IF NOT EXISTS batch_requests_state ON batch_requests (state, batch_id);
CREATE TABLE IF NOT EXISTS fewshot (
    record_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    cases     TEXT NOT NULL,
    PRIMARY KEY (record_id, key)
);
"""


class _KeyFilter:
    """A Bloom filter of strings: 2 MiB, two probes from the string's hash. ``key in f`` is
    False only for a key never added; it may be True for one that was not (under 5% of
    the time after two million keys)."""

    BITS = 1 << 24

    def __init__(self) -> None:
        self.bits = bytearray(self.BITS >> 3)

    def _probes(self, key: str) -> tuple[int, int]:
        h, mask = hash(key), self.BITS - 1
        return h & mask, (h >> 24) & mask

    def add(self, key: str) -> None:
        a, b = self._probes(key)
        self.bits[a >> 3] |= 1 << (a & 7)
        self.bits[b >> 3] |= 1 << (b & 7)

    def __contains__(self, key: str) -> bool:
        a, b = self._probes(key)
        return bool(self.bits[a >> 3] >> (a & 7) & 1 and self.bits[b >> 3] >> (b & 7) & 1)


class RunStore:
    """One run directory, opened by exactly one synth process at a time.

    Args:
        run_dir: the directory; created if missing.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        # Called on every record before it is stored (kept or rejected), with its JSON; returns
        # the JSON to store: the secrets check (synth.filters.secrets) redacts the record in
        # place and writes it again when it held a finding, so no table holds one.
        self.scrub: Callable[[Record, str], str] | None = None
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create run directory {self.run_dir}: {exc.strerror}") from exc
        try:
            self._lock_fd = os.open(self.run_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot use run directory {self.run_dir}: {exc.strerror}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise StoreError(
                f"run directory {self.run_dir} is in use by another synth process; "
                "wait for it or use another --run-dir"
            ) from exc
        try:
            self.db = sqlite3.connect(self.run_dir / "store.sqlite", isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            # A checkpoint (WAL pages copied into the database, with fsyncs) every ~40 MB of
            # WAL instead of every 4 MB: each one blocks the commit that triggers it, and so
            # the event loop; a tenth as many halve the wall time of the writes. (A kill -9
            # loses nothing more: committed frames in the WAL are the database.)
            self.db.execute("PRAGMA wal_autocheckpoint=10000")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(
                f"{self.run_dir / 'store.sqlite'} is not a usable store: {exc}") from exc
        self.gen = 0
        # responses not yet committed, by key (served from here until the burst's commit)
        self._pending: dict[str, tuple[str, str, str, float]] = {}
        # other bookkeeping rows (spend, few-shot draws) committed with the same burst
        self._journal: list[tuple[str, tuple[Any, ...]]] = []
        self._fewshot_pending: dict[tuple[str, str], Any] = {}
        # Tables that held no row when first asked about (see _held_none), and the response
        # keys this process stored since it opened.
        self._held_none_at: dict[str, bool] = {}
        self._stored = _KeyFilter()
        self._flush_scheduled = False
        #: Set by the first failed write; the LLM client sends nothing more once it is set.
        self.write_failed: StoreWriteFailed | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def begin(self, command: str) -> int:
        """Start a new invocation; results it writes are tagged with its generation number."""
        cur = self.db.execute("INSERT INTO runs (command, started_at) VALUES (?, ?)",
                              (command, time.time()))
        self.gen = int(cur.lastrowid or 0)
        return self.gen

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            self.flush()
            db.close()
            self.db = None  # type: ignore[assignment]
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- request cache ---------------------------------------------------------------------

    PENDING_MAX = 512  # a burst larger than this is committed in pieces
    #: How long a burst collects rows before its commit: one transaction for every response
    #: and result of those 50 ms, not one per row (at hundreds of responses a second the
    #: commits were the generate path's largest single cost). A kill -9 loses at most that
    #: window, responses and the records that used them together.
    FLUSH_S = 0.05

    def _held_none(self, table: str) -> bool:
        """Whether ``table`` held no row when first asked about in this process (remembered:
        later rows are this process's own, which it keeps track of itself)."""
        empty = self._held_none_at.get(table)
        if empty is None:
            empty = self._held_none_at[table] = self.db.execute(
                f"SELECT 1 FROM {table} LIMIT 1").fetchone() is None
        return empty

    def get_response(self, key: str) -> dict[str, Any] | None:
        """The response stored under ``key``, None if there is none.

        A store that held no response when first asked (a new run directory) has none but
        those this process stored: a key the filter of those says no to is not looked up
        (a lookup per request, 3-4% of the generate loop; no other process writes here).
        """
        pending = self._pending.get(key)
        if pending is not None:
            return orjson.loads(pending[2])
        if self._held_none("responses") and key not in self._stored:
            return None
        row = self.db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def put_response(self, key: str, model: str, response: dict[str, Any]) -> None:
        """Journal one response; committed with the rest of its burst (:attr:`FLUSH_S`).

        Outside a running event loop it is committed at once; inside a transaction the caller
        opened (a Batch API file collected in one transaction) it commits with that transaction.
        """
        row = (key, model, _dumps(response), time.time())
        self._stored.add(key)
        if self.db.in_transaction:
            with self._writing():
                self._insert_responses([row])
            return
        self._pending[key] = row
        self._schedule()

    def _later(self, sql: str, params: tuple[Any, ...]) -> None:
        """A bookkeeping row committed with the burst of responses it belongs to (one
        transaction per burst, not one per row); at once outside an event loop or inside a
        transaction."""
        if self.db.in_transaction:
            with self._writing():
                self.db.execute(sql, params)
            return
        self._journal.append((sql, params))
        self._schedule()

    def _schedule(self, defer: bool = False) -> None:
        if len(self._pending) + len(self._journal) >= self.PENDING_MAX:
            self.flush()
            return
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if not defer:
                self.flush()
            return
        self.flush_soon(loop)

    def flush_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit what is pending within :attr:`FLUSH_S` once ``loop`` runs (a pipeline
        about to wait for more work: what finished before the wait is not held across it)."""
        if (self._pending or self._journal) and not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_later(self.FLUSH_S, self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        # Run by the event loop, where a raise would only be logged as a traceback: a failed
        # write sets write_failed instead (the client then sends nothing more), and the
        # pending responses stay for the next result's transaction, which raises it in a
        # request and stops the run with one line.
        with contextlib.suppress(StoreWriteFailed):
            self.flush()

    def flush(self) -> None:
        """Commit every pending response and bookkeeping row in one transaction."""
        self._flush_scheduled = False
        if not (self._pending or self._journal) or self.db is None:
            return
        with self._writing(), self.db:
            self.db.execute("BEGIN")
            self._write_pending()
        self._clear_pending()

    def _write_pending(self) -> None:
        if self._pending:
            self._insert_responses(list(self._pending.values()))
        # One executemany per statement (results, spend, few-shot draws), each table's rows in
        # the order they came: the same transaction, a fifth of the calls into sqlite3.
        by_sql: dict[str, list[tuple[Any, ...]]] = {}
        for sql, params in self._journal:
            by_sql.setdefault(sql, []).append(params)
        for sql, rows in by_sql.items():
            self.db.executemany(sql, rows)

    def _clear_pending(self) -> None:
        self._pending.clear()
        self._journal.clear()
        self._fewshot_pending.clear()

    def _insert_responses(self, rows: list[tuple[str, str, str, float]]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO responses (key, model, response, created_at) VALUES (?,?,?,?)",
            rows)

    def iter_responses(self, batch: int = 2000) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every cached response as ``(key, response)``, read in batches (flat memory)."""
        self.flush()
        last = ""
        while True:
            rows = self.db.execute(
                "SELECT key, response FROM responses WHERE key > ? ORDER BY key LIMIT ?",
                (last, batch)).fetchall()
            if not rows:
                return
            for key, body in rows:
                yield key, orjson.loads(body)
            last = rows[-1][0]

    def count_responses(self) -> int:
        self.flush()
        return int(self.db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    # -- execution cache (synth.generators.verify) ------------------------------------------

    def get_execution(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT result FROM executions WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_execution(self, key: str, result: dict[str, Any]) -> None:
        with self._writing():
            self.db.execute(
                "INSERT OR REPLACE INTO executions (key, result, created_at) VALUES (?,?,?)",
                (key, json.dumps(result, ensure_ascii=False), time.time()))

    def count_executions(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM executions").fetchone()[0])

    # -- record results --------------------------------------------------------------------

    def put_result(self, record: Record, status: str, stage: str | None = None,
                   reason: str | None = None) -> None:
        """Record the fate of one record in the current invocation (kept or rejected).

        Committed with the burst it finished in, in one transaction with the responses still
        pending: the responses a record used are durable before (never after) the record is
        reported done. Inside the event loop the burst commits within :attr:`FLUSH_S`;
        outside it (a pipeline between two waits) the result joins the open burst, or waits
        for :meth:`flush_soon`, which the pipeline calls before it waits for more work, or for
        the :meth:`flush` when it stops.
        """
        text = record.to_json()
        if self.scrub is not None:
            text = self.scrub(record, text)
        self._journal.append((
            "INSERT OR REPLACE INTO results (id, ord, status, stage, reason, gen, record) "
            "VALUES (?,?,?,?,?,?,?)",
            (record.id, int(record.meta.get("index", 0)), status, stage, reason, self.gen,
             text)))
        self._schedule(defer=True)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a failed write (disk full, read-only, I/O error) into StoreWriteFailed.

        The error propagates out of the request that hit it, which stops the run at once: no
        further request is sent, so at most the requests already in flight are paid again by
        the rerun that resumes it.
        """
        try:
            yield
        except sqlite3.OperationalError as exc:
            self.write_failed = StoreWriteFailed(
                f"cannot write to {self.run_dir / 'store.sqlite'} ({exc}); free space or fix "
                "permissions, then rerun the same command to resume")
            raise self.write_failed from exc

    def iter_results(self, status: str, batch: int = 1000) -> Iterator[tuple[str | None,
                                                                          str | None, Record]]:
        """Results of the current invocation with ``status``, in input order.

        Yields ``(stage, reason, record)``; reads in batches so memory stays flat.
        """
        self.flush()
        last = (-1, "")
        while True:
            rows = self.db.execute(
                "SELECT ord, id, stage, reason, record FROM results "
                "WHERE gen = ? AND status = ? AND (ord > ? OR (ord = ? AND id > ?)) "
                "ORDER BY ord, id LIMIT ?",
                (self.gen, status, last[0], last[0], last[1], batch),
            ).fetchall()
            if not rows:
                return
            for _, _, stage, reason, rec in rows:
                yield stage, reason, Record.from_json(rec)
            last = (rows[-1][0], rows[-1][1])

    def score_names(self) -> list[str]:
        """Names of every score on a kept record of the current invocation."""
        self.flush()
        rows = self.db.execute(
            "SELECT DISTINCT j.key FROM results, json_each(json_extract(record, '$.scores')) AS j "
            "WHERE gen = ? AND status = 'kept' ORDER BY j.key", (self.gen,)).fetchall()
        return [r[0] for r in rows]

    def count_results(self, status: str, reasons: Iterable[str] | None = None) -> int:
        """Results of the current invocation with ``status`` (and one of ``reasons``)."""
        self.flush()
        sql = "SELECT COUNT(*) FROM results WHERE gen = ? AND status = ?"
        args: list[Any] = [self.gen, status]
        if reasons is not None:
            wanted = sorted(reasons)
            sql += f" AND reason IN ({','.join('?' * len(wanted))})"
            args += wanted
        return int(self.db.execute(sql, args).fetchone()[0])

    # -- example memory (synth.generators.memory) -------------------------------------------
    # Rows of gen 0 are cases a user pinned; rows of gen N are invocation N's latest memory.

    def memory_pin(self, task: str, kind: str, case_id: str, body: dict[str, Any]) -> bool:
        """Pin one user case unless it is already there; True when added."""
        self.flush()
        ord_ = int(self.db.execute("SELECT COUNT(*) FROM memory WHERE gen = 0").fetchone()[0])
        cur = self.db.execute(
            "INSERT OR IGNORE INTO memory (gen, task, kind, id, ord, score, body) "
            "VALUES (0,?,?,?,?,1.0,?)",
            (task, kind, case_id, ord_, json.dumps(body, ensure_ascii=False)))
        return cur.rowcount > 0

    def memory_save(self, cases: list[tuple[str, str, str, float, dict[str, Any]]],
                    complete: bool = False) -> None:
        """Replace this invocation's memory by ``cases`` ``(task, kind, id, score, body)``.

        ``complete`` marks the invocation's memory final: later invocations start from it, and
        older invocations' rows are dropped.
        """
        self.flush()
        # Saved at the end of a run, also one stopped by a full disk: fail as StoreWriteFailed.
        with self._writing(), self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM memory WHERE gen = ?", (self.gen,))
            self.db.executemany(
                "INSERT INTO memory (gen, task, kind, id, ord, score, body) VALUES (?,?,?,?,?,?,?)",
                [(self.gen, task, kind, cid, i, score, json.dumps(body, ensure_ascii=False))
                 for i, (task, kind, cid, score, body) in enumerate(cases)])
            self.db.execute("INSERT OR REPLACE INTO memory_runs (gen, complete) VALUES (?, ?)",
                            (self.gen, int(complete)))
            if complete:
                self.db.execute("DELETE FROM memory WHERE gen NOT IN (0, ?)", (self.gen,))

    def memory_load(self, gen: int) -> list[tuple[str, str, str, float, dict[str, Any]]]:
        """The cases of invocation ``gen`` (0: the pinned ones), in their order."""
        rows = self.db.execute(
            "SELECT task, kind, id, score, body FROM memory WHERE gen = ? ORDER BY ord",
            (gen,)).fetchall()
        return [(task, kind, cid, score, json.loads(body)) for task, kind, cid, score, body in rows]

    def memory_base_gen(self) -> int | None:
        """The latest earlier invocation whose memory is complete (None: there is none).

        A killed invocation's memory is not complete: the run that resumes it starts from the
        same memory the killed one started from, and replays the same outcomes from the cache.
        """
        row = self.db.execute("SELECT MAX(gen) FROM memory_runs WHERE complete = 1 AND gen < ?",
                              (self.gen,)).fetchone()
        return None if row[0] is None else int(row[0])

    def fewshot_get(self, record_id: str, key: str) -> Any:
        """The draw stored for ``record_id`` under ``key``, None if there is none.

        In a store that held no draw when this process first asked (a new run directory)
        there is none to find: a process draws once per record, so the lookup per record, a
        few percent of the generate loop, is skipped. A rerun finds the draws committed.
        """
        pending = self._fewshot_pending.get((record_id, key))
        if pending is not None:
            return pending
        if self._held_none("fewshot"):
            return None
        row = self.db.execute("SELECT cases FROM fewshot WHERE record_id = ? AND key = ?",
                              (record_id, key)).fetchone()
        return json.loads(row[0]) if row else None

    def fewshot_put(self, record_id: str, key: str, cases: Any) -> None:
        """The draw is committed with the burst of the request it shapes (or an earlier one),
        so a response in the cache never outlives the examples its prompt showed."""
        self._fewshot_pending[(record_id, key)] = cases
        self._later("INSERT OR REPLACE INTO fewshot (record_id, key, cases) VALUES (?,?,?)",
                    (record_id, key, _dumps(cases)))

    # -- spend (synth.llm.cost) ---------------------------------------------------------------

    def add_spend(self, key: str, record_id: str, stage: str, status: int | None,
                  tokens_in: int, tokens_out: int, usd: float | None, ok: bool,
                  batch: bool) -> None:
        """Book one attempt (``usd`` None: the model has no price)."""
        # Booked after every attempt, committed with the burst's responses (a full disk
        # stops the run at that commit).
        self._later(
            "INSERT INTO spend (gen, key, record_id, stage, status, tokens_in, tokens_out, "
            "usd, ok, batch) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (self.gen, key, record_id, stage, status, tokens_in, tokens_out, usd, int(ok),
             int(batch)))

    def spent(self) -> tuple[float, int]:
        """USD and tokens booked over every invocation of this run directory."""
        self.flush()
        usd, tokens = self.db.execute(
            "SELECT COALESCE(SUM(usd), 0), COALESCE(SUM(tokens_in + tokens_out), 0) FROM spend"
        ).fetchone()
        return float(usd), int(tokens)

    def spend_by_outcome(self) -> list[dict[str, Any]]:
        """Spend grouped by the stage that sent it and the current fate of its record."""
        self.flush()
        rows = self.db.execute(
            "SELECT s.stage, CASE WHEN r.status IS NULL THEN 'unattributed' "
            "WHEN r.status = 'kept' THEN 'kept' "
            "ELSE 'rejected:' || COALESCE(r.stage, '') || ':' || COALESCE(r.reason, '') END, "
            "COUNT(*), SUM(1 - s.ok), SUM(s.tokens_in), SUM(s.tokens_out), "
            "CASE WHEN COUNT(s.usd) = COUNT(*) THEN SUM(s.usd) END "
            "FROM spend s LEFT JOIN results r ON r.id = s.record_id AND r.gen = ? "
            "GROUP BY 1, 2 ORDER BY 1, 2", (self.gen,)).fetchall()
        return [{"stage": st, "fate": fate, "attempts": n, "failed": f, "tokens_in": ti,
                 "tokens_out": to, "usd": usd} for st, fate, n, f, ti, to, usd in rows]

    def spend_requests(self) -> Counter[str]:
        """How many attempts of each request key got an answer (1 each when nothing paid twice)."""
        self.flush()
        return Counter(dict(self.db.execute(
            "SELECT key, COUNT(*) FROM spend WHERE ok = 1 GROUP BY key").fetchall()))

    def mean_tokens_out(self) -> float | None:
        """Mean completion tokens of answered attempts so far (None: none yet)."""
        self.flush()
        row = self.db.execute("SELECT AVG(tokens_out) FROM spend WHERE ok = 1").fetchone()
        return None if row[0] is None else float(row[0])

    # -- Batch API jobs (synth.llm.batch) ------------------------------------------------------

    def batch_add_requests(self, rows: list[tuple[str, str, str, str]]) -> int:
        """Queue ``(key, record_id, stage, body)`` for the next batch; known keys are skipped."""
        with self._writing(), self.db:
            self.db.execute("BEGIN")
            cur = self.db.executemany(
                "INSERT OR IGNORE INTO batch_requests (key, record_id, stage, body, state) "
                "VALUES (?,?,?,?,'pending')", rows)
        return cur.rowcount

    def batch_requests(self, state: str, batch_id: str | None = None) -> list[tuple[str, str]]:
        """``(key, body)`` of requests in ``state`` (of one batch when given)."""
        sql = "SELECT key, body FROM batch_requests WHERE state = ?"
        args: tuple[Any, ...] = (state,)
        if batch_id is not None:
            sql += " AND batch_id = ?"
            args += (batch_id,)
        return [(k, b) for k, b in self.db.execute(sql + " ORDER BY rowid", args).fetchall()]

    def batch_scopes(self, batch_id: str | None = None) -> dict[str, tuple[str, str]]:
        """key -> (record id, stage) of the queued requests (of one batch when given)."""
        sql = "SELECT key, record_id, stage FROM batch_requests"
        args: tuple[Any, ...] = ()
        if batch_id is not None:
            sql += " WHERE batch_id = ?"
            args = (batch_id,)
        return {k: (r, s) for k, r, s in self.db.execute(sql, args).fetchall()}

    def batch_request_counts(self) -> dict[str, int]:
        return dict(self.db.execute(
            "SELECT state, COUNT(*) FROM batch_requests GROUP BY state").fetchall())

    def batch_set_state(self, keys: list[str], state: str, batch_id: str | None = None,
                        error: str | None = None) -> None:
        with self._writing(), self.db:
            self.db.execute("BEGIN")
            if batch_id is None:
                self.db.executemany(
                    "UPDATE batch_requests SET state = ?, error = ? WHERE key = ?",
                    [(state, error, k) for k in keys])
            else:
                self.db.executemany(
                    "UPDATE batch_requests SET state = ?, batch_id = ?, error = ? WHERE key = ?",
                    [(state, batch_id, error, k) for k in keys])

    def batch_put(self, batch_id: str, input_file_id: str, status: str, requests: int,
                  counts: dict[str, int], output_file_id: str | None = None,
                  error_file_id: str | None = None, collected: bool = False) -> None:
        with self._writing():
            self.db.execute(
                "INSERT INTO batches (id, input_file_id, status, requests, counts, "
                "output_file_id, error_file_id, collected, created_at) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET status = excluded.status, counts = excluded.counts, "
                "output_file_id = excluded.output_file_id, error_file_id = excluded.error_file_id, "
                "collected = excluded.collected",
                (batch_id, input_file_id, status, requests, json.dumps(counts), output_file_id,
                 error_file_id, int(collected), time.time()))

    def batch_list(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, input_file_id, status, requests, counts, output_file_id, error_file_id, "
            "collected FROM batches ORDER BY created_at, id").fetchall()
        return [{"id": i, "input_file_id": f, "status": s, "requests": n,
                 "counts": json.loads(c), "output_file_id": o, "error_file_id": e,
                 "collected": bool(done)} for i, f, s, n, c, o, e, done in rows]

    # -- small files -----------------------------------------------------------------------

    def write_json(self, name: str, data: Any) -> Path:
        """Write RUN/``name`` atomically (see :func:`write_json`)."""
        return write_json(self.run_dir / name, data)


def write_json(path: Path, data: Any) -> Path:
    """Write ``path`` atomically (temp file + rename) so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with replacing(tmp):
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
        os.replace(tmp, path)
    return path



def _dumps(data: Any) -> str:
    try:
        return orjson.dumps(data).decode()
    except TypeError:  # a lone surrogate orjson refuses; json keeps it as before
        return json.dumps(data, ensure_ascii=False)


@contextlib.contextmanager
def replacing(tmp: Path) -> Iterator[None]:
    """Remove the temp file ``tmp`` (file or directory) when the block that writes it fails, so
    a full disk never leaves ``*.tmp`` behind; OSError becomes StoreWriteFailed."""
    import shutil

    try:
        yield
    except OSError as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise StoreWriteFailed(f"cannot write {tmp.with_suffix('')} ({exc.strerror or exc}); "
                               "free space or fix permissions, then rerun to resume") from exc
