"""Pass 1 of a streaming replay: the line after which each group of spans is complete.

``otel-lunary replay FILE`` used to keep a record of every span until the end of the
input, because a span can join any earlier or later one (a reply's LLM call, feedback
days later). Joins only ever go through a trace (parent span, a call's turn), a
conversation id, or a message id, so spans that share none of these never meet. This scan
reads the files once without parsing JSON, puts every trace, conversation id and message
id that occur together in one span into one *group* (union-find), and remembers the last
line where each group occurs. The assembling pass (``streaming``) can then finish a
group's conversations and drop them as soon as that line is read.

The scan finds spans with a bytes regex: in OTLP JSON as otel-lunary's encoder and the
Collector's file exporter write it, a span object starts with ``"traceId"`` and its
attributes follow before the next span's ``"traceId"``. A file written another way (other
field order, base64 ids) gives a wrong or incomplete grouping; the assembling pass checks
every join against the grouping and falls back to reading everything when one does not
match, so the scan can only cost time, never change the output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from otel_lunary.attributes import GEN_AI_CONVERSATION_ID, LUNARY_FEEDBACK_MESSAGE_ID, LUNARY_MESSAGE_ID
from otel_lunary.ids import message_trace_hex
from otel_lunary.replay.lines import Line, chunked_lines, open_binary

# A span's trace id (group 1), or one of the attributes joins go through: name (group 2)
# and string value, JSON-escaped (group 3). Inside a JSON string every quote is escaped,
# so content that mentions these names cannot match.
_JOIN_ATTRIBUTES = (GEN_AI_CONVERSATION_ID, LUNARY_MESSAGE_ID, LUNARY_FEEDBACK_MESSAGE_ID)
_PATTERN = re.compile(
    rb'"(?:traceId|trace_id)"\s*:\s*"([0-9a-fA-F]{32})"'
    rb'|"key"\s*:\s*"(' + b"|".join(re.escape(name.encode()) for name in _JOIN_ATTRIBUTES) + rb')"'
    rb'\s*,\s*"value"\s*:\s*\{\s*"(?:stringValue|string_value)"\s*:\s*"([^"\\]*(?:\\.[^"\\]*)*)"'
)
# The same in the compact form (no blanks) every OTLP JSON writer we know uses, where a
# span object starts with its trace id: one pass of one expression over a line finds each
# span's trace id (group 1) and, after it, the joining attributes of that span (groups 2
# and 3). Every literal starts with ``{"``, rarer in JSON than a quote alone, so the
# engine tries a match at few places. A message id in traceparent form is left out: it
# names its own span (pass 2 checks that it does).
_TRACE_FIELD = b'"traceId":"'
_COMPACT_VALUE = rb'","value":\{"stringValue":"'
_COMPACT = re.compile(
    rb'\{"(?:traceId":"([0-9a-fA-F]{32})"|key":"('
    + re.escape(GEN_AI_CONVERSATION_ID.encode())
    + b"|"
    + re.escape(LUNARY_FEEDBACK_MESSAGE_ID.encode())
    + b"|"
    + re.escape(LUNARY_MESSAGE_ID.encode())
    + rb"(?="
    + _COMPACT_VALUE
    + rb'(?!00-)))'
    + _COMPACT_VALUE
    + rb'([^"\\]*(?:\\.[^"\\]*)*)")'
)
# A feedback span's message id in traceparent form naming the feedback's own trace joins
# nothing new (what ``message_key`` makes of it is that trace): the common case, skipped.
_OWN_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE, _ZERO_SPAN = b"0" * 32, b"0" * 16
_FEEDBACK = LUNARY_FEEDBACK_MESSAGE_ID.encode()
_OPEN_BRACE = ord("{")
_CONVERSATION = GEN_AI_CONVERSATION_ID.encode()
_NEWLINE = ord("\n")
_LINE_BITS = 40  # a position is file index << _LINE_BITS | line number


def position(file_index: int, line_no: int) -> int:
    """One comparable number for a line of the files read in order."""
    return file_index << _LINE_BITS | line_no


def message_key(message_id: str) -> str:
    """What a message id joins by: the trace of an id in ``traceparent`` form (feedback
    naming it finds the message's span in that trace), else the id itself."""
    if len(message_id) >= 55:
        trace = message_trace_hex(message_id)
        if trace is not None:
            return trace
    return message_id


@dataclass
class Grouping:
    """Every key (trace id, conversation id, message key) seen, its group, and where each group ends.

    Keys are held as their ``hash()`` (this process's), a third of the memory of the
    strings. Two keys with the same hash are one key to the scan and to pass 2 alike, so
    a collision can only put two groups together (more held at once), never let a join
    cross groups unchecked: each check asks whether a key maps to one group.
    """

    group_of: dict[int, int] = field(default_factory=dict)  # hash(key) -> group
    last_line: dict[int, int] = field(default_factory=dict)  # group -> position of its last line
    _members: dict[int, list[int]] = field(default_factory=dict)
    _next: int = 0

    def group(self, key: str, default: int | None = None) -> int | None:
        """The group of ``key``, or ``default`` when the scan never saw it."""
        return self.group_of.get(hash(key), default)

    def _group(self, text: str, where: int) -> int:
        key = hash(text)
        group = self.group_of.get(key)
        if group is None:
            group = self._next
            self._next += 1
            self.group_of[key] = group
            self._members[group] = [key]
            self.last_line[group] = where
        elif self.last_line[group] < where:
            self.last_line[group] = where
        return group

    def _join(self, a: int, b: int) -> int:
        if a == b:
            return a
        if len(self._members[a]) < len(self._members[b]):
            a, b = b, a
        moved = self._members.pop(b)
        group_of = self.group_of
        for key in moved:
            group_of[key] = a
        self._members[a].extend(moved)
        last = self.last_line.pop(b)
        if self.last_line[a] < last:
            self.last_line[a] = last
        return a

    def add_line(self, buffer: bytes, start: int, end: int, where: int) -> None:
        """The joins the spans of the line ``buffer[start:end]`` make (read in place, not copied).

        One ``findall`` gives, in file order, each span's trace id followed by its joining
        attributes; the Python loop only pairs them, and each distinct (trace, attribute)
        of the line is joined once (a trace's spans repeat its conversation id). A line
        whose first span does not start with its trace id (another writer's field order)
        takes the general path, which finds trace ids anywhere."""
        first = buffer.find(_TRACE_FIELD, start, end)
        if first <= start or buffer[first - 1] != _OPEN_BRACE:
            self._add_spaced_line(buffer[start:end], where)
            return
        traces: set[bytes] = set()
        joins: set[tuple[bytes, bytes, bytes]] = set()
        trace = b""
        for hex_id, name, value in _COMPACT.findall(buffer, start, end):
            if hex_id:
                trace = hex_id
                traces.add(trace)
            elif trace:
                joins.add((trace, name, value))
        hashes: dict[bytes, int] = {}  # trace as written -> hash of its key
        for trace in traces:
            text = trace.decode("ascii").lower()
            self._group(text, where)
            hashes[trace] = hash(text)
        for trace, name, value in joins:
            if name == _FEEDBACK and self._own_trace(trace, value):
                continue
            key = self._key(name, value)
            if key is not None:
                self._join(self.group_of[hashes[trace]], self._group(key, where))

    @staticmethod
    def _own_trace(trace: bytes, value: bytes) -> bool:
        """Whether a message id (as written) is a traceparent in ``trace``: ``message_key``
        of it is then the trace itself, a join with nothing new."""
        match = _OWN_TRACEPARENT.fullmatch(value)
        if match is None:
            return False
        own, span = match.group(1, 2)
        return own != _ZERO_TRACE and span != _ZERO_SPAN and own == trace.lower()

    @staticmethod
    def _key(name: bytes, value: bytes) -> str | None:
        """The group key of an attribute value as the JSON parser will read it, or None."""
        text = value.decode("utf-8", "replace")
        if "\\" in text:
            try:
                text = json.loads(f'"{text}"')
            except ValueError:
                return None  # not what the JSON parser will read either: the check in pass 2 decides
        key = text if name == _CONVERSATION else message_key(text)
        return key or None

    def _add_spaced_line(self, line: bytes, where: int) -> None:
        """``add_line`` for any JSON layout (blanks around ``:`` and ``,``, snake_case)."""
        trace = b""
        seen: set[tuple[bytes, bytes | None, bytes | None]] = set()
        for match in _PATTERN.finditer(line):
            hex_id, name, value = match.groups()
            if hex_id is not None:
                trace = hex_id
                seen.add((trace, None, None))
            elif trace and not (name != _CONVERSATION and value.startswith(b"00-" + trace)):  # a message's own traceparent joins nothing new
                seen.add((trace, name, value))
        for trace, name, value in seen:
            group = self._group(trace.decode().lower(), where)
            if name is not None and value is not None:
                key = self._key(name, value)
                if key is not None:
                    self._join(group, self._group(key, where))

    def ends(self) -> list[tuple[int, int]]:
        """(position of its last line, group) for every group, in file order."""
        return sorted((where, group) for group, where in self.last_line.items())

    def done(self) -> None:
        """Drop what only the scan needed."""
        self._members.clear()


def _lines(path: Path, max_line: int) -> Iterator[Line | None]:
    """Each line of ``path`` as (buffer, start, end) without its newline, numbered as
    ``reader.read_numbered_lines`` numbers them (both read through ``lines``); None for a
    line longer than ``max_line`` bytes (newline included), which pass 2 skips too.

    Each line is searched in place in the chunk read: the scan looks at every byte once
    and keeps none. Not ``mmap``: the mapped pages of the whole file would count in the
    process's resident memory."""
    with open(path, "rb") as raw:
        for line in chunked_lines(open_binary(path, raw), max_line):
            if line is None:
                yield None
                continue
            buffer, start, end = line
            yield (buffer, start, end - 1) if buffer[end - 1] == _NEWLINE else line


def scan(files: list[Path], max_line: int) -> Grouping:
    """Group the spans of ``files`` (read in this order); unreadable files and lines are left to pass 2."""
    grouping = Grouping()
    for file_index, path in enumerate(files):
        try:
            for line_no, line in enumerate(_lines(path, max_line), start=1):
                if line is not None:
                    grouping.add_line(*line, position(file_index, line_no))
        except (OSError, EOFError):
            pass  # unreadable, or a corrupt compressed stream: pass 2 reports it where it stops
    grouping.done()
    return grouping
