"""Replay of files in memory bounded by the conversations open at once, not by the files.

Pass 1 (``scan``) groups traces, conversation ids and message ids and finds the line
where each group ends. Pass 2 reads the spans as usual, gives each span to the
``Assembler`` of its trace's group, and once a group's last line is read finishes that
assembler (the same ``finish`` as for the whole input: feedback merge, call placement,
item order) and hands its conversations on, so the assembler's records are freed.

The result equals assembling the whole input at once because every join ``finish``
makes stays inside a group: a call or feedback joins its parent in its own trace (a span's
parent is in its trace), a call without a message joins its trace's turn, feedback that
names a message by id joins the message with that id or the span its ``traceparent``
names, and items and thread state are per conversation. Pass 2 checks, before a group's
conversations are handed on, that each trace, conversation id and message id it met is in
that group by pass 1's grouping (a file written in a field order the scan does not expect
fails here); on any mismatch it raises ``Regroup`` and the caller reads everything again
the whole-input way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from otel_lunary._settings import env_str
from otel_lunary.replay.assemble import Assembler, unplaced_feedback_problem
from otel_lunary.replay.model import Conversation
from otel_lunary.replay.reader import ProblemSink, expand_paths, read_numbered_lines
from otel_lunary.replay.records import Problem
from otel_lunary.replay.scan import Grouping, message_key, position, scan


ENV_STREAMING = "OTEL_LUNARY_REPLAY_STREAMING"
_ON = {"1", "true", "on", "yes"}
_OFF = {"0", "false", "off", "no"}


def streaming_enabled(explicit: bool | None = None) -> bool:
    """Whether replay of files streams: ``explicit``, else ``OTEL_LUNARY_REPLAY_STREAMING``
    (on/off), else on. Off reads the whole input before assembling, as replay did before
    (the output is the same; only memory differs). ``ValueError`` on another value."""
    if explicit is not None:
        return explicit
    raw = env_str(ENV_STREAMING)
    if raw is None or raw.lower() in _ON:
        return True
    if raw.lower() in _OFF:
        return False
    raise ValueError(f"{ENV_STREAMING} must be on or off, got {raw!r}")


class Regroup(Exception):
    """The scan's grouping does not hold for these files; read them whole instead."""


def streamable_files(sources: Iterable[object]) -> list[Path] | None:
    """The files to read when every source is a file or directory path, else None."""
    sources = list(sources)
    if not all(isinstance(source, Path) for source in sources):
        return None
    return [file for source in sources for file in expand_paths([source])]  # type: ignore[list-item]


class StreamingAssembly:
    """Pass 2 over ``files``: conversations handed to ``on_finished`` as their groups end.

    ``problems`` hears the assembler's problems (spans skipped, feedback without its
    message) in the order the whole-input assembler reports them; read problems go to
    ``on_problem`` as they are met.
    """

    def __init__(self, files: list[Path], on_problem: ProblemSink, *, max_line: int, grouping: Grouping | None = None) -> None:
        self._files = files
        self._on_problem = on_problem
        self._max_line = max_line
        self._grouping = grouping
        self.problems: list[Problem] = []
        self.spans_read = 0
        self.most_open = 0  # the most groups held at once, for the docs' memory figures

    def run(self, on_finished: Callable[[list[Conversation]], None]) -> None:
        """Read the files; raises ``Regroup`` (nothing handed on is valid then)."""
        grouping = self._grouping or scan(self._files, self._max_line)
        group_of = grouping.group_of  # hash(trace id) -> group: looked up per trace met
        ends = grouping.ends()
        grouping.last_line.clear()
        open_groups: dict[int, Assembler] = {}
        finished: set[int] = set()
        problems = self.problems
        unplaced_feedback = 0
        next_end = 0

        def finish(group: int) -> None:
            nonlocal unplaced_feedback
            finished.add(group)
            assembler = open_groups.pop(group, None)
            if assembler is None:  # a group of traces pass 2 never met (links, unreadable lines)
                return
            self.spans_read += assembler.spans_read
            conversations, unplaced = assembler.finish_part()
            self._check(assembler, group, grouping)
            del assembler  # its records, before the conversations are rendered
            unplaced_feedback += unplaced
            on_finished(conversations)

        last_trace = None
        assembler: Assembler | None = None
        for file_index, path in enumerate(self._files):
            lines = read_numbered_lines(path, self._on_problem, max_line=self._max_line)
            try:
                for line_no, records in lines:
                    for span in records:
                        trace = span.trace_id
                        if trace != last_trace:
                            group = group_of.get(hash(trace))
                            if group is None or group in finished:
                                raise Regroup(f"span {span.span_id} of trace {trace} is not where the scan put it")
                            assembler = open_groups.get(group)
                            if assembler is None:
                                assembler = open_groups[group] = Assembler()
                                assembler.problems = problems  # shared: reported in arrival order
                                if len(open_groups) > self.most_open:
                                    self.most_open = len(open_groups)
                            last_trace = trace
                        assembler.add(span)  # type: ignore[union-attr]
                    last_trace = assembler = None  # the group may be finished now
                    here = position(file_index, line_no)
                    while next_end < len(ends) and ends[next_end][0] <= here:
                        finish(ends[next_end][1])
                        next_end += 1
            finally:
                lines.close()  # the file, and the reader's hold on the garbage collector, now
        for group in list(open_groups):
            finish(group)
        if unplaced_feedback:
            problems.append(unplaced_feedback_problem(unplaced_feedback))

    @staticmethod
    def _check(assembler: Assembler, group: int, grouping: Grouping) -> None:
        """Raise ``Regroup`` unless every join of ``assembler`` stays in ``group``.

        A message whose id starts with ``00-`` and its own trace (what otel-lunary
        writes) needs no ``message_key``: its key is that trace, in this group by
        construction, or, if the id is not a valid traceparent, the id itself, looked up
        as it is (a key no scan adds unless something else names it)."""
        group_of = grouping.group_of
        conversations, named, messages = assembler.join_keys()
        for conversation in conversations:
            if group_of.get(hash(conversation)) != group:
                raise Regroup(f"conversation {conversation!r} is not where the scan put it")
        for message_id in named:
            if group_of.get(hash(message_key(message_id))) != group:
                raise Regroup(f"feedback for message {message_id!r} is not where the scan put it")
        for message_id, trace in messages:  # absent: no feedback names it
            key = message_id if message_id[3:35] == trace and message_id.startswith("00-") else message_key(message_id)
            if group_of.get(hash(key), group) != group:
                raise Regroup(f"message {message_id!r} is not where the scan put it")
