"""A chat-like transcript for the terminal.

Colour is for people: it is used only when the output is a TTY and ``NO_COLOR`` is
unset (https://no-color.org), so pipes and files get plain text.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TextIO

from otel_lunary.replay._gc import deferred_collections
from otel_lunary.replay.batched import BatchedWriter
from otel_lunary.replay.content import as_text, genai_message_text
from otel_lunary.replay.display import (
    ROLE_ICONS,
    call_summary,
    feedback_labels,
    history_label,
    shorten,
    terminal_safe,
    tool_call_label,
)
from otel_lunary.replay.histories import Histories
from otel_lunary.replay.model import CallRecord, Conversation, CustomEvent, Message
from otel_lunary.replay.times import clock, short

_ROLE_COLOURS = {"user": "36", "assistant": "32", "system": "35", "tool": "33"}


def use_colour(out: TextIO) -> bool:
    """True when ``out`` is a terminal and the user has not asked for no colour."""
    return "NO_COLOR" not in os.environ and hasattr(out, "isatty") and out.isatty()


Style = Callable[[str, str], str]
"""Colours text (an SGR code, the text); every piece of text a line is made of passes
through one or through ``terminal_safe``, so the only escape sequences written are these
colours."""


def _coloured(code: str, text: str) -> str:
    return f"\x1b[{code}m{terminal_safe(text)}\x1b[0m"


def _plain(code: str, text: str) -> str:
    return terminal_safe(text)


def _indent(text: str, prefix: str) -> str:
    lines = text.splitlines()
    if len(lines) == 1:  # most messages: no generator for one line
        return prefix + lines[0]
    return "\n".join(prefix + line for line in lines or [""])


def _call_lines(call: CallRecord, style: Style, depth: int, details: bool, histories: Histories) -> list[str]:
    pad = "     " + "  " * depth
    summary = call_summary(call)
    lines = [pad + style("31" if call.error else "2", f"⚙ {summary}")]
    if details:
        inputs = histories.input_messages(call) or []
        if inputs:  # the prompt's last message says what was asked; the rest is history
            earlier = f" (+{len(inputs) - 1} earlier)" if len(inputs) > 1 else ""
            last = inputs[-1]
            lines.append(pad + style("2", f"    in  {last.get('role')}: {shorten(genai_message_text(last), 100)}{earlier}"))
        for message in call.output_messages or []:
            lines.append(pad + style("2", f"    out {message.get('role')}: {shorten(genai_message_text(message), 100)}"))
        if call.tool_arguments is not None:
            lines.append(pad + style("2", f"    args   {shorten(as_text(call.tool_arguments), 100)}"))
        if call.tool_result is not None:
            lines.append(pad + style("2", f"    result {shorten(as_text(call.tool_result), 100)}"))
    for child in call.children:
        lines.extend(_call_lines(child, style, depth + 1, details, histories))
    return lines


def _message_lines(message: Message, style: Style, details: bool, histories: Histories) -> list[str]:
    icon = ROLE_ICONS.get(message.role, "•")
    who = message.role + (f" ({message.user_id})" if message.user_id and message.role == "user" else "")
    flags = (" [retry]" if message.is_retry else "") + (" [truncated]" if message.truncated else "")
    header = f"{style('2', clock(message.time_ns))} {icon} {style('1;' + _ROLE_COLOURS.get(message.role, '37'), who)}{flags}"
    if message.tool_call_id:
        header += style("2", f" ← {message.tool_call_id}")
    lines = [header]
    if message.content is not None:
        lines.append(_indent(terminal_safe(message.content), "     "))
    elif not message.tool_calls:
        lines.append(style("2", "     (content not captured)"))
    for tool_call in message.tool_calls:
        lines.append(style("33", f"     ↳ calls {tool_call_label(tool_call)}"))
    # the slots, not the fields: most messages have none of these, and reading a field
    # makes its empty container
    tags, feedback, feedback_history = message._tags, message._feedback, message._feedback_history
    if tags:
        lines.append(style("2", "     tags: " + ", ".join(tags)))
    if feedback:
        lines.append("     " + terminal_safe("  ".join(feedback_labels(feedback))))
    if feedback_history and len(feedback_history) > len(feedback or ()):
        lines.append(style("2", "     feedback history: " + " → ".join(history_label(c) for c in feedback_history)))
    for call in message._calls or ():
        lines.extend(_call_lines(call, style, 0, details, histories))
    return lines


def _event_lines(event: CustomEvent, style: Style) -> list[str]:
    meta = f" {as_text(event.metadata)}" if event.metadata else ""
    return [style("2;35", f"{clock(event.time_ns)} ◆ event {event.name}{meta}")]


@deferred_collections()  # see _gc: rendering makes no cycles either
def render(conversations: Iterable[Conversation], out: TextIO, *, colour: bool | None = None, details: bool = True) -> None:
    """Write every conversation as a transcript, a blank line between them."""
    style = _coloured if (use_colour(out) if colour is None else colour) else _plain
    batched = BatchedWriter(out)  # a write a thread, not a line (see batched)
    try:
        _render(conversations, batched, style, details)
    finally:
        batched.flush()


def _render(conversations: Iterable[Conversation], out: BatchedWriter, style: Style, details: bool) -> None:
    first = True
    for conversation in conversations:
        if not first:
            out.write("\n")
        first = False
        facts = [short(conversation.start_ns) + " UTC"] if conversation.items else []
        if conversation.users:
            facts.append("users: " + ", ".join(conversation.users))
        if conversation.all_tags:
            facts.append("tags: " + ", ".join(conversation.all_tags))
        out.write(style("1", f"══ Thread {conversation.id}") + style("2", "  " + " · ".join(facts)) + "\n")
        histories = Histories()  # one per thread: only the last input message shows, but its history parses once
        for item in conversation.items:
            lines = _message_lines(item, style, details, histories) if isinstance(item, Message) else _event_lines(item, style)
            out.write("\n".join(lines) + "\n")
        for call in conversation.unplaced_calls:
            out.write("\n".join(_call_lines(call, style, 0, details, histories)) + "\n")
