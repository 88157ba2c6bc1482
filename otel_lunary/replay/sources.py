"""Where replay reads spans from: files (``reader``), Jaeger (``jaeger``), Phoenix (``phoenix``).

Every source yields the same ``SpanRecord`` view, so assembly has one way in
(``Assembler.add``) whatever the spans came from. Remote sources take the conversation
and time filters to ask their server for less.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path

from otel_lunary.replay.jaeger import JaegerSource, read_jaeger
from otel_lunary.replay.phoenix import PhoenixSource, read_phoenix
from otel_lunary.replay.reader import ProblemSink, expand_paths, read_lines
from otel_lunary.replay.records import SpanRecord

Source = Path | JaegerSource | PhoenixSource

__all__ = ["JaegerSource", "PhoenixSource", "Source", "read_sources"]


def read_sources(
    sources: Iterable[Source],
    on_problem: ProblemSink,
    *,
    conversation_ids: frozenset[str] = frozenset(),
    since_ns: int | None = None,
    until_ns: int | None = None,
    max_line: int | None = None,
) -> Iterator[SpanRecord]:
    """Spans from every source in turn; files with their rotated backups, directories' trace files.

    Lazy: a source is opened when the spans before it are consumed. ``max_line``: the
    longest file line read (``reader.max_line_bytes``).
    """

    def spans_of(source: Source) -> Iterator[SpanRecord]:
        if isinstance(source, JaegerSource):
            return read_jaeger(source, on_problem, conversation_ids=conversation_ids, since_ns=since_ns, until_ns=until_ns)
        if isinstance(source, PhoenixSource):
            return read_phoenix(source, on_problem, conversation_ids=conversation_ids, since_ns=since_ns, until_ns=until_ns)
        return _files(source, on_problem, max_line)

    # chained, not a generator of its own: one Python frame less to resume per span
    return chain.from_iterable(map(spans_of, sources))


def _files(path: Path, on_problem: ProblemSink, max_line: int | None) -> Iterator[SpanRecord]:
    """The spans of ``path`` and its rotated backups (or a directory's trace files)."""
    lines = chain.from_iterable(read_lines(file, on_problem, max_line=max_line) for file in expand_paths([path]))
    return chain.from_iterable(lines)
