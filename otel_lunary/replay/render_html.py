"""A self-contained HTML chat view: bubbles by role, feedback, events, call details.

One file, inline CSS, no script and no network: it opens from disk or an email
attachment and shows the same thing years later. LLM calls, agents and tools sit under
their message in ``<details>`` elements, so they are there without cluttering the chat.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TextIO

from otel_lunary.replay._gc import deferred_collections
from otel_lunary.replay.content import as_text, genai_message_text
from otel_lunary.replay.display import ROLE_ICONS, Remembered, call_facts, call_title, feedback_label, history_label, tool_call_label
from otel_lunary.replay.histories import Histories
from otel_lunary.replay.model import CallRecord, Conversation, CustomEvent, Message
from otel_lunary.replay.times import clock, short

_CSS = """
:root { --bg:#f4f5f7; --user:#2563eb; --assistant:#fff; --tool:#fff7e6; --system:#eef0f3; --muted:#6b7280; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; background:var(--bg); color:#111827; }
header.page { padding:16px 24px; background:#111827; color:#fff; }
header.page h1 { margin:0; font-size:18px; }
header.page nav a { color:#93c5fd; margin-right:12px; font-size:13px; }
main { max-width:860px; margin:0 auto; padding:16px; }
section.thread { background:#fafafa; border:1px solid #e5e7eb; border-radius:12px; margin:16px 0 32px; padding:16px; }
section.thread h2 { margin:0 0 4px; font-size:16px; word-break:break-all; }
.facts { color:var(--muted); font-size:13px; margin:0 0 12px; }
.tag { display:inline-block; background:#e0e7ff; color:#3730a3; border-radius:999px; padding:0 8px; font-size:12px; margin-right:4px; }
ol.chat { list-style:none; margin:0; padding:0; display:flex; flex-direction:column; gap:10px; }
li.msg { display:flex; flex-direction:column; align-items:flex-start; max-width:100%; }
li.msg.role-user { align-items:flex-end; }
.row { display:flex; align-items:flex-end; gap:8px; max-width:80%; }
li.msg.role-user .row { flex-direction:row-reverse; }
.bubble { padding:8px 12px; border-radius:14px; background:var(--assistant); border:1px solid #e5e7eb; white-space:pre-wrap; overflow-wrap:anywhere; }
.role-user .bubble { background:var(--user); color:#fff; border-color:var(--user); border-bottom-right-radius:4px; }
.role-assistant .bubble { border-bottom-left-radius:4px; }
.role-tool .bubble { background:var(--tool); font-family:ui-monospace,monospace; font-size:13px; }
.role-system .bubble { background:var(--system); font-style:italic; }
.meta { font-size:12px; color:var(--muted); margin:0 6px 2px; }
.text.missing { color:var(--muted); font-style:italic; }
ul.tool-calls { margin:6px 0 0; padding-left:18px; font-family:ui-monospace,monospace; font-size:13px; }
.feedback { display:flex; gap:4px; font-size:18px; }
.feedback .fb-text { font-size:12px; color:var(--muted); }
.history { font-size:11px; color:var(--muted); margin:2px 6px; }
.calls { margin:4px 0 0 12px; font-size:13px; max-width:80%; }
li.msg.role-user .calls { margin:4px 12px 0 0; }
details.call { background:#fff; border:1px solid #e5e7eb; border-radius:8px; padding:4px 8px; margin:4px 0; }
details.call.error { border-color:#fca5a5; background:#fef2f2; }
details.call summary { cursor:pointer; color:#374151; }
.call-body { margin-top:6px; }
.call-body dl { display:grid; grid-template-columns:max-content 1fr; gap:2px 12px; margin:0 0 6px; }
.call-body dt { color:var(--muted); }
.call-body dd { margin:0; white-space:pre-wrap; overflow-wrap:anywhere; font-family:ui-monospace,monospace; font-size:12px; }
li.event { align-self:center; color:#6d28d9; font-size:13px; background:#f5f3ff; border-radius:999px; padding:2px 12px; }
li.event code { color:var(--muted); }
"""


def escape(text: str) -> str:
    """``html.escape(text)``, replacing only the characters the text holds.

    ``html.escape`` runs five ``str.replace`` whatever the text, and each counts its
    character over the whole string in a plain loop before it knows there is nothing to
    do: ~4k instructions a call on the ~55-character texts a page escapes 2.6 times a
    span, a sixth of what HTML adds to a replay. ``in`` finds a character with
    ``memchr`` and stops at the first; a ``replace`` of a character the text does not
    hold returns it unchanged, so skipping it changes nothing, and the order (``&``
    first) is ``html.escape``'s.
    """
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "'" in text:
        text = text.replace("'", "&#x27;")
    return text


# ``escape`` of text that repeats by nature (roles, models, row labels, call titles,
# feedback keys, event names, tags): a page escapes ~150 strings a thread, most of them
# these, and ``escape`` is five scans and a Python call.
_NAMES: Remembered[str, str] = Remembered(escape)


def _name(text: str) -> str:
    """``escape(text)``, remembered. The renderer subscripts ``_NAMES`` itself: a
    subscript is a C call, this a Python one, ~2 a span."""
    return _NAMES[text]


def _id(text: str) -> str:
    """``escape(text)``: hex span ids are letters and digits, which need none."""
    return text if text.isalnum() else escape(text)


def _row(label: str, value: str) -> str:
    return f"<dt>{_NAMES[label]}</dt><dd>{escape(value)}</dd>"


def _input_row(message: dict[str, Any]) -> str:
    return _row(f"input · {message.get('role')}", genai_message_text(message))


def _add_call(call: CallRecord, histories: Histories, pieces: list[str]) -> None:
    """A call's ``<details>`` (its children's inside), added to ``pieces``.

    Added rather than returned: a call holds the whole history its model was sent, so a
    text made per call and joined again per message and per thread copied the history
    rows at every level; the thread joins its pieces once.
    """
    error = " error" if call.error else ""
    facts = " · ".join(call_facts(call))
    pieces.append(
        f'<details class="call call-{call.kind}{error}" data-kind="{call.kind}">'
        f'<summary><span class="call-title">{_NAMES[call_title(call)]}</span> · <span class="call-facts">{escape(facts)}</span></summary>'
        '<div class="call-body"><dl>'
    )
    if call.model:  # the first rows' labels need no escaping
        pieces.append(f"<dt>model</dt><dd>{_NAMES[str(call.model)]}</dd>")
    if call.provider:
        pieces.append(f"<dt>provider</dt><dd>{_NAMES[str(call.provider)]}</dd>")
    if call.operation:
        pieces.append(f"<dt>operation</dt><dd>{_NAMES[str(call.operation)]}</dd>")
    if call.span_id:
        pieces.append(f"<dt>span</dt><dd>{_id(str(call.span_id))}</dd>")
    made = histories.made
    for message in histories.input_messages(call) or []:
        pieces.append(made(message, _input_row))
    for message in call.output_messages or []:
        pieces.append(_row(f"output · {message.get('role')}", genai_message_text(message)))
    if call.tool_arguments is not None:
        pieces.append(_row("arguments", as_text(call.tool_arguments)))
    if call.tool_result is not None:
        pieces.append(_row("result", as_text(call.tool_result)))
    if call.error:
        pieces.append(_row("error", call.error))
    pieces.append("</dl>")
    for child in call.children:
        _add_call(child, histories, pieces)
    pieces.append("</div></details>")


def _add_message(message: Message, histories: Histories, pieces: list[str]) -> None:
    """A message's ``<li>`` (its calls inside), added to ``pieces``."""
    content, tool_calls, tool_call_id = message.body()
    role = _NAMES[message.role]
    who = message.role + (f" · {message.user_id}" if message.user_id and message.role == "user" else "")
    meta = f"{ROLE_ICONS.get(message.role, '')} {who} · {clock(message.time_ns)}"
    if message.is_retry:
        meta += " · retry"
    if tool_call_id:
        meta += f" · answers {tool_call_id}"
    if content is not None:
        text = f'<div class="text">{escape(content)}</div>'
    elif tool_calls:
        text = ""
    else:
        text = '<div class="text missing">content not captured</div>'
    tools = ""
    if tool_calls:
        tools = '<ul class="tool-calls">' + "".join(f"<li>{escape(tool_call_label(c))}</li>" for c in tool_calls) + "</ul>"
    # the slots, not the fields: most messages have none of these, and reading a field
    # makes its empty container
    given, feedback_history, message_calls = message._feedback, message._feedback_history, message._calls
    feedback = ""
    if given:
        icons = []
        for key, value in given.items():
            css = "fb-icon" if key in ("thumb", "emoji") else "fb-text"
            name = _NAMES[key]
            icons.append(f'<span class="fb {css}" data-key="{name}" title="{name}: {escape(as_text(value))}">{escape(feedback_label(key, value))}</span>')
        feedback = '<div class="feedback" aria-label="feedback">' + "".join(icons) + "</div>"
    history = ""
    if feedback_history and len(feedback_history) > len(given or ()):
        history = '<div class="history">feedback history: ' + escape(" → ".join(history_label(c) for c in feedback_history)) + "</div>"
    end = '<div class="calls">' if message_calls else "</li>"  # in the one f-string: no copy of the rest
    pieces.append(
        f'<li class="msg role-{role}" data-role="{role}" data-message-id="{escape(message.id)}">'
        f'<div class="meta">{escape(meta)}</div>'
        f'<div class="row"><div class="bubble">{text}{tools}</div>{feedback}</div>{history}{end}'
    )
    if message_calls:
        for call in message_calls:
            _add_call(call, histories, pieces)
        pieces.append("</div></li>")


def _message(message: Message, histories: Histories) -> str:
    """A message's ``<li>`` as one text."""
    pieces: list[str] = []
    _add_message(message, histories, pieces)
    return "".join(pieces)


def _event(event: CustomEvent) -> str:
    meta = f" <code>{escape(as_text(event.metadata))}</code>" if event.metadata else ""
    name = _NAMES[event.name]
    return f'<li class="event" data-event="{name}">◆ {name} · {clock(event.time_ns)}{meta}</li>'


def _thread_rest(conversation: Conversation) -> str:
    """A thread's section after ``THREAD_START`` and its index (which only the page
    writer knows: a streaming replay renders threads before it has them all). Made by
    one join of the pieces: a message's emoji make the text four bytes a character, and
    each copy of it (a join into an f-string, a slice) is a copy of the whole thread."""
    facts = [f"started {short(conversation.start_ns)} UTC"] if conversation.items else []
    facts.append(f"{len(conversation.messages)} messages")
    users = conversation.users  # a walk over the items: once
    if users:
        facts.append("users: " + ", ".join(users))
    tags = "".join(f'<span class="tag">{_NAMES[t]}</span>' for t in conversation.all_tags)
    histories = Histories()  # one per thread: what it remembers is the thread's
    conversation_id = escape(conversation.id)
    pieces = [
        f'" data-conversation-id="{conversation_id}"><h2>Thread {conversation_id}</h2>'
        f'<p class="facts">{escape(" · ".join(facts))} {tags}</p><ol class="chat">'
    ]
    for item in conversation.items:
        if isinstance(item, Message):
            _add_message(item, histories, pieces)
        else:
            pieces.append(_event(item))
    if conversation.unplaced_calls:
        pieces.append('</ol><div class="calls unplaced">')
        for call in conversation.unplaced_calls:
            _add_call(call, histories, pieces)
        pieces.append("</div></section>")
    else:
        pieces.append("</ol></section>")
    return "".join(pieces)


@deferred_collections()  # see _gc: rendering makes no cycles either
def render(conversations: Iterable[Conversation], out: TextIO, *, title: str = "otel-lunary replay") -> None:
    threads = list(conversations)
    write_head([c.id for c in threads], out, title=title)
    for index, conversation in enumerate(threads):
        out.write(f"{THREAD_START}{index}")
        out.write(_thread_rest(conversation))
    write_foot(len(threads), out)


# The page in parts, for a writer that renders each thread before it knows them all
# (``ordered``): the head's navigation needs every id, a thread its index.
THREAD_START = '<section class="thread" id="thread-'


def thread_section_rest(conversation: Conversation) -> str:
    """One thread's section after ``THREAD_START`` and its index: the writer puts those
    first when it knows the index."""
    return _thread_rest(conversation)


def write_head(ids: list[str], out: TextIO, *, title: str = "otel-lunary replay") -> None:
    nav = "".join(f'<a href="#thread-{i}">{escape(c)}</a>' for i, c in enumerate(ids)) if len(ids) > 1 else ""
    out.write('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">')
    out.write('<meta name="viewport" content="width=device-width, initial-scale=1">')
    out.write(f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>")
    out.write(f'<header class="page"><h1>{escape(title)}</h1><nav>{nav}</nav></header><main>')


def write_foot(threads: int, out: TextIO) -> None:
    if not threads:
        out.write('<p class="facts">No conversations.</p>')
    out.write("</main></body></html>\n")
