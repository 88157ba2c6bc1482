"""The bridge's memory, in an embedded SQLite file, so a restart loses nothing.

What is kept, per project (app key's project) and Lunary run id:

- ``runs``: the span context the bridge gave a message, event or run (trace id, span id,
  flags), its conversation (thread id), and for a run still open (``start`` seen, no
  ``end`` yet) the span's name, kind, start time, parent and start attributes, so the
  span can be created with its real start time when ``end`` comes, even after a restart;
- ``turns``: each thread's current turn (its last user message's span context).

- ``outbox``: the spans each request produced, written in the same transaction as the
  state they go with, so an acknowledged event is on disk before its answer and its span
  leaves the bridge from here (``outbox.Delivery``) even after a crash.

Bounded: rows not touched for ``ttl_s`` go, and beyond ``max_rows`` the least recently
touched go first (``prune``, run periodically). One connection, one lock: the bridge
serialises ingestion anyway, and SQLite in WAL mode keeps readers off the writer's back.

A store operation that cannot use the file (locked by another process past the busy
timeout, disk full, read-only) raises ``sqlite3.Error`` (``StoreFailure``); the
transaction is rolled back and the lock released, so the next request tries again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import SpanContext, TraceFlags

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    project TEXT NOT NULL,
    run_id TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    flags INTEGER NOT NULL,
    conversation_id TEXT,
    kind TEXT NOT NULL,
    open INTEGER NOT NULL DEFAULT 0,
    started_ns INTEGER,
    start_json TEXT,
    touched REAL NOT NULL,
    PRIMARY KEY (project, run_id)
);
CREATE INDEX IF NOT EXISTS runs_open ON runs (open, started_ns);
CREATE INDEX IF NOT EXISTS runs_touched ON runs (touched);
CREATE TABLE IF NOT EXISTS turns (
    project TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    flags INTEGER NOT NULL,
    touched REAL NOT NULL,
    PRIMARY KEY (project, thread_id)
);
CREATE INDEX IF NOT EXISTS turns_touched ON turns (touched);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    span TEXT NOT NULL
);
"""

# What a store operation raises when the file cannot be used right now or at all.
StoreFailure = sqlite3.Error
DEFAULT_BUSY_TIMEOUT_S = 5.0


class StoreUnusable(RuntimeError):
    """The state file cannot be opened or written at startup; the message says which and why."""


def connect(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, the schema in place."""
    db = sqlite3.connect(path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a commit survives a killed process (not a power cut)
        db.executescript(_SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


@dataclass(frozen=True)
class RunRef:
    span_context: SpanContext
    conversation_id: str | None
    kind: str
    open: bool


@dataclass(frozen=True)
class OpenRun:
    project: str
    run_id: str
    span_context: SpanContext
    conversation_id: str | None
    started_ns: int
    start: dict[str, Any]


def _context(trace_id: str, span_id: str, flags: int) -> SpanContext:
    return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(flags))


def _ids(span_context: SpanContext) -> tuple[str, str, int]:
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}", int(span_context.trace_flags)


class StateStore:
    """Run id -> span context (+ conversation, + open run's start data); thread -> turn."""

    def __init__(self, path: str, *, ttl_s: float = 7 * 86400, max_rows: int = 1_000_000, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self.max_rows = max_rows
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._spooled: list[tuple[str, str]] = []  # this transaction's spans, written at commit
        self.on_commit: list[Callable[[], None]] = []  # e.g. wake the outbox delivery
        try:
            self._db = connect(path, busy_timeout_s)
        except sqlite3.Error as problem:
            raise StoreUnusable(f"cannot use the state file {path}: {problem} (is it a writable SQLite file on a local disk?)") from None
        except OSError as problem:  # pragma: no cover - sqlite3 reports most of these as sqlite3.Error
            raise StoreUnusable(f"cannot use the state file {path}: {problem}") from None

    # --- transactions: one per ingest request -------------------------------------------
    def begin(self) -> None:
        """Take the thread lock and SQLite's write lock (``BEGIN IMMEDIATE``: no upgrade deadlock
        between processes); on failure neither is held."""
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    def commit(self) -> None:
        """Write the spooled spans and commit; on failure roll back. The lock is released either way."""
        try:
            try:
                if self._spooled:
                    self._db.executemany("INSERT INTO outbox (project, span) VALUES (?, ?)", self._spooled)
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback_quietly()
                raise
        finally:
            wrote = bool(self._spooled)
            self._spooled = []
            self._lock.release()
        if wrote:
            for callback in self.on_commit:
                callback()

    def rollback(self) -> None:
        """Abandon the transaction (state and spans alike) and release the lock."""
        try:
            self._rollback_quietly()
        finally:
            self._spooled = []
            self._lock.release()

    def _rollback_quietly(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:  # SQLite may already have rolled back (disk full, I/O error)
            pass

    # --- outbox ----------------------------------------------------------------------------
    def spool(self, project: str, span: str) -> None:
        """Queue an encoded span for the outbox, in the transaction under way (written at commit)."""
        self._spooled.append((project, span))

    # --- runs ------------------------------------------------------------------------------
    def get(self, project: str, run_id: str) -> RunRef | None:
        row = self._db.execute(
            "SELECT trace_id, span_id, flags, conversation_id, kind, open FROM runs WHERE project=? AND run_id=?",
            (project, run_id),
        ).fetchone()
        if row is None:
            return None
        return RunRef(_context(row[0], row[1], row[2]), row[3], row[4], bool(row[5]))

    def put(self, project: str, run_id: str, span_context: SpanContext, conversation_id: str | None, kind: str) -> None:
        trace_id, span_id, flags = _ids(span_context)
        self._db.execute(
            "INSERT OR REPLACE INTO runs (project, run_id, trace_id, span_id, flags, conversation_id, kind, open, touched)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (project, run_id, trace_id, span_id, flags, conversation_id, kind, time.time()),
        )

    def open_run(
        self, project: str, run_id: str, span_context: SpanContext, conversation_id: str | None, started_ns: int, start: dict[str, Any]
    ) -> None:
        trace_id, span_id, flags = _ids(span_context)
        self._db.execute(
            "INSERT OR REPLACE INTO runs (project, run_id, trace_id, span_id, flags, conversation_id, kind, open, started_ns,"
            " start_json, touched) VALUES (?, ?, ?, ?, ?, ?, 'run', 1, ?, ?, ?)",
            (project, run_id, trace_id, span_id, flags, conversation_id, started_ns, json.dumps(start), time.time()),
        )

    def close_run(self, project: str, run_id: str) -> OpenRun | None:
        """Mark an open run closed and return its start data; None if it is not open."""
        row = self._db.execute(
            "SELECT trace_id, span_id, flags, conversation_id, started_ns, start_json FROM runs"
            " WHERE project=? AND run_id=? AND open=1",
            (project, run_id),
        ).fetchone()
        if row is None:
            return None
        self._db.execute(
            "UPDATE runs SET open=0, start_json=NULL, touched=? WHERE project=? AND run_id=?", (time.time(), project, run_id)
        )
        return OpenRun(project, run_id, _context(row[0], row[1], row[2]), row[3], row[4], json.loads(row[5]))

    def open_before(self, started_ns: int, limit: int = 1000, *, run_id_prefix: str = "", prefixed: bool = True) -> list[tuple[str, str]]:
        """(project, run id) of runs open since before ``started_ns``, oldest first: those whose
        run id starts with ``run_id_prefix`` or, with ``prefixed=False``, those whose id does not
        (turns and runs have timeouts of their own)."""
        rows = self._db.execute(
            "SELECT project, run_id FROM runs WHERE open=1 AND started_ns < ? AND (substr(run_id, 1, ?) = ?) = ? ORDER BY started_ns LIMIT ?",
            (started_ns, len(run_id_prefix), run_id_prefix, prefixed, limit),
        ).fetchall()
        return [(row[0], row[1]) for row in rows]

    # --- turns -----------------------------------------------------------------------------
    def turn(self, project: str, thread_id: str) -> SpanContext | None:
        row = self._db.execute(
            "SELECT trace_id, span_id, flags FROM turns WHERE project=? AND thread_id=?", (project, thread_id)
        ).fetchone()
        return None if row is None else _context(row[0], row[1], row[2])

    def set_turn(self, project: str, thread_id: str, span_context: SpanContext) -> None:
        trace_id, span_id, flags = _ids(span_context)
        self._db.execute(
            "INSERT OR REPLACE INTO turns (project, thread_id, trace_id, span_id, flags, touched) VALUES (?, ?, ?, ?, ?, ?)",
            (project, thread_id, trace_id, span_id, flags, time.time()),
        )

    # --- bounds ----------------------------------------------------------------------------
    def prune(self) -> int:
        """Drop rows older than the TTL, then the oldest beyond ``max_rows``; returns how many.

        Open runs are left to the run timeout (which closes them first) unless the size
        bound needs their room.
        """
        removed = 0
        with self._lock:
            cutoff = time.time() - self.ttl_s
            for table, extra in (("runs", " AND open=0"), ("turns", "")):
                removed += self._db.execute(f"DELETE FROM {table} WHERE touched < ?{extra}", (cutoff,)).rowcount  # noqa: S608
                count = self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
                if count > self.max_rows:
                    removed += self._db.execute(
                        f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} ORDER BY touched LIMIT ?)",  # noqa: S608
                        (count - self.max_rows,),
                    ).rowcount
        return removed

    def counts(self) -> dict[str, int]:
        with self._lock:
            runs = self._db.execute("SELECT COUNT(*), COALESCE(SUM(open), 0) FROM runs").fetchone()
            turns = self._db.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
        return {"runs": runs[0], "open_runs": runs[1], "turns": turns}

    def close(self) -> None:
        with self._lock:
            self._db.close()
