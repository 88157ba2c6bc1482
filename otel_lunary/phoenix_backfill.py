"""``otel-lunary annotate``: write recorded feedback into Phoenix as annotations, after the fact.

Reads conversations from any source replay reads (files, ``--jaeger``; by default the
target Phoenix itself, whose spans hold the feedback events it cannot show), keeps the
ones replay's filters keep, and for every message with feedback sets each live key's
annotations (``phoenix_feedback.feedback_annotations``, the live sink's mapping) and
deletes those of keys the user removed. The identifiers are the live sink's, so a run
after the sink, or a second run, rewrites the same annotations instead of adding copies.

Exit status: 0 when every annotation landed, 1 when no source could be read or some
annotation did not land (the counts say why), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from otel_lunary._content import ContentPolicy
from otel_lunary._settings import Settings
from otel_lunary._record import evaluation_attributes
from otel_lunary.phoenix_feedback import Annotation, PhoenixAnnotationSink, feedback_annotations, resolve_endpoint
from otel_lunary.replay.command import ProblemReport, add_filter_arguments, add_source_arguments, filters_of, read_conversations, sources_of
from otel_lunary.replay.model import Conversation, Message
from otel_lunary.replay.reader import PhoenixSource

DEFAULT_WAIT_S = 10.0
# Recorded feedback already went through the content policy (redaction, length bound)
# when it was tracked; mapping it again must not alter it.
_AS_RECORDED = ContentPolicy(Settings(capture_content=True, max_content_length=sys.maxsize))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Write recorded user feedback into Phoenix as annotations (on the turn's trace and the message span)."
    parser.add_argument("--phoenix", dest="phoenix_target", required=True, metavar="URL", help="the Phoenix to annotate, e.g. http://localhost:6006; also the source when no SOURCE or --jaeger is given ($PHOENIX_API_KEY is sent to it when set)")
    add_source_arguments(parser, phoenix=False, default="the Phoenix given by --phoenix (its --project)")
    add_filter_arguments(parser)
    parser.add_argument("--wait", type=float, default=DEFAULT_WAIT_S, metavar="SECONDS", help="how long to retry an annotation whose span Phoenix does not have (default: %(default)s)")


def message_annotations(message: Message, conversation_id: str) -> list[Annotation]:
    """The annotations for ``message``'s feedback: each latest value set, each removed key deleted."""
    latest: dict[str, Any] = message.feedback
    removed = sorted({change.key for change in message.feedback_history} - set(latest))
    evaluations = [evaluation_attributes(key, value, _AS_RECORDED) for key, value in latest.items()]
    evaluations += [evaluation_attributes(key, None, _AS_RECORDED) for key in removed]
    return feedback_annotations(message.trace_id, message.span_id, evaluations, message_id=message.id, conversation_id=conversation_id)


def conversation_annotations(conversations: Iterable[Conversation]) -> tuple[list[Annotation], int]:
    """Every annotation for ``conversations``, and how many messages had feedback."""
    annotations: list[Annotation] = []
    messages = 0
    for conversation in conversations:
        for message in conversation.messages:
            if message.feedback_history or message.feedback:
                messages += 1
                annotations.extend(message_annotations(message, conversation.id))
    return annotations, messages


def annotate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """The command body, with streams passed in for tests."""
    try:
        target = resolve_endpoint(args.phoenix_target)
        filters = filters_of(args)
        if target is None:
            raise ValueError("--phoenix needs Phoenix's URL")
        if not args.wait > 0:
            raise ValueError(f"--wait must be > 0, got {args.wait}")
    except ValueError as exc:
        err.write(f"otel-lunary annotate: {exc}\n")
        return 2
    sources = sources_of(args, default=PhoenixSource(target, args.project))
    report = ProblemReport(err, "annotate")
    conversations, spans_read = read_conversations(sources, filters, report)
    if spans_read == 0 and report.count:  # e.g. Phoenix refused the read (401): not "nothing to do"
        err.write("otel-lunary annotate: no span could be read; nothing written\n")
        return 1
    annotations, messages = conversation_annotations(conversations)
    sink = PhoenixAnnotationSink(target, max_queue=max(1, len(annotations)), ingestion_wait_s=args.wait)
    sink.submit(annotations)
    sink.flush()
    sink.shutdown(timeout=1.0)
    counts = sink.counts()
    failed = sum(n for key, n in counts.items() if key.startswith("dropped_"))
    out.write(
        f"otel-lunary annotate: {len(conversations)} conversations, {messages} messages with feedback, "
        f"{spans_read} spans read; Phoenix at {target}: {counts['written']} annotations written, "
        f"{counts['removed']} removals applied (each on the trace and the message span)"
        + (f"; {failed} failed: " + ", ".join(f"{key[len('dropped_'):]} {n}" for key, n in counts.items() if key.startswith("dropped_") and n) if failed else "")
        + "\n"
    )
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    return annotate(args, sys.stdout, sys.stderr)
