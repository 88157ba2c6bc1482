"""JSON Lines output: one conversation object per line (schema in ``serialize``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from otel_lunary.replay._gc import deferred_collections
from otel_lunary.replay.content import json_chunks
from otel_lunary.replay.item_json import ItemJson
from otel_lunary.replay.model import Conversation
from otel_lunary.replay.serialize import conversation_dict


@deferred_collections()  # see _gc: rendering makes no cycles either
def render(conversations: Iterable[Conversation], out: TextIO) -> None:
    # each line and its newline in one write (a write is a Python call per piece when
    # streaming); each conversation written as text field by field, histories once per
    # message (see item_json)
    written = ItemJson().written
    for conversation in conversations:
        line = written(conversation)
        if line is None:  # the plain way, made here as it always was (see ItemJson.written)
            chunks = json_chunks(conversation_dict(conversation))
            chunks.append("\n")
            line = "".join(chunks)
        out.write(line)
