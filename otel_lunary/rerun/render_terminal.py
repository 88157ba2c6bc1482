"""The rerun report for a terminal: per conversation, each turn's recorded and new reply.

Replies are shortened to one line here (JSON and HTML keep them whole); the status
leads each turn so a changed one stands out when scrolling. Colour only on a TTY
without ``NO_COLOR``, as in replay.
"""

from __future__ import annotations

from typing import TextIO

from otel_lunary.replay.content import as_text
from otel_lunary.replay.display import feedback_labels, shorten
from otel_lunary.replay.render_terminal import use_colour
from otel_lunary.rerun.results import STATUSES, ConversationResult, Reply, RerunReport, TurnResult, plural

WIDTH = 240
_MARKS = {"same": ("=", "32"), "changed": ("≠", "33"), "error": ("✗", "31")}


def _paint(enabled: bool, code: str, text: str) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if enabled else text


def reply_facts(reply: Reply) -> list[str]:
    """Length, tokens, latency and tool calls of one side, each a short phrase."""
    facts = [f"{reply.length} chars"]
    if reply.output_tokens is not None:
        facts.append(f"{reply.output_tokens} tokens")
    if reply.latency_ms is not None:
        facts.append(f"{reply.latency_ms:.0f} ms")
    for call in reply.tool_calls:
        facts.append(f"tool {call.name}({as_text(call.arguments)})" + ("" if call.answered else " NOT RECORDED, not run"))
    return facts


def _turn_lines(turn: TurnResult, colour: bool) -> list[str]:
    mark, code = _MARKS[turn.status]
    head = f"  turn {turn.index}  {_paint(colour, code, f'{mark} {turn.status}')}"
    if turn.similarity is not None and turn.status == "changed":
        head += f"  (similarity {turn.similarity:.2f})"
    lines = [head]
    if turn.question is not None:
        lines.append(f"    asked     {shorten(turn.question, WIDTH)}")
    recorded_facts = reply_facts(turn.recorded) + feedback_labels(turn.feedback)
    lines.append(f"    recorded  {shorten(turn.recorded.content or '(no text)', WIDTH)}")
    lines.append(f"              {' · '.join(recorded_facts)}")
    if turn.new is not None:
        lines.append(f"    new       {shorten(turn.new.content or '(no text)', WIDTH)}")
        lines.append(f"              {' · '.join(reply_facts(turn.new))}")
    if turn.error is not None:
        lines.append("    " + _paint(colour, "31", f"error     {turn.error}"))
    return lines


def conversation_facts(conversation: ConversationResult) -> list[str]:
    """Model, turns done, counts by status and the rerun's own thread id."""
    facts = [f"model {conversation.model or '?'}", f"{len(conversation.turns)}/{conversation.total_turns} turns"]
    for status in STATUSES:
        if conversation.count(status):
            facts.append(f"{conversation.count(status)} {status}")
    if conversation.rerun_conversation_id:
        facts.append(f"recorded as {conversation.rerun_conversation_id}")
    return facts


def render(report: RerunReport, out: TextIO) -> None:
    colour = use_colour(out)
    for conversation in report.conversations:
        heading = f"══ {conversation.conversation_id}  " + " · ".join(conversation_facts(conversation))
        out.write(_paint(colour, "1", heading) + "\n")
        for turn in conversation.turns:
            out.write("\n".join(_turn_lines(turn, colour)) + "\n")
        not_run = conversation.total_turns - len(conversation.turns)
        if conversation.error is not None and conversation.turns and conversation.turns[-1].error is not None:
            out.write("  " + _paint(colour, "31", f"stopped at turn {conversation.turns[-1].index}; {plural(not_run, 'later turn')} not run") + "\n")
        elif conversation.error is not None:
            out.write("  " + _paint(colour, "31", f"not run: {conversation.error}") + "\n")
        if conversation.interrupted:
            out.write(f"  interrupted: {not_run} of {plural(conversation.total_turns, 'turn')} not run\n")
        out.write("\n")
    out.write(report.summary() + "\n")
