"""A conversation's JSON output line, each message of its LLM calls' histories written once.

A chat model is sent the whole conversation on every call, so each call's
``input_messages`` repeats the previous call's and the JSON output holds every history
in full: parsing each one whole and encoding it again was most of what the JSON format
spent beyond reading the file. Here ``Histories`` parses only what a history adds to
the one before and each message dict is encoded once; a call's value is then
``"[" + ", ".join(its messages' texts) + "]"``, what the encoder writes for that list.

The encoder cannot take text it must not escape, so the conversation is encoded with a
stand-in in each history's place, which the encoder hands to ``default``: that turns it
into a marker string and notes its text, in the order the encoder meets them, and the
marker's encoding is then replaced by those texts in that order. When the encoding
holds the marker more often than there were stand-ins (data that contains the marker
itself), or anything on the way raises, the line is made the plain way, so the output
is always ``json.dumps(conversation_dict(conversation), ensure_ascii=False, default=str)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from otel_lunary.replay.content import json_chunks
from otel_lunary.replay.histories import Histories
from otel_lunary.replay.model import CallRecord, Conversation
from otel_lunary.replay.serialize import conversation_dict

MARKER = "\x00otel-lunary: an input history written apart\x00"
"""What a history's stand-in is encoded as (a string data is most unlikely to hold)."""

_ENCODED_MARKER = "".join(json_chunks(MARKER))


class _Written:
    """Stand-in for one call's ``input_messages``: its JSON text, made already."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _message_text(message: dict[str, Any]) -> str:
    return "".join(json_chunks(message))


class ConversationJson:
    """Writes conversations' JSON lines (make one per output: it keeps the texts of the
    stand-ins of the line being made)."""

    __slots__ = ("_texts", "_encode")

    def __init__(self) -> None:
        self._texts: list[str] = []
        texts = self._texts

        def default(value: Any) -> Any:
            if type(value) is _Written:
                texts.append(value.text)
                return MARKER
            return str(value)

        self._encode: Callable[[Any], list[str]]
        if c_make_encoder is None:  # no C accelerator (another interpreter): the same options in Python
            encoder = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), default=default, check_circular=False)
            self._encode = lambda value: list(encoder.iterencode(value))
        else:  # the options of content.json_chunks, with this default
            iterencode = c_make_encoder(None, default, encode_basestring, None, ": ", ", ", False, False, True)
            self._encode = lambda value: iterencode(value, 0)  # type: ignore[no-any-return]

    def line(self, conversation: Conversation) -> str:
        """``json.dumps(conversation_dict(conversation), ensure_ascii=False, default=str) + "\\n"``."""
        texts = self._texts
        texts.clear()
        try:
            chunks = self._encode(conversation_dict(conversation, _Inputs(Histories())))
        except Exception:  # whatever it is, the plain way meets it too (or not) and says so
            return _plain_line(conversation)
        if not texts:
            chunks.append("\n")
            return "".join(chunks)
        parts = "".join(chunks).split(_ENCODED_MARKER)
        if len(parts) != len(texts) + 1:  # the data holds the marker too
            return _plain_line(conversation)
        pieces = [parts[0]]
        for text, part in zip(texts, parts[1:]):
            pieces.append(text)
            pieces.append(part)
        pieces.append("\n")
        texts.clear()
        return "".join(pieces)


class _Inputs:
    """A thread's calls' ``input_messages`` as stand-ins (``serialize.InputMessages``)."""

    __slots__ = ("_histories",)

    def __init__(self, histories: Histories) -> None:
        self._histories = histories

    def __call__(self, call: CallRecord) -> _Written | None:
        histories = self._histories
        messages = histories.input_messages(call)
        if messages is None:
            return None
        made = histories.made
        return _Written("[" + ", ".join([made(m, _message_text) for m in messages]) + "]")


def _plain_line(conversation: Conversation) -> str:
    chunks = json_chunks(conversation_dict(conversation))
    chunks.append("\n")
    return "".join(chunks)
