"""Rerun: regression-test recorded conversations against a new model or prompt.

Replay rebuilds each conversation (system prompt, questions, tool calls and results,
feedback); rerun sends every recorded turn's history to an OpenAI-compatible endpoint,
answers the tool calls the recording made with the recorded results, and compares the
new reply with the recorded one. The rerun is itself recorded through otel-lunary as a
thread whose message spans link to the originals.

Usage::

    otel-lunary rerun --feedback thumb=down --since 7d --model gpt-4o-mini --fail-on changed

Configuration: ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` (read by the ``openai``
client) choose the endpoint; where the rerun is recorded follows otel-lunary's usual
settings (``OTEL_LUNARY_FILE_PATH``, ``OTEL_EXPORTER_OTLP_*``, see docs/export.md).
"""

from __future__ import annotations

from otel_lunary.rerun.results import ConversationResult, Reply, RerunReport, ToolUse, TurnResult
from otel_lunary.rerun.runner import RerunSettings, Runner
from otel_lunary.rerun.turns import RecordedTools, RecordedTurn, split_turns

__all__ = [
    "ConversationResult",
    "RecordedTools",
    "RecordedTurn",
    "RerunReport",
    "RerunSettings",
    "Reply",
    "Runner",
    "ToolUse",
    "TurnResult",
    "split_turns",
]
