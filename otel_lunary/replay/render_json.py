"""JSON Lines output: one conversation object per line (schema in ``serialize``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from otel_lunary.replay._gc import deferred_collections
from otel_lunary.replay.conversation_json import ConversationJson
from otel_lunary.replay.model import Conversation


@deferred_collections()  # see _gc: rendering makes no cycles either
def render(conversations: Iterable[Conversation], out: TextIO) -> None:
    # each line and its newline in one write (a write is a Python call per piece when
    # streaming); histories written once per message (see conversation_json)
    line = ConversationJson().line
    for conversation in conversations:
        out.write(line(conversation))
