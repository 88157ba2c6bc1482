r"""A conversation's JSON line written as text: each message, call and event written out
field by field, its strings by orjson, instead of built as a dict and encoded.

After the message lists (``message_json``), the rest of the JSON output cost ~37k
instructions a span of realistic recordings: ~14k building ``serialize``'s dicts and
~23k the C encoder, which escapes strings at ~30 instructions a character and makes a
string per key, separator and value and a list of item tuples per dict. Here the keys
are literals in f-strings, a message's strings (with its user id) and a call's (with its
operation, model and provider) are written by one ``orjson.dumps`` of a tuple each,
feedback changes field by field, and the message lists are the texts ``ThreadMessages``
gives (no stand-in to splice). Events (two a thread) and tool calls stay dicts, encoded.

Exactness: the C encoder writes a dict as ``"key": `` then the value's own encoding,
items joined by ``", "``, so a value written the way ``json_chunks(value)`` writes it
gives the same line. Values are written by ``_text`` (``json_chunks``) unless they are
of a type whose form is certain: ``str`` (orjson writes every string as
``encode_basestring`` does, ensure_ascii off, except lone surrogates, on which it
raises: those go to ``encode_basestring``), ``int`` (``int.__repr__``), ``float``
(``float.__repr__`` when finite). The tuple of a message's strings is written
``["","a","b",...,""]`` and split at ``","``. An unescaped quote in that text is a
string's delimiter, so a ``","`` that starts at one is the boundary of two items; one
that starts at an escaped quote (a string holding ``",``, or ending in ``\``) follows
a backslash, and may swallow the next boundary's quote (``"\","`` then ``,"b"``: the
count of pieces stays right while the pieces are wrong). So text holding ``\",`` goes
the general way, and every other text splits into exactly the items.

``serialize`` stays the schema of record; this module repeats its keys, their order and
its tests of the optional fields (a second form of it), and
``tests/test_replay_item_json.py`` checks the lines equal ``json.dumps(conversation_dict(c),
ensure_ascii=False, default=str)`` for conversations with every field of any type and
every optional field set, empty or left out, so the two cannot drift apart unnoticed. A
line on which anything raises is made the plain way (``plain_line``),
which raises what ``json.dumps`` would.
"""

from __future__ import annotations

from collections.abc import Callable
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from math import isfinite
from typing import Any

from otel_lunary.replay.content import json_chunks
from otel_lunary.replay.jsonparse import orjson_module, unguarded_loads
from otel_lunary.replay.message_json import ThreadMessages, Written
from otel_lunary.replay.model import CallRecord, Conversation, CustomEvent, FeedbackChange, Message
from otel_lunary.replay.serialize import conversation_dict, conversation_head_dict, tool_call_dict
from otel_lunary.replay.times import iso


_ESCAPED_QUOTE_COMMA = '\\",'
"""In a tuple's text, where ``","`` may not be a boundary between items (module docstring)."""


def _orjson_dumps() -> Callable[[Any], bytes] | None:
    """``orjson.dumps``, unless orjson is missing or the standard library is asked for
    (``jsonparse.orjson_module``: the parsers' switch)."""
    orjson = orjson_module()
    return None if orjson is None else orjson.dumps  # type: ignore[no-any-return]


def _text(value: Any) -> str:
    """``value`` as ``json.dumps(value, ensure_ascii=False, default=str)`` writes it."""
    return "".join(json_chunks(value))


class ItemJson:
    """Writes a conversation's JSON line as text (make one per output: the orjson choice
    is made then)."""

    __slots__ = ("_dumps", "_loads")

    def __init__(self, dumps: Callable[[Any], bytes] | None = None, use_orjson: bool = True) -> None:
        self._dumps = dumps if dumps is not None else _orjson_dumps() if use_orjson else None
        self._loads = unguarded_loads()  # for each thread's ThreadMessages (choosing reads the environment)

    def _value(self, value: Any) -> str:
        """Any value's JSON text: strings and integers directly, the rest by ``json_chunks``."""
        kind = type(value)
        if kind is str:  # _string, inline (a Python call less for most values)
            dumps = self._dumps
            if dumps is not None:
                try:
                    return dumps(value).decode()  # type: ignore[no-any-return]
                except TypeError:  # orjson.JSONEncodeError: a lone surrogate
                    pass
            return encode_basestring(value)  # type: ignore[no-any-return]
        if kind is int:
            return int.__repr__(value)
        return _text(value)

    def line(self, conversation: Conversation) -> str:
        """``json.dumps(conversation_dict(conversation), ensure_ascii=False, default=str) + "\\n"``."""
        line = self.written(conversation)
        return plain_line(conversation) if line is None else line

    def written(self, conversation: Conversation) -> str | None:
        """``line(conversation)``, or None where it must be made the plain way.

        The caller makes that: how deep the plain encoding stands on the stack decides
        whether a value nested near the recursion limit is written, so the renderer
        makes it where it always did."""
        try:
            return self._line(conversation)
        except Exception:  # whatever it is, the plain way meets it too (or not) and raises it itself
            return None

    def _line(self, conversation: Conversation) -> str:
        messages = ThreadMessages(self._loads, choose=False)
        items = conversation.items
        head = _text(conversation_head_dict(conversation))
        message, event, call = self.message, self.event, self.call
        written = ", ".join([message(i, messages) if isinstance(i, Message) else event(i) for i in items])
        unplaced = conversation.unplaced_calls
        calls = ", ".join([call(c, messages) for c in unplaced]) if unplaced else ""
        return f'{head[:-1]}, "items": [{written}], "unplaced_calls": [{calls}]}}\n'

    def message(self, message: Message, messages: ThreadMessages) -> str:
        """``serialize.message_dict(message, messages)``'s JSON text."""
        content, tool_calls, tool_call_id = message.body()
        id_, role, trace_id, span_id, user = message.id, message.role, message.trace_id, message.span_id, message.user_id
        dumps = self._dumps
        strings: list[str] | None = None
        if dumps is not None and type(id_) is str and type(role) is str and type(content) is str and type(trace_id) is str and type(span_id) is str:
            try:  # the user id too, when it is a string (it is written after the optional fields before it)
                tuple_text = dumps(("", id_, role, content, trace_id, span_id, user if type(user) is str else "", "")).decode()
                strings = None if _ESCAPED_QUOTE_COMMA in tuple_text else tuple_text.split('","')
            except TypeError:  # a lone surrogate
                pass
        user_text = None
        if strings is not None:
            _, id_text, role_text, content_text, trace_text, span_text, user_text, _ = strings
            if type(user) is not str:
                user_text = None
            text = (f'{{"type": "message", "id": "{id_text}", "role": "{role_text}", "time": "{iso(message.time_ns)}", '
                    f'"content": "{content_text}", "trace_id": "{trace_text}", "span_id": "{span_text}"')
        else:
            value = self._value
            text = (f'{{"type": "message", "id": {value(id_)}, "role": {value(role)}, "time": "{iso(message.time_ns)}", '
                    f'"content": {value(content)}, "trace_id": {value(trace_id)}, "span_id": {value(span_id)}')
        if tool_calls:
            text += ', "tool_calls": ' + _text([tool_call_dict(c) for c in tool_calls])
        user_props, tags, metadata = message._user_props, message._tags, message._metadata
        if tool_call_id is not None:
            text += ', "tool_call_id": ' + self._value(tool_call_id)
        if user is not None:
            text += f', "user_id": "{user_text}"' if user_text is not None else ', "user_id": ' + self._value(user)
        if user_props:
            text += ', "user_props": ' + _text(user_props)
        if tags:
            text += ', "tags": ' + _text(tags)
        if metadata:
            text += ', "metadata": ' + _text(metadata)
        if message.is_retry:
            text += ', "is_retry": ' + _text(message.is_retry)
        if message.truncated:
            text += ', "truncated": ' + _text(message.truncated)
        feedback, history, calls = message._feedback, message._feedback_history, message._calls
        feedback_text = "{}" if feedback is None or (type(feedback) is dict and not feedback) else _text(feedback)
        history_text = ", ".join([self.feedback_change(c) for c in history]) if history else ""
        if calls:
            call = self.call
            calls_text = ", ".join([call(c, messages) for c in calls])
            return f'{text}, "feedback": {feedback_text}, "feedback_history": [{history_text}], "calls": [{calls_text}]}}'
        return f'{text}, "feedback": {feedback_text}, "feedback_history": [{history_text}], "calls": []}}'

    def call(self, call: CallRecord, messages: ThreadMessages) -> str:
        """``serialize.call_dict(call, messages)``'s JSON text."""
        value = self._value
        start_ns, end_ns = call.start_ns, call.end_ns
        latency = round(max(0, end_ns - start_ns) / 1e6, 3)
        # finite for integer times (any other time makes iso raise); the check costs little
        latency_text = float.__repr__(latency) if type(latency) is float and isfinite(latency) else _text(latency)
        kind, name, span_id, trace_id = call.kind, call.name, call.span_id, call.trace_id
        operation, model, provider = call.operation, call.model, call.provider
        dumps = self._dumps
        strings: list[str] | None = None
        if dumps is not None and type(kind) is str and type(name) is str and type(span_id) is str and type(trace_id) is str:
            try:  # the operation, model and provider too, those that are strings
                tuple_text = dumps(("", kind, name, span_id, trace_id, operation if type(operation) is str else "",
                                 model if type(model) is str else "", provider if type(provider) is str else "", "")).decode()
                strings = None if _ESCAPED_QUOTE_COMMA in tuple_text else tuple_text.split('","')
            except TypeError:  # a lone surrogate
                pass
        operation_text = model_text = provider_text = None
        if strings is not None:
            _, kind_text, name_text, span_text, trace_text, operation_text, model_text, provider_text, _ = strings
            text = (f'{{"kind": "{kind_text}", "name": "{name_text}", "span_id": "{span_text}", '
                    f'"trace_id": "{trace_text}", "start": "{iso(start_ns)}", "latency_ms": {latency_text}')
        else:
            text = (f'{{"kind": {value(kind)}, "name": {value(name)}, "span_id": {value(span_id)}, '
                    f'"trace_id": {value(trace_id)}, "start": "{iso(start_ns)}", "latency_ms": {latency_text}')
        # the optional fields, each when set, in call_dict's order
        if operation is not None:
            text += f', "operation": "{operation_text}"' if operation_text is not None and type(operation) is str else ', "operation": ' + value(operation)
        if model is not None:
            text += f', "model": "{model_text}"' if model_text is not None and type(model) is str else ', "model": ' + value(model)
        if provider is not None:
            text += f', "provider": "{provider_text}"' if provider_text is not None and type(provider) is str else ', "provider": ' + value(provider)
        if call.agent_name is not None:
            text += ', "agent_name": ' + value(call.agent_name)
        if call.tool_name is not None:
            text += ', "tool_name": ' + value(call.tool_name)
        if call.input_tokens is not None:
            text += ', "input_tokens": ' + value(call.input_tokens)
        if call.output_tokens is not None:
            text += ', "output_tokens": ' + value(call.output_tokens)
        reasons = call.finish_reasons
        if reasons:  # most often one string: orjson writes that list as the encoder does
            text += ', "finish_reasons": ' + (self._one_string_list(reasons) or _text(reasons))
        if call.error is not None:
            text += ', "error": ' + value(call.error)
        input_messages = messages.input(call)
        if input_messages is not None:
            text += ', "input_messages": ' + _written(input_messages)
        output_messages = messages.output(call)
        if output_messages is not None:
            text += ', "output_messages": ' + _written(output_messages)
        if call.tool_arguments is not None:
            text += ', "tool_arguments": ' + value(call.tool_arguments)
        if call.tool_result is not None:
            text += ', "tool_result": ' + value(call.tool_result)
        if call.tags:
            text += ', "tags": ' + _text(call.tags)
        if call.metadata:
            text += ', "metadata": ' + _text(call.metadata)
        children = call.children
        if children:
            child = self.call
            return f'{text}, "children": [{", ".join([child(c, messages) for c in children])}]}}'
        return text + ', "children": []}'

    def _one_string_list(self, value: Any) -> str | None:
        """A list holding one string as orjson writes it (``["..."]``, as the encoder does:
        no separator in it), or None for anything else."""
        dumps = self._dumps
        if dumps is not None and type(value) is list and len(value) == 1 and type(value[0]) is str:
            try:
                return dumps(value).decode()  # type: ignore[no-any-return]
            except TypeError:  # a lone surrogate
                pass
        return None

    def feedback_change(self, change: FeedbackChange) -> str:
        """``serialize.feedback_change_dict(change)``'s JSON text."""
        value, removed = self._value, change.removed
        removed_text = "false" if removed is False else "true" if removed is True else _text(removed)
        return f'{{"time": "{iso(change.time_ns)}", "key": {value(change.key)}, "value": {value(change.value)}, "removed": {removed_text}}}'

    def event(self, event: CustomEvent) -> str:
        """``serialize.event_dict(event)``'s JSON text."""
        value = self._value
        text = f'{{"type": "event", "name": {value(event.name)}, "time": "{iso(event.time_ns)}"'
        if event.user_id:
            text += ', "user_id": ' + value(event.user_id)
        metadata = event.metadata
        if metadata:
            text += ', "metadata": ' + _text(metadata)
        return text + "}"


def _written(messages: Any) -> str:
    """A message list ``ThreadMessages`` gave: its text."""
    return messages.text if type(messages) is Written else _text(messages)  # type: ignore[no-any-return]


def plain_line(conversation: Conversation) -> str:
    """The line made the plain way: ``conversation_dict`` encoded whole."""
    chunks = json_chunks(conversation_dict(conversation))
    chunks.append("\n")
    return "".join(chunks)
