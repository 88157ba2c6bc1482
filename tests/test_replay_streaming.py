"""Replay of files in bounded memory (issue 14 item 3): the same output as reading everything.

Conversations are recorded with the real SDK (LLM calls through the real ``openai`` client
on the fake model, a tool, feedback, an OpenInference LLM call without a conversation id)
and written as OTLP JSON lines in the layouts that make streaming hard: conversations
interleaved across lines, spans out of order, feedback and foreign calls lines later, a
conversation split over a rotated file, gzip, bad lines, and a field order the scan does
not expect. Every format, with and without filters, must be byte for byte what the
whole-input replay writes, on stdout and stderr.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
from pathlib import Path

import openai
import pytest
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import otel_lunary as lunary
from fixtures.replay.sdk_conversation import record
from otel_lunary._fake_llm import FakeLLM
from otel_lunary.attributes import GEN_AI_CONVERSATION_ID, LUNARY_SPAN_TYPE, OPENINFERENCE_SPAN_KIND
from otel_lunary.cli import build_parser
from otel_lunary.export.otlp_json import encode_line
from otel_lunary.replay import lines as line_reader
from otel_lunary.replay import ordered
from otel_lunary.replay.command import _renderer, replay
from otel_lunary.replay.reader import expand_paths
from otel_lunary.replay.streaming import Regroup, StreamingAssembly

OUTPUTS = (
    ("-f", "terminal"),
    ("-f", "terminal", "--no-details"),
    ("-f", "json"),
    ("-f", "markdown"),
    ("-f", "openai"),
    ("-f", "html"),
    ("--list",),
)
MAX_LINE = 64 * 2**20


@pytest.fixture
def spans(recorded, llm: FakeLLM) -> list[ReadableSpan]:
    """Three SDK conversations (two turns, LLM calls, a tool, feedback) and one whose LLM
    call another service recorded with OpenInference, from the message id it was handed,
    under a span no file holds: no conversation id, placed by its trace."""
    for _ in range(3):
        record(recorded.provider)
    thread = lunary.open_thread(tags=["foreign"], user_id="bob")
    question = thread.track_message({"role": "user", "content": "Plan a trip to Paris"})
    assert question is not None
    other_service = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(other_service))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        handed_over = TraceContextTextMapPropagator().extract({"traceparent": question})
        client = openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
        with TracerProvider().get_tracer("web-framework").start_as_current_span("POST /chat", context=handed_over):
            answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Plan a trip to Paris"}])
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    reply = thread.track_message({"role": "assistant", "content": answer.choices[0].message.content})
    lunary.track_feedback(reply, {"thumb": "down"})
    lunary.flush()
    recorded_spans = [*recorded.all(), *other_service.get_finished_spans()]
    assert any(s.attributes.get(OPENINFERENCE_SPAN_KIND) == "LLM" and GEN_AI_CONVERSATION_ID not in s.attributes for s in recorded_spans)
    return recorded_spans


def _conversation_of(spans: list[ReadableSpan]) -> dict[int, str]:
    """Each trace's conversation (foreign spans have none of their own)."""
    by_trace: dict[int, str] = {}
    for span in spans:
        conversation = span.attributes.get(GEN_AI_CONVERSATION_ID)
        if conversation:
            by_trace.setdefault(span.context.trace_id, str(conversation))
    return by_trace


def interleaved(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """The conversations' spans taken in turn: every line holds several conversations."""
    by_trace = _conversation_of(spans)
    queues: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        queues.setdefault(by_trace.get(span.context.trace_id, ""), []).append(span)
    mixed: list[ReadableSpan] = []
    while any(queues.values()):
        for queue in queues.values():
            if queue:
                mixed.append(queue.pop(0))
    return mixed


def lines(spans: list[ReadableSpan], per_line: int) -> list[bytes]:
    return [encode_line(spans[i : i + per_line]) for i in range(0, len(spans), per_line)]


def write(path: Path, content: list[bytes]) -> Path:
    path.write_bytes(b"".join(content))
    return path


def run(*argv: str, streaming: bool) -> tuple[int, str, str]:
    args = build_parser(["replay", *argv]).parse_args(["replay", *argv])
    out, err = io.StringIO(), io.StringIO()
    return replay(args, out, err, streaming=streaming), out.getvalue(), err.getvalue()


def assert_same_output(*argv: str, more: tuple[tuple[str, ...], ...] = ((),)) -> None:
    """Every format (each with each of ``more``'s options) writes the same both ways."""
    for output in OUTPUTS:
        for options in more:
            whole = run(*argv, *output, *options, streaming=False)
            streamed = run(*argv, *output, *options, streaming=True)
            assert streamed == whole, (output, options)
            assert whole[0] == 0


def stream(*files: Path) -> tuple[list[list[str]], StreamingAssembly]:
    """The conversation ids of each group as pass 2 finishes it, and the assembly."""
    finished: list[list[str]] = []
    assembly = StreamingAssembly(expand_paths(list(files)), lambda problem: None, max_line=MAX_LINE)
    assembly.run(lambda conversations: finished.append([c.id for c in conversations]))
    return finished, assembly


def test_interleaved_conversations_replay_the_same(spans: list[ReadableSpan], tmp_path: Path) -> None:
    path = write(tmp_path / "traces.jsonl", lines(interleaved(spans), 3))
    assert_same_output(str(path))
    finished, _ = stream(path)
    assert sorted(c for group in finished for c in group) == sorted(set(_conversation_of(spans).values()))


def test_conversations_are_released_before_the_end_of_the_file(spans: list[ReadableSpan], tmp_path: Path) -> None:
    """Recorded one after the other, each conversation is finished once its last line is read:
    at most two are held at once, not all four."""
    path = write(tmp_path / "traces.jsonl", lines(spans, 4))
    finished, assembly = stream(path)
    assert [len(group) for group in finished] == [1, 1, 1, 1]
    assert assembly.most_open <= 2
    assert assembly.spans_read == len(spans)


def test_spans_out_of_order_across_lines(spans: list[ReadableSpan], tmp_path: Path) -> None:
    """Replies before questions, calls before their messages, lines reversed."""
    shuffled = list(spans)
    random.Random(14).shuffle(shuffled)
    path = write(tmp_path / "traces.jsonl", list(reversed(lines(shuffled, 5))))
    assert_same_output(str(path))
    stream(path)  # no Regroup: the scan's grouping holds


def test_feedback_and_foreign_calls_lines_later(spans: list[ReadableSpan], tmp_path: Path) -> None:
    """Feedback (as from another process) and the OpenInference call arrive after every
    other span, so their conversations stay open until then and are still joined."""
    late = [s for s in spans if s.attributes.get(LUNARY_SPAN_TYPE) == "feedback" or s.attributes.get(OPENINFERENCE_SPAN_KIND)]
    early = [s for s in spans if s not in late]
    path = write(tmp_path / "traces.jsonl", lines(early, 2) + lines(late, 1))
    assert_same_output(str(path))
    _, out, _ = run(str(path), "-f", "json", streaming=True)
    replayed = [json.loads(line) for line in out.splitlines()]
    # each SDK conversation has feedback on two messages, the foreign one on its reply
    assert sum(bool(item.get("feedback")) for c in replayed for item in c["items"]) == 3 * 2 + 1
    foreign = next(c for c in replayed if "foreign" in c["tags"])
    assert [call["kind"] for call in foreign["items"][0]["calls"]] == ["llm"]


def test_a_conversation_split_over_a_rotated_file_and_gzip(spans: list[ReadableSpan], tmp_path: Path) -> None:
    content = lines(interleaved(spans), 3)
    half = len(content) // 2
    older = tmp_path / "traces.jsonl.1.gz"
    older.write_bytes(gzip.compress(b"".join(content[:half])))
    current = write(tmp_path / "traces.jsonl", content[half:])
    os.utime(older, (1, 1))
    assert expand_paths([current]) == [older, current]
    assert_same_output(str(current))
    finished, _ = stream(current)
    assert len([c for group in finished for c in group]) == 4


def test_bad_lines_are_reported_the_same(spans: list[ReadableSpan], tmp_path: Path) -> None:
    content = lines(interleaved(spans), 3)
    content.insert(2, b"not json\n")
    content.append(content[0][:100])  # a truncated last line
    path = write(tmp_path / "traces.jsonl", content)
    status, _, err = run(str(path), streaming=True)
    assert "not valid JSON" in err and "truncated line" in err
    assert_same_output(str(path))


def test_filters_select_the_same_conversations(spans: list[ReadableSpan], tmp_path: Path) -> None:
    path = write(tmp_path / "traces.jsonl", lines(interleaved(spans), 3))
    middle = sorted(s.start_time for s in spans)[len(spans) // 2]
    since = _iso(middle)
    assert_same_output(
        str(path),
        more=(("--user", "alice"), ("--tag", "foreign"), ("--feedback", "thumb=down"), ("--since", since), ("--until", since), ("--user", "nobody"), ("-c", _conversation_of(spans)[spans[0].context.trace_id])),
    )


def _iso(ns: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat()


def _attributes_first(line: bytes) -> bytes:
    """The same request with each span's attributes written before its ids: valid OTLP
    JSON that a producer may write, and not the order the scan expects."""
    request = json.loads(line)
    for resource in request["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            scope["spans"] = [{"attributes": span.pop("attributes", []), **span} for span in scope["spans"]]
    return json.dumps(request).encode() + b"\n"


@pytest.mark.parametrize("per_line", [1, 3])
def test_a_field_order_that_defeats_the_scan_still_replays_right(spans: list[ReadableSpan], tmp_path: Path, per_line: int) -> None:
    """With attributes before ids the scan pairs a span's conversation with the previous
    span's trace (or with none); pass 2 notices and the files are read whole."""
    path = write(tmp_path / "traces.jsonl", [_attributes_first(line) for line in lines(interleaved(spans), per_line)])
    if per_line == 1:
        with pytest.raises(Regroup):
            stream(path)
    assert_same_output(str(path))



def _span_id_first(line: bytes) -> bytes:
    """The same request, compact, with each span's span id written before its trace id."""
    request = json.loads(line)
    for resource in request["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            scope["spans"] = [{"spanId": span.pop("spanId"), **span} for span in scope["spans"]]
    return json.dumps(request, separators=(",", ":")).encode() + b"\n"


def test_compact_json_with_the_trace_id_after_the_span_id_streams_too(spans: list[ReadableSpan], tmp_path: Path) -> None:
    """Another writer's field order (span id first, attributes still after the ids): the
    scan's general path groups those lines, so they stream without falling back."""
    path = write(tmp_path / "traces.jsonl", [_span_id_first(line) for line in lines(interleaved(spans), 3)])
    assert b'{"traceId"' not in path.read_bytes()
    finished, _ = stream(path)
    assert len([c for group in finished for c in group]) == 4
    assert_same_output(str(path))


def test_json_with_blanks_streams_too(spans: list[ReadableSpan], tmp_path: Path) -> None:
    """Lines re-written by ``json.dumps`` (a blank after ``:`` and ``,``), ids first: the
    scan's general path groups them, so they stream, and write the same."""
    blank = [json.dumps(json.loads(line)).encode() + b"\n" for line in lines(interleaved(spans), 3)]
    path = write(tmp_path / "traces.jsonl", blank)
    finished, _ = stream(path)
    assert len([c for group in finished for c in group]) == 4
    assert_same_output(str(path))


def test_feedback_whose_message_is_missing_is_reported_once(spans: list[ReadableSpan], tmp_path: Path) -> None:
    """Messages that got feedback left out (a file lost): one problem line for all of them, as before."""
    feedback_parents = {s.parent.span_id for s in spans if s.attributes.get(LUNARY_SPAN_TYPE) == "feedback" and s.parent is not None}
    kept = [s for s in spans if s.context.span_id not in feedback_parents]
    path = write(tmp_path / "traces.jsonl", lines(interleaved(kept), 3))
    status, _, err = run(str(path), streaming=True)
    assert status == 0
    assert err.count("feedback span(s) name a message not in the input") == 1
    assert_same_output(str(path))


@pytest.mark.slow
def test_the_collector_file_exporter_archive_streams(llm: FakeLLM, tmp_path: Path) -> None:
    """The real Collector's file exporter (collector-config/file-archive.yaml) writes the
    layout the scan expects: two threads whose turns alternate stream without falling
    back, and every format writes what whole-input replay writes."""
    from helpers.collector import binaries, fake_client, give_feedback, recording, start_collector, track_turn, wait_for

    built = binaries()
    archive = tmp_path / "archive"
    archive.mkdir()
    with start_collector(built.otelcol, "file-archive.yaml", tmp_path, {"ARCHIVE_DIR": str(archive)}) as collector:
        with recording(collector.otlp_http, "chatbot-archive") as rec:
            client = fake_client(llm.base_url)
            threads = [lunary.open_thread(tags=["archive"], user_id=user) for user in ("alice", "bob")]
            for question in ("Plan a trip to Paris", "And to Rome?", "Thank you"):
                for thread in threads:
                    give_feedback(track_turn(rec, thread, client, question), {"thumb": "up"})
        total = len(rec.spans())
        wait_for(lambda: _archived(archive) >= total, timeout=30, what="the archive file")
    finished, assembly = stream(archive)
    assert sorted(c for group in finished for c in group) == sorted(t.id for t in threads)
    assert assembly.spans_read == total
    assert_same_output(str(archive))


def _archived(directory: Path) -> int:
    """Spans in the archive's complete lines so far."""
    count = 0
    for path in directory.glob("traces*.jsonl"):
        for line in path.read_bytes().splitlines(keepends=True):
            if line.endswith(b"\n"):
                request = json.loads(line)
                count += sum(len(scope.get("spans", [])) for resource in request.get("resourceSpans", []) for scope in resource.get("scopeSpans", []))
    return count


def test_a_conversation_longer_than_the_spill_slices(recorded, tmp_path: Path) -> None:
    """A conversation whose JSON line is over a million characters (accents, emoji) is
    written to the spill file in slices and read back in chunks: no character split."""
    thread = lunary.open_thread(user_id="carol")
    texts = [f"{n} " + "é🙂x" * 10_000 for n in range(40)]
    for text in texts:
        thread.track_message({"role": "user", "content": text})
    lunary.flush()
    path = write(tmp_path / "traces.jsonl", lines(list(recorded.all()), 1))
    assert_same_output(str(path))
    _, out, _ = run(str(path), "-f", "json", streaming=True)
    assert len(out) > 2**20
    (conversation,) = [json.loads(line) for line in out.splitlines()]
    assert [item["content"] for item in conversation["items"]] == texts


@pytest.mark.parametrize("memory_bytes", [0, 3000, 2**30])
def test_pieces_past_the_memory_budget_are_spilled_and_still_written_in_order(spans: list[ReadableSpan], tmp_path: Path, memory_bytes: int) -> None:
    """Conversations handed over newest first (the reverse of the output's order): with
    no text held (everything spilled), a few pieces held then spilled, or everything held,
    every format writes what rendering the sorted conversations at once writes."""
    path = write(tmp_path / "traces.jsonl", lines(interleaved(spans), 3))
    conversations: list = []
    StreamingAssembly(expand_paths([path]), lambda problem: None, max_line=MAX_LINE).run(conversations.extend)
    conversations.sort(key=lambda c: (c.start_ns, c.id))
    assert len(conversations) == 4
    for output in OUTPUTS:
        args = build_parser(["replay", str(path), *output]).parse_args(["replay", str(path), *output])
        expected = io.StringIO()
        _renderer(args)(conversations, expected)
        collected = ordered.ordered_output(args.format, expected, listing=args.list, details=not args.no_details)
        collected._pieces = ordered._Pieces(memory_bytes)
        try:
            for conversation in reversed(conversations):
                collected.add(conversation)
            written = io.StringIO()
            collected.write(written)
            assert written.getvalue() == expected.getvalue(), output
            if not args.list:  # rows are kept as they are
                if len(expected.getvalue()) > memory_bytes:
                    assert collected._pieces.spilled, output
                if memory_bytes == 2**30:
                    assert not collected._pieces.spilled, output
        finally:
            collected.close()


def test_a_small_memory_budget_streams_the_same_end_to_end(spans: list[ReadableSpan], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command with pieces spilled part of the way through, lines in reverse (so
    conversations finish in an order unlike their start order), writes what whole-input
    replay writes."""
    shuffled = list(spans)
    random.Random(3).shuffle(shuffled)
    path = write(tmp_path / "traces.jsonl", list(reversed(lines(shuffled, 4))))
    monkeypatch.setattr(ordered, "MEMORY_BYTES", 2000)
    assert_same_output(str(path))


def test_lines_longer_than_the_limit_are_skipped_alike_by_both_passes(spans: list[ReadableSpan], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A line over OTEL_LUNARY_REPLAY_MAX_LINE_BYTES in the middle of a file, read by the
    passes in chunks smaller than a line: both skip the same line and count the
    rest alike, so streaming holds (no fallback) and writes the same, problem included."""
    content = lines(interleaved(spans), 2)
    limit = sorted(len(line) for line in content)[len(content) // 2]
    assert any(len(line) > limit for line in content[1:-1])
    path = write(tmp_path / "traces.jsonl", content)
    monkeypatch.setattr(line_reader, "CHUNK", 1000)
    monkeypatch.setenv("OTEL_LUNARY_REPLAY_MAX_LINE_BYTES", str(limit))
    StreamingAssembly(expand_paths([path]), lambda problem: None, max_line=limit).run(lambda conversations: None)
    status, _, err = run(str(path), streaming=True)
    assert "longer than" in err
    assert_same_output(str(path))
