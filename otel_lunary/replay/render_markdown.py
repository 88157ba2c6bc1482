"""Markdown transcript: readable on GitHub, in an issue or a notebook.

Everything in it that came from users or models is text, never markup: outside code
spans the characters that start raw HTML, entities, links and images (``\\ < & [ ]``)
are backslash-escaped, and code spans are fenced with more backticks than the text holds,
so a message cannot close them. Rendered by any CommonMark renderer, a transcript of
hostile content has no element, link or image the content asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TextIO

from otel_lunary.replay._gc import deferred_collections
from otel_lunary.replay.batched import BatchedWriter
from otel_lunary.replay.content import as_text, genai_message_text
from otel_lunary.replay.display import ROLE_ICONS, Remembered, call_summary, feedback_labels, history_label, terminal_safe, tool_call_label
from otel_lunary.replay.histories import Histories
from otel_lunary.replay.model import CallRecord, Conversation, Message
from otel_lunary.replay.times import clock, short


class _TerminalSafe:
    """Writes text with its control characters made visible (``display.terminal_safe``,
    which maps each character alone: the same for text written in pieces or together)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, text: str) -> int:
        return self._out.write(terminal_safe(text))


_BACKTICKS = re.compile("`+")


def _text(text: object) -> str:
    """User or model text as Markdown text: what could start HTML, an entity, a link or an image escaped.

    ``\\`` first, so the backslashes added for the others are not escaped again; five
    scans at C speed where ``str.translate`` with a table looks every character up in a
    dict (ten times slower on chat text, which goes through here in full).
    """
    return str(text).replace("\\", "\\\\").replace("<", "\\<").replace("&", "\\&").replace("[", "\\[").replace("]", "\\]")


def _code(text: object) -> str:
    """User or model text as a code span that the text cannot close."""
    text = str(text).replace("\n", " ")
    if "`" not in text:  # the usual case: one backtick each side
        return f"`{text}`"
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _quote(text: str) -> str:
    lines = text.splitlines()
    if len(lines) == 1:  # most messages: no generator for one line
        return "> " + lines[0] if lines[0] else ">"
    return "\n".join("> " + line if line else ">" for line in lines or [""])


def _role_texts(role: Any) -> tuple[str, str]:
    """A message's head and a history line's role: ``(f"{icon} **{_text(role)}**", _code(role))``."""
    return f"{ROLE_ICONS.get(role, '')} **{_text(role)}**", _code(role)


# ``_role_texts`` of string roles: a handful of roles head every message and history line
# of a transcript (``_text`` is five scans, ``_code`` three; both depend on the role
# alone). Only strings are remembered: 1 == 1.0 == True as keys.
_ROLES: Remembered[str, tuple[str, str]] = Remembered(_role_texts)


def _role(role: Any) -> tuple[str, str]:
    return _ROLES[role] if type(role) is str else _role_texts(role)


def _history_line(message: dict[str, Any]) -> str:
    role = message.get("role")
    code = _role(role)[1]
    return f"{code}: {_text(' '.join(genai_message_text(message).split()))}"


def _call_lines(call: CallRecord, depth: int, histories: Histories) -> list[str]:
    pad = "  " * depth
    lines = [f"{pad}- ⚙ {_text(call_summary(call))}"]
    made = histories.made
    for message in histories.input_messages(call) or []:
        lines.append(f"{pad}  - {made(message, _history_line)}")
    for message in call.output_messages or []:
        lines.append(f"{pad}  - {_history_line(message)}")
    if call.tool_arguments is not None:
        lines.append(f"{pad}  - arguments: {_code(as_text(call.tool_arguments))}")
    if call.tool_result is not None:
        lines.append(f"{pad}  - result: {_code(as_text(call.tool_result))}")
    for child in call.children:
        lines.extend(_call_lines(child, depth + 1, histories))
    return lines


def _message(message: Message, histories: Histories) -> list[str]:
    content, tool_calls, tool_call_id = message.body()
    role = message.role
    head = _role(role)[0]
    if message.user_id and role == "user":
        head += f" ({_text(message.user_id)})"
    head += f" · {clock(message.time_ns)}"
    if message.is_retry:
        head += " · retry"
    if tool_call_id:
        head += f" · answers {_code(tool_call_id)}"
    lines = [head, ""]
    if content is not None:
        lines += [_quote(_text(content)), ""]
    for tool_call in tool_calls:
        lines.append(f"- calls {_code(tool_call_label(tool_call))}")
    if tool_calls:
        lines.append("")
    # the slots, not the fields: most messages have none of these, and reading a field
    # makes its empty container
    feedback, feedback_history, calls = message._feedback, message._feedback_history, message._calls
    if feedback:
        lines += ["Feedback: " + _text(" ".join(feedback_labels(feedback))), ""]
    if feedback_history and len(feedback_history) > len(feedback or ()):
        lines += ["<sub>history: " + _text(" → ".join(history_label(c) for c in feedback_history)) + "</sub>", ""]
    if calls:
        for call in calls:
            lines.extend(_call_lines(call, 0, histories))
        lines.append("")
    return lines


@deferred_collections()  # see _gc: rendering makes no cycles either
def render(conversations: Iterable[Conversation], out: TextIO) -> None:
    batched = BatchedWriter(_TerminalSafe(out))  # a write a thread, not a message (see batched)
    try:
        _render(conversations, batched)
    finally:
        batched.flush()


def _render(conversations: Iterable[Conversation], writer: BatchedWriter) -> None:
    for conversation in conversations:
        writer.write(f"# Thread {_code(conversation.id)}\n\n")
        facts = [f"Started {short(conversation.start_ns)} UTC"] if conversation.items else []
        users, tags = conversation.users, conversation.all_tags  # each a walk over the items: once
        if users:
            facts.append("users: " + _text(", ".join(users)))
        if tags:
            facts.append("tags: " + ", ".join(_code(t) for t in tags))
        writer.write(" · ".join(facts) + "\n\n")
        histories = Histories()  # one per thread: what it remembers is the thread's
        for item in conversation.items:
            if isinstance(item, Message):
                lines = _message(item, histories)
                lines.append("")  # the newline after the last line, without a copy of the whole
                writer.write("\n".join(lines))
            else:
                meta = f" {_code(as_text(item.metadata))}" if item.metadata else ""
                writer.write(f"*◆ event **{_text(item.name)}** · {clock(item.time_ns)}*{meta}\n\n")
        writer.write("---\n\n")
