"""The rerun report as one self-contained HTML page: recorded and new replies side by side.

Inline CSS, no script, no network, like replay's chat page, so it can be attached to a
CI run or a pull request and opened anywhere. Every piece of recorded or generated text
is escaped: a reply is data, never markup.
"""

from __future__ import annotations

from html import escape
from typing import TextIO

from otel_lunary.replay.content import as_text
from otel_lunary.replay.display import feedback_labels
from otel_lunary.rerun.render_terminal import conversation_facts, reply_facts
from otel_lunary.rerun.results import ConversationResult, Reply, RerunReport, TurnResult, plural

_CSS = """
:root { --bg:#f4f5f7; --muted:#6b7280; --same:#15803d; --changed:#b45309; --error:#b91c1c; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; background:var(--bg); color:#111827; }
header.page { padding:16px 24px; background:#111827; color:#fff; }
header.page h1 { margin:0 0 4px; font-size:18px; }
header.page p { margin:0; color:#d1d5db; font-size:14px; }
main { max-width:1200px; margin:0 auto; padding:16px; }
section.conversation { background:#fafafa; border:1px solid #e5e7eb; border-radius:12px; margin:16px 0 28px; padding:16px; }
section.conversation h2 { margin:0; font-size:15px; word-break:break-all; }
section.conversation p.facts { margin:2px 0 8px; color:var(--muted); font-size:13px; }
p.stopped { color:var(--error); margin:8px 0 0; }
article.turn { border-top:1px solid #e5e7eb; padding:12px 0; }
article.turn h3 { margin:0 0 6px; font-size:14px; display:flex; gap:10px; align-items:baseline; }
.status { border-radius:999px; padding:0 10px; color:#fff; font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.status-same .status { background:var(--same); }
.status-changed .status { background:var(--changed); }
.status-error .status { background:var(--error); }
.similarity { color:var(--muted); font-weight:normal; font-size:12px; }
p.question { margin:0 0 8px; color:#1e3a8a; white-space:pre-wrap; overflow-wrap:anywhere; }
.pair { display:grid; grid-template-columns:1fr 1fr; gap:12px; align-items:start; }
.side { background:#fff; border:1px solid #e5e7eb; border-radius:10px; padding:8px 12px; min-width:0; }
.side.new { border-color:#c7d2fe; }
.side h4 { margin:0 0 4px; font-size:12px; color:var(--muted); text-transform:uppercase; letter-spacing:.05em; }
.reply { white-space:pre-wrap; overflow-wrap:anywhere; }
.reply.missing { color:var(--muted); font-style:italic; }
ul.facts { list-style:none; margin:6px 0 0; padding:0; color:var(--muted); font-size:12px; display:flex; flex-wrap:wrap; gap:4px 12px; }
ul.facts li.unrecorded { color:var(--error); font-weight:600; }
.feedback { margin-top:4px; font-size:16px; }
p.error { color:var(--error); margin:6px 0 0; white-space:pre-wrap; }
"""


def _reply_html(reply: Reply | None, side: str, label: str, feedback: dict[str, object] | None = None) -> str:
    if reply is None:
        return f'<div class="side {side}"><h4>{escape(label)}</h4><div class="reply missing">no reply</div></div>'
    text = reply.content
    body = f'<div class="reply">{escape(text)}</div>' if text else '<div class="reply missing">(no text)</div>'
    facts = [f"<li>{escape(fact)}</li>" for fact in reply_facts(reply) if not fact.startswith("tool ")]
    for call in reply.tool_calls:
        title = f"tool {call.name}({as_text(call.arguments)})"
        if call.answered:
            facts.append(f'<li class="tool">{escape(title)}</li>')
        else:
            facts.append(f'<li class="tool unrecorded" title="the recording never made this call; it was not run">{escape(title)}: not recorded, not run</li>')
    labels = feedback_labels(dict(feedback)) if feedback else []
    feedback_html = f'<div class="feedback">{escape(" ".join(labels))}</div>' if labels else ""
    message_id = f' data-message-id="{escape(reply.message_id)}"' if reply.message_id else ""
    return (
        f'<div class="side {side}"{message_id}><h4>{escape(label)}</h4>{body}'
        f'<ul class="facts">{"".join(facts)}</ul>{feedback_html}</div>'
    )


def _turn_html(turn: TurnResult) -> str:
    similarity = f'<span class="similarity">similarity {turn.similarity:.2f}</span>' if turn.similarity is not None else ""
    question = f'<p class="question">{escape(turn.question)}</p>' if turn.question is not None else ""
    new_label = f"New ({turn.new.model})" if turn.new is not None and turn.new.model else "New"
    recorded_label = f"Recorded ({turn.recorded.model})" if turn.recorded.model else "Recorded"
    error = f'<p class="error">{escape(turn.error)}</p>' if turn.error is not None else ""
    return (
        f'<article class="turn status-{turn.status}" data-turn="{turn.index}" data-status="{turn.status}">'
        f'<h3>Turn {turn.index} <span class="status">{turn.status}</span>{similarity}</h3>{question}'
        f'<div class="pair">{_reply_html(turn.recorded, "recorded", recorded_label, turn.feedback)}'
        f'{_reply_html(turn.new, "new", new_label)}</div>{error}</article>'
    )


def _conversation_html(conversation: ConversationResult) -> str:
    turns = "".join(_turn_html(turn) for turn in conversation.turns)
    notes = []
    not_run = conversation.total_turns - len(conversation.turns)
    if conversation.error is not None:
        notes.append(f'<p class="stopped">Stopped: {escape(conversation.error)} ({plural(not_run, "turn")} not run)</p>')
    if conversation.interrupted:
        notes.append(f'<p class="stopped">Interrupted: {not_run} of {plural(conversation.total_turns, "turn")} not run</p>')
    rerun = f' data-rerun-id="{escape(conversation.rerun_conversation_id)}"' if conversation.rerun_conversation_id else ""
    facts = escape(" · ".join(conversation_facts(conversation)))
    return (
        f'<section class="conversation" data-conversation-id="{escape(conversation.conversation_id)}"{rerun}>'
        f'<h2>{escape(conversation.conversation_id)}</h2><p class="facts">{facts}</p>{turns}{"".join(notes)}</section>'
    )


def render(report: RerunReport, out: TextIO) -> None:
    out.write(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>otel-lunary rerun</title><style>{_CSS}</style></head><body>"
        f'<header class="page"><h1>otel-lunary rerun</h1><p class="summary">{escape(report.summary())}</p></header><main>'
    )
    for conversation in report.conversations:
        out.write(_conversation_html(conversation))
    out.write("</main></body></html>\n")
