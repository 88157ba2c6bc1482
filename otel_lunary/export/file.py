"""The embedded default exporter: OTLP JSON Lines in a local, size-bounded file.

Each line is one ``ExportTraceServiceRequest`` in OTLP JSON (``otel_lunary.export.otlp_json``),
the format of the OpenTelemetry Collector's ``file`` exporter: the Collector's
``otlpjsonfile`` receiver and ``otel-lunary replay`` read it back.

When it is used (decided in ``otel_lunary.export.provider``): ``configure(exporter="file")``, or
``OTEL_LUNARY_EXPORTER=file``, or when nothing else is configured: no exporter argument
or endpoint given, and none of ``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL``,
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` set. An application that set any of those never
gets a file behind its back.

Settings (explicit argument > environment > default):

- ``OTEL_LUNARY_FILE_PATH``: the file, default ``./otel-lunary-traces.jsonl`` (made
  absolute when the exporter is created, so a later ``chdir`` does not split it);
- ``OTEL_LUNARY_FILE_MAX_BYTES``: rotate before a write would take the file past this
  size, default 64 MiB (minimum 4096);
- ``OTEL_LUNARY_FILE_BACKUPS``: rotated files kept, ``<path>.1`` (newest) to
  ``<path>.N``, default 3; 0 keeps none.

Disk use is bounded by ``(backups + 1) * max_bytes``. A batch whose line would exceed a
quarter of ``max_bytes`` is split into smaller lines; a single span larger than
``max_bytes`` is still written, alone, into a fresh file (the only way a file passes the
bound, by that one span).

Writes are appended and line-atomic: the file is opened ``O_APPEND`` and every line is
one ``os.write`` of the whole line, so nothing is buffered in the process and two
processes appending to the same path never interleave within a line. On POSIX an
exclusive ``flock`` on the current file serialises writes and rotation between
processes: a writer that finds the path now names another file (someone rotated)
reopens it. Lines are not ``fsync``-ed: they reach the OS page cache at once, and the
disk when the OS writes back.

Faults:

- ``fork()`` (gunicorn, uvicorn and multiprocessing workers): a child must not keep the
  parent's descriptor, since ``flock`` locks belong to the open file description both
  would share, and would no longer exclude them. The child drops it (``os.register_at_fork``,
  and a pid check before every write) and opens the file anew on its next write.
- A full disk (or any write error) in the middle of a line: the file is cut back to where
  the line began (``ftruncate``), so no partial line stays to be glued to the next one;
  the batch is reported failed, so it is counted in ``dropped_spans()`` and the
  ``flush()`` that exported it returns False. Should the cut fail too, the next write
  first ends the torn line with a newline, so only that line is unreadable. Write
  errors are logged at most once a minute.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_lunary._settings import env_str, resolve_int
from otel_lunary.export.otlp_json import encode_line

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: in-process lock only
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_BACKUPS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_PATH",
    "ENV_FILE_BACKUPS",
    "ENV_FILE_MAX_BYTES",
    "ENV_FILE_PATH",
    "OtlpJsonFileExporter",
    "rotated_paths",
]

ENV_FILE_PATH = "OTEL_LUNARY_FILE_PATH"
ENV_FILE_MAX_BYTES = "OTEL_LUNARY_FILE_MAX_BYTES"
ENV_FILE_BACKUPS = "OTEL_LUNARY_FILE_BACKUPS"
DEFAULT_PATH = "otel-lunary-traces.jsonl"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_BACKUPS = 3
MIN_MAX_BYTES = 4096

_logger = logging.getLogger("otel_lunary.export")
# Read access too: a write first checks the file's last byte (a torn line, see _write).
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
_WARN_INTERVAL_S = 60.0

_open_exporters: weakref.WeakSet[OtlpJsonFileExporter] = weakref.WeakSet()


def _drop_inherited_descriptors() -> None:
    """In a forked child: every exporter lets go of the parent's descriptor and lock."""
    for exporter in list(_open_exporters):
        exporter._forget_parent_file()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_inherited_descriptors)


def rotated_paths(path: str, backups: int) -> list[str]:
    """Every file of a rotated set, oldest first, ending with ``path`` itself."""
    return [f"{path}.{i}" for i in range(backups, 0, -1)] + [path]


class OtlpJsonFileExporter(SpanExporter):
    """A SpanExporter appending OTLP JSON Lines to a rotating file."""

    def __init__(self, path: str | None = None, max_bytes: int | None = None, backups: int | None = None) -> None:
        if path is not None and (not isinstance(path, (str, os.PathLike)) or not os.fspath(path)):
            raise ValueError(f"file path must be a non-empty path, got {path!r}")
        chosen = os.fspath(path) if path is not None else (env_str(ENV_FILE_PATH) or DEFAULT_PATH)
        self.path = os.path.abspath(os.path.expanduser(chosen))
        self.max_bytes = resolve_int(max_bytes, ENV_FILE_MAX_BYTES, DEFAULT_MAX_BYTES, MIN_MAX_BYTES, "file max_bytes")
        self.backups = resolve_int(backups, ENV_FILE_BACKUPS, DEFAULT_BACKUPS, 0, "file backups")
        self._split_above = max(1, self.max_bytes // 4)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = os.getpid()
        self._closed = False
        self._last_warning = -_WARN_INTERVAL_S
        _open_exporters.add(self)

    # --- SpanExporter -----------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            lines = self._encode(list(spans))
            with self._lock:
                self._write(lines)
        except Exception as error:  # noqa: BLE001 - an exporter reports failure, never raises
            now = time.monotonic()
            if now - self._last_warning >= _WARN_INTERVAL_S:
                self._last_warning = now
                _logger.warning("otel-lunary could not write %d spans to %s: %s", len(spans), self.path, error)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is buffered in the process

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    # --- internals --------------------------------------------------------------------

    def _encode(self, spans: list[ReadableSpan]) -> list[bytes]:
        line = encode_line(spans)
        if len(line) <= self._split_above or len(spans) == 1:
            return [line]
        half = len(spans) // 2
        return self._encode(spans[:half]) + self._encode(spans[half:])

    def _forget_parent_file(self) -> None:
        """After fork, in the child: the lock may have been held by a parent thread, and the
        descriptor shares the parent's file description (and its ``flock``)."""
        self._lock = threading.Lock()
        fd, self._fd = self._fd, None
        self._pid = os.getpid()
        if fd is not None:
            try:
                os.close(fd)  # the child's copy only: the parent's stays open and locked
            except OSError:
                pass

    def _open(self) -> int:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        try:
            return os.open(self.path, _OPEN_FLAGS, 0o644)
        except PermissionError:  # a file we may append to but not read
            return os.open(self.path, _OPEN_FLAGS & ~os.O_RDWR | os.O_WRONLY, 0o644)

    def _lock_current(self) -> int:
        """An fd on the file ``path`` names now, exclusively locked against other processes."""
        if self._pid != os.getpid():  # forked without the at-fork hook running
            self._forget_parent_file()
        while True:
            if self._fd is None:
                self._fd = self._open()
            fd = self._fd
            if fcntl is None:
                return fd
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                on_disk = os.stat(self.path)
            except FileNotFoundError:
                on_disk = None
            mine = os.fstat(fd)
            if on_disk is not None and (on_disk.st_ino, on_disk.st_dev) == (mine.st_ino, mine.st_dev):
                return fd
            # Another process rotated (or someone deleted the file): follow the path.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._fd = None

    def _rotate(self) -> None:
        """Shift ``path`` to ``path.1`` (and older backups up), dropping the oldest."""
        if self.backups == 0:
            os.unlink(self.path)
            return
        for i in range(self.backups - 1, 0, -1):
            older = f"{self.path}.{i}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")

    def _write(self, lines: list[bytes]) -> None:
        fd = self._lock_current()
        try:
            size = os.fstat(fd).st_size
            if size and _last_byte(fd, size) not in (b"\n", None):  # a torn line we could not cut back
                _append_line(fd, b"\n", size)
                size += 1
            for line in lines:
                if size > 0 and size + len(line) > self.max_bytes:
                    self._rotate()
                    new_fd = self._open()
                    if fcntl is not None:
                        fcntl.flock(new_fd, fcntl.LOCK_EX)
                        fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                    fd = self._fd = new_fd
                    size = os.fstat(fd).st_size
                _append_line(fd, line, size)
                size += len(line)
        finally:
            if fcntl is not None and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


def _last_byte(fd: int, size: int) -> bytes | None:
    try:
        return os.pread(fd, 1, size - 1)
    except OSError:  # opened write-only
        return None


def _append_line(fd: int, line: bytes, offset: int) -> None:
    """Append ``line`` (the file is ``offset`` bytes long), whole or not at all."""
    try:
        written = os.write(fd, line)
        while written < len(line):  # a short write: full disk, or a signal
            written += os.write(fd, line[written:])
    except OSError:
        try:
            os.ftruncate(fd, offset)
        except OSError:
            pass  # the next write ends the torn line first
        raise
