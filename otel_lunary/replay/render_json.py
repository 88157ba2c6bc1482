"""JSON Lines output: one conversation object per line (schema in ``serialize``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from otel_lunary.replay._gc import deferred_collections
from otel_lunary.replay.content import json_chunks
from otel_lunary.replay.model import Conversation
from otel_lunary.replay.serialize import conversation_dict


@deferred_collections()  # see _gc: rendering makes no cycles either
def render(conversations: Iterable[Conversation], out: TextIO) -> None:
    for conversation in conversations:
        # json.dumps(..., ensure_ascii=False, default=str) and its newline in one write (a
        # write is a Python call per piece when streaming); its C encoder made once (see
        # content.json_chunks)
        chunks = json_chunks(conversation_dict(conversation))
        chunks.append("\n")
        out.write("".join(chunks))
