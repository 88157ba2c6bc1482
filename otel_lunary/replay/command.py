"""``otel-lunary replay``: read sources, assemble, filter, render.

Unreadable input is reported on stderr (file:line: why) and skipped, so one bad line
in a week of traces does not hide the week. The exit status is 0 when something was
read, 1 when no source could be read at all, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from otel_lunary.replay.assemble import Assembler
from otel_lunary.replay.filters import Filters, parse_feedback
from otel_lunary.replay.model import Conversation
from otel_lunary.replay.ordered import OrderedOutput, ordered_output
from otel_lunary.replay.sources import JaegerSource, PhoenixSource, Source, read_sources
from otel_lunary.replay._http import timeout_s
from otel_lunary.replay.reader import max_line_bytes
from otel_lunary.replay.records import Problem
from otel_lunary.replay.streaming import Regroup, StreamingAssembly, streamable_files, streaming_enabled
from otel_lunary.replay.times import parse_time

logger = logging.getLogger(__name__)

FORMATS = ("terminal", "json", "markdown", "openai", "html")
MAX_PROBLEMS_SHOWN = 20


def default_file() -> Path:
    """The embedded default exporter's file: ``OTEL_LUNARY_FILE_PATH`` or ./otel-lunary-traces.jsonl."""
    from otel_lunary.export.file import DEFAULT_PATH, ENV_FILE_PATH

    return Path(os.environ.get(ENV_FILE_PATH) or DEFAULT_PATH)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Rebuild Lunary-style conversations (threads, messages, events, feedback, LLM calls) from OTLP data."
    add_source_arguments(parser)
    parser.add_argument("--format", "-f", choices=FORMATS, default="terminal", help="output format (default: %(default)s)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument("--list", action="store_true", help="list threads: first message, message count, users, tags, feedback")
    add_filter_arguments(parser)
    parser.add_argument("--no-details", action="store_true", help="terminal: one line per LLM call, without its prompt and output")


def add_source_arguments(parser: argparse.ArgumentParser, *, phoenix: bool = True, default: str = "$OTEL_LUNARY_FILE_PATH or ./otel-lunary-traces.jsonl") -> None:
    """Where spans are read from; ``phoenix=False`` leaves ``--phoenix`` to a command that writes there."""
    parser.add_argument("sources", nargs="*", metavar="SOURCE", help=f"OTLP JSON Lines files or directories (.gz/.zst too; rotated backups are read with their file). Default: {default}")
    parser.add_argument("--jaeger", metavar="URL", help="read from a Jaeger v2 query service (its /api/v3 API), e.g. http://localhost:16686")
    parser.add_argument("--jaeger-service", metavar="NAME", help="service name for the Jaeger search (some storages require one)")
    if phoenix:
        parser.add_argument("--phoenix", metavar="URL", help="read from a Phoenix server, e.g. http://localhost:6006")
    parser.add_argument("--project", default="default", help="Phoenix project (default: %(default)s)")


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """Which conversations to keep (``Filters``)."""
    parser.add_argument("--conversation", "-c", action="append", default=[], metavar="ID", help="only this conversation (repeatable)")
    parser.add_argument("--user", action="append", default=[], metavar="ID", help="only threads with this user (repeatable)")
    parser.add_argument("--tag", action="append", default=[], metavar="TAG", help="only threads with this tag (repeatable)")
    parser.add_argument("--feedback", action="append", default=[], metavar="KEY[=VALUE]", help="only threads where a message's latest feedback has KEY (=VALUE), e.g. thumb=down")
    parser.add_argument("--since", metavar="TIME", help="only threads active at or after TIME (ISO 8601, or 30m, 2h, 7d ago)")
    parser.add_argument("--until", metavar="TIME", help="only threads that started before TIME")


def sources_of(args: argparse.Namespace, *, default: Source | None = None) -> list[Source]:
    """The sources ``add_source_arguments`` parsed; ``default`` (else the local file) when none was named."""
    sources: list[Source] = [Path(s) for s in args.sources]
    if args.jaeger:
        sources.append(JaegerSource(args.jaeger, args.jaeger_service))
    if getattr(args, "phoenix", None):  # absent when add_source_arguments(phoenix=False)
        sources.append(PhoenixSource(args.phoenix, args.project))
    if not sources:
        sources.append(default if default is not None else default_file())
    return sources


def filters_of(args: argparse.Namespace) -> Filters:
    """The ``Filters`` ``add_filter_arguments`` parsed; ``ValueError`` on a bad value."""
    return Filters(
        conversations=frozenset(args.conversation),
        users=frozenset(args.user),
        tags=frozenset(args.tag),
        feedback=tuple(parse_feedback(f) for f in args.feedback),
        since_ns=parse_time(args.since) if args.since else None,
        until_ns=parse_time(args.until) if args.until else None,
    )


def _renderer(args: argparse.Namespace) -> Callable[[Iterable[Conversation], TextIO], None]:
    if args.list:
        from otel_lunary.replay import render_list

        return render_list.render
    if args.format == "terminal":
        from otel_lunary.replay import render_terminal

        return lambda conversations, out: render_terminal.render(conversations, out, details=not args.no_details)
    module = {"json": "render_json", "markdown": "render_markdown", "openai": "render_openai", "html": "render_html"}[args.format]
    import importlib

    return importlib.import_module(f"otel_lunary.replay.{module}").render  # type: ignore[no-any-return]


class ProblemReport:
    """Prints the first problems as they come and counts the rest."""

    def __init__(self, stream: TextIO, command: str = "replay") -> None:
        self.stream = stream
        self.prefix = f"otel-lunary {command}: "
        self.count = 0
        self.unreadable_sources = 0

    def __call__(self, problem: Problem) -> None:
        self.count += 1
        if problem.line is None and problem.message.startswith(("cannot open", "cannot reach", "cannot read from")):
            self.unreadable_sources += 1
        if self.count <= MAX_PROBLEMS_SHOWN:
            self.stream.write(f"{self.prefix}{problem}\n")

    def close(self) -> None:
        if self.count > MAX_PROBLEMS_SHOWN:
            self.stream.write(f"{self.prefix}... and {self.count - MAX_PROBLEMS_SHOWN} more problems\n")


def read_conversations(
    sources: list[Source], filters: Filters, report: ProblemReport, *, max_line: int | None = None
) -> tuple[list[Conversation], int]:
    """The conversations of ``sources`` that ``filters`` keep, and how many spans were read;
    problems go to ``report``. ``max_line``: the longest line read (default: the setting)."""
    max_line = max_line_bytes() if max_line is None else max_line
    assembler = Assembler(conversation_ids=filters.conversations)
    assembler.extend(
        read_sources(sources, report, conversation_ids=filters.conversations, since_ns=filters.since_ns, until_ns=filters.until_ns, max_line=max_line)
    )
    conversations = list(filters.apply(assembler.finish()))
    for problem in assembler.problems:
        report(problem)
    report.close()
    return conversations, assembler.spans_read


def stream_conversations(
    files: list[Path], filters: Filters, report: ProblemReport, output: OrderedOutput, *, max_line: int
) -> int | None:
    """What ``read_conversations`` does for files, in memory bounded by the conversations
    open at once (``streaming``): the matching conversations go to ``output``, problems to
    ``report``; returns the spans read, or None when the files must be read whole (nothing
    was reported then)."""
    read_problems: list[Problem] = []
    assembly = StreamingAssembly(files, read_problems.append, max_line=max_line)

    def keep(conversations: list[Conversation]) -> None:
        for conversation in filters.apply(conversations):
            output.add(conversation)

    try:
        assembly.run(keep)
    except Regroup as why:
        logger.debug("otel-lunary replay: reading the files whole: %s", why)
        return None
    for problem in [*read_problems, *assembly.problems]:
        report(problem)
    report.close()
    return assembly.spans_read


def replay(args: argparse.Namespace, out: TextIO, err: TextIO, *, streaming: bool | None = None) -> int:
    """The command body, with streams passed in so the demo and tests can call it.

    ``streaming`` (default: ``OTEL_LUNARY_REPLAY_STREAMING``, on) replays files in memory
    bounded by the conversations open at once; the output is the same either way."""
    try:
        filters = filters_of(args)
        max_line = max_line_bytes()
        timeout_s()  # checked before any source is read
        streaming = streaming_enabled(streaming)
    except ValueError as exc:
        err.write(f"otel-lunary replay: {exc}\n")
        return 2
    sources = sources_of(args)
    report = ProblemReport(err)
    files = streamable_files(sources) if streaming and not filters.conversations else None
    if files is not None:  # a --conversation filter keeps only those already
        output = ordered_output(args.format, out, listing=args.list, details=not args.no_details)
        try:
            spans_read = stream_conversations(files, filters, report, output, max_line=max_line)
            if spans_read is not None:
                return _write(args, report, len(sources), spans_read, len(output), lambda: output.write(out), err)
        finally:
            output.close()
    conversations, spans_read = read_conversations(sources, filters, report, max_line=max_line)
    return _write(args, report, len(sources), spans_read, len(conversations), lambda: _renderer(args)(conversations, out), err)


def _write(args: argparse.Namespace, report: ProblemReport, sources: int, spans_read: int, matched: int, write: Callable[[], None], err: TextIO) -> int:
    """The command's ending: its status, what it says on stderr, and the output."""
    if report.unreadable_sources >= sources and spans_read == 0:
        if not args.sources and not args.jaeger and not args.phoenix:
            err.write("otel-lunary replay: nothing recorded yet here; run `otel-lunary demo`, or pass a SOURCE file, --jaeger or --phoenix\n")
        return 1
    if not matched:
        err.write(f"otel-lunary replay: no conversation matched ({spans_read} spans read)\n")
    write()
    return 0


def run_to_output(
    body: Callable[[argparse.Namespace, TextIO, TextIO], int], args: argparse.Namespace, command: str, wrote: Iterable[int] = (0,)
) -> int:
    """Run a command ``body`` writing to ``-o FILE`` (said on stderr when its status is in
    ``wrote``) or to stdout, where a reader that stops early (``| head``) is not an error."""
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            status = body(args, out, sys.stderr)
        if status in wrote:
            sys.stderr.write(f"otel-lunary {command}: wrote {args.output}\n")
        return status
    try:
        return body(args, sys.stdout, sys.stderr)
    except BrokenPipeError:  # `otel-lunary replay | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def run(args: argparse.Namespace) -> int:
    return run_to_output(replay, args, "replay")
