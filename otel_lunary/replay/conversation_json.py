"""A conversation's JSON output line, its LLM calls' message lists written from their text.

The JSON output holds every LLM call's input history in full, and a chat model is sent
the whole conversation on every call: parsing each history whole and encoding it again
cost 19k instructions a span of the 227k the JSON format spent on realistic recordings.
``message_json`` writes those lists from their text, each message once per thread; this
module puts that text into the line.

The encoder cannot take text it must not escape, so the conversation is encoded with a
stand-in (``message_json.Written``) in each list's place, which the encoder hands to
``default``: that notes its text, in the order the encoder meets them, and gives a
marker string, whose encoding is then replaced by those texts in that order. When the
encoding holds the marker more often than there were stand-ins (data that contains the
marker itself), or anything on the way raises, the line is made the plain way, so the
output is always ``json.dumps(conversation_dict(conversation), ensure_ascii=False, default=str)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otel_lunary.replay.content import chunk_encoder, json_chunks
from otel_lunary.replay.message_json import ThreadMessages, Written
from otel_lunary.replay.model import Conversation
from otel_lunary.replay.serialize import conversation_dict

MARKER = "\x00otel-lunary: messages written apart\x00"
"""What a message list's stand-in is encoded as (a string data is most unlikely to hold)."""

_ENCODED_MARKER = "".join(json_chunks(MARKER))


class ConversationJson:
    """Writes conversations' JSON lines (make one per output: it keeps the texts of the
    stand-ins of the line being made)."""

    __slots__ = ("_texts", "_encode")

    def __init__(self) -> None:
        self._texts: list[str] = []
        texts = self._texts

        def default(value: Any) -> Any:
            if type(value) is Written:
                texts.append(value.text)
                return MARKER
            return str(value)

        self._encode: Callable[[Any], list[str]] = chunk_encoder(default)  # json_chunks' options, this default

    def line(self, conversation: Conversation) -> str:
        """``json.dumps(conversation_dict(conversation), ensure_ascii=False, default=str) + "\\n"``."""
        line = self.spliced(conversation)
        return plain_line(conversation) if line is None else line

    def spliced(self, conversation: Conversation) -> str | None:
        """``line(conversation)`` with the message lists written from their text, or None
        when it must be made the plain way (``plain_line``). The caller makes it: where
        it stands on the stack decides whether a history nested near the recursion limit
        parses, so ``render`` makes it where it always did."""
        texts = self._texts
        texts.clear()
        try:
            chunks = self._encode(conversation_dict(conversation, ThreadMessages()))
        except Exception:  # whatever it is, the plain way meets it too (or not) and raises it itself, outside this block
            return None
        if not texts:
            chunks.append("\n")
            return "".join(chunks)
        parts = "".join(chunks).split(_ENCODED_MARKER)
        if len(parts) != len(texts) + 1:  # the data holds the marker too
            return None
        pieces = [parts[0]]
        for text, part in zip(texts, parts[1:]):
            pieces.append(text)
            pieces.append(part)
        pieces.append("\n")
        texts.clear()
        return "".join(pieces)


def plain_line(conversation: Conversation) -> str:
    """The line made the plain way: ``conversation_dict`` encoded whole."""
    chunks = json_chunks(conversation_dict(conversation))
    chunks.append("\n")
    return "".join(chunks)
