"""Replay: rebuild Lunary-style conversations from OTLP span data.

Pipeline: ``sources`` turns each source (OTLP JSON Lines files, a Jaeger v3 query,
Phoenix's span API) into a stream of ``SpanRecord`` views whose attributes are decoded
when read; ``Assembler.add`` folds the stream into
``Conversation`` objects keyed by ``gen_ai.conversation.id``; ``filters`` picks some;
a ``render_*`` module writes them (terminal, JSON, Markdown, OpenAI messages, HTML).

Usage::

    from otel_lunary.replay import assemble_file
    for conversation in assemble_file("otel-lunary-traces.jsonl"):
        print(conversation.id, len(conversation.messages))
"""

from __future__ import annotations

from otel_lunary.replay.assemble import Assembler, assemble, assemble_file
from otel_lunary.replay.model import CallRecord, Conversation, CustomEvent, FeedbackChange, Message, ToolCall
from otel_lunary.replay.records import Problem, SpanRecord

__all__ = [
    "Assembler",
    "CallRecord",
    "Conversation",
    "CustomEvent",
    "FeedbackChange",
    "Message",
    "Problem",
    "SpanRecord",
    "ToolCall",
    "assemble",
    "assemble_file",
]
