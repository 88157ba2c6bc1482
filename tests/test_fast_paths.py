"""The hot paths bench/ made faster give the same results as the general code they skip."""

from __future__ import annotations

import gc
from pathlib import Path
from types import MappingProxyType

import pytest

from fixtures.replay import raw_conversation as raw
from otel_lunary._content import ContentPolicy, _encoder, genai_message, genai_message_json, to_json
from otel_lunary._settings import resolve_settings
from otel_lunary.attributes import LUNARY_MESSAGE_ID, LUNARY_SPAN_TYPE
from otel_lunary.export.otlp_json import encode_line
from otel_lunary.replay.reader import FULL_COLLECTION_THRESHOLD, read_file

POLICIES = {
    "capture": {},
    "no capture": {"capture_content": False},
    "redact and cut": {"redact": lambda text: text.upper(), "max_content_length": 5},
    "redaction fails": {"redact": lambda text: 1 / 0},
    "at the limit": {"max_content_length": 17},  # len('hello "world" é \n'): kept whole
    "one over the limit": {"max_content_length": 16},
}


@pytest.mark.parametrize("settings", POLICIES.values(), ids=POLICIES.keys())
def test_a_plain_dict_records_what_a_read_only_mapping_records(recorded, settings: dict) -> None:
    """A plain dict message (the fast branch) and the same message as a read-only mapping
    (the general one) give spans with the same attributes, in the same order."""
    import otel_lunary as lunary

    lunary.configure(tracer_provider=recorded.provider, **settings)
    thread = lunary.open_thread(tags=["support"], user_id="u1")
    for role in ("user", "assistant", "System", "tool"):
        for content in ('hello "world" é \n', "", None):
            for user in ((None, None), ("u2", {"plan": "pro"})):
                message = {"role": role, "content": content}
                thread.track_message(message, *user)
                thread.track_message(MappingProxyType(message), *user)
                fast, general = [span for span in recorded.all() if span.attributes.get(LUNARY_SPAN_TYPE) == "message"][-2:]
                assert [k for k in fast.attributes if k != LUNARY_MESSAGE_ID] == [k for k in general.attributes if k != LUNARY_MESSAGE_ID]
                assert {**fast.attributes, LUNARY_MESSAGE_ID: None} == {**general.attributes, LUNARY_MESSAGE_ID: None}


@pytest.mark.parametrize("settings", POLICIES.values(), ids=POLICIES.keys())
def test_a_plain_dict_turn_shows_what_a_read_only_mapping_turn_shows(recorded, settings: dict) -> None:
    """A turn opened and answered by plain dicts (whose text the turn takes as written,
    without parsing the content JSON back) and one opened and answered by the same messages
    as read-only mappings carry the same input, output and truncation mark, in the same order."""
    import otel_lunary as lunary
    from otel_lunary.attributes import GEN_AI_CONVERSATION_ID

    lunary.configure(tracer_provider=recorded.provider, **settings)
    for content in ('hello "world" é \n', "", "\ud800 \u2028 {}"):
        for wrap in (dict, MappingProxyType):
            thread = lunary.open_thread(tags=["support"], user_id="u1")
            thread.track_message(wrap({"role": "user", "content": content}))
            thread.track_message(wrap({"role": "assistant", "content": content[::-1]}))
        fast, general = [span for span in recorded.all() if span.attributes.get(LUNARY_SPAN_TYPE) == "turn"][-2:]
        assert [k for k in fast.attributes] == [k for k in general.attributes]
        assert {**fast.attributes, GEN_AI_CONVERSATION_ID: None} == {**general.attributes, GEN_AI_CONVERSATION_ID: None}


def test_a_thumb_records_what_the_general_feedback_path_records(recorded) -> None:
    """A thumb up or down (the fast branch) gives the feedback span and events the general
    branch gives the same feedback spelled with str subclasses, which it does not take."""
    import otel_lunary as lunary
    from otel_lunary.attributes import SPAN_NAME_LUNARY_FEEDBACK

    class Text(str):
        pass

    message_id = lunary.open_thread().track_message({"role": "user", "content": "hi"})
    for thumb in ("up", "down", None):
        lunary.track_feedback(message_id, {"thumb": thumb, "comment": "ok", "score": 3})
        lunary.track_feedback(message_id, {Text("thumb"): None if thumb is None else Text(thumb), "comment": "ok", "score": 3})
        fast, general = [span for span in recorded.all() if span.name == SPAN_NAME_LUNARY_FEEDBACK][-2:]
        assert list(fast.attributes.items()) == list(general.attributes.items())
        assert [(e.name, list(e.attributes.items())) for e in fast.events] == [(e.name, list(e.attributes.items())) for e in general.events]


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": ["a", {"type": "text", "text": "b"}], "name": "bob"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "assistant", "content": "x", "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "content": "result", "tool_call_id": "1"},
        {"role": "user", "content": 123, "name": 5},
        {"role": "user", "content": []},
        {"role": None, "content": "x"},
    ],
)
def test_genai_message_json_is_to_json(message: dict) -> None:
    """The hand-built GenAI message JSON is byte for byte what to_json gives for the same message."""
    structured = genai_message(message, ContentPolicy(resolve_settings()))
    assert genai_message_json(structured) == to_json([structured])


def test_to_json_matches_the_encoder() -> None:
    """to_json gives what the JSON encoder gives for every kind of value, and a repr for a cycle."""
    cyclic: list = [1]
    cyclic.append(cyclic)
    for value in ["x", "é\ud800", 1, 1.5, float("nan"), None, True, {"a": {1}}, {1: 2, None: 3}, [b"bytes"], {"k": ["\u2028"]}, 10**30]:
        assert to_json(value) == _encoder.encode(value)
    assert to_json(cyclic) == '"[1, [...]]"'  # the cycle falls back to the repr, as before


def test_reader_restores_gc_thresholds(tmp_path: Path) -> None:
    """Reading raises the full-collection threshold and puts the old thresholds back, even when closed early."""
    path = tmp_path / "spans.jsonl"
    path.write_bytes(b"".join(encode_line([span]) for span in raw.record()))
    before = gc.get_threshold()
    reader = read_file(path, lambda problem: None)
    next(reader)
    assert gc.get_threshold() == (*before[:2], max(before[2], FULL_COLLECTION_THRESHOLD))
    reader.close()  # abandoned half-way
    assert gc.get_threshold() == before
    assert sum(1 for _ in read_file(path, lambda problem: None)) == len(raw.record())
    assert gc.get_threshold() == before


def test_format_message_id_is_the_traceparent() -> None:
    """format_message_id is the W3C traceparent of the span context, and parses back to the same span."""
    from opentelemetry.trace import SpanContext, TraceFlags

    from otel_lunary.ids import format_message_id, parse_message_id

    # twice each, and two spans per trace in a row: the second reuses the trace's part
    cases = [(1, 1, 0), (1, 2, 1), (2**128 - 1, 2**64 - 1, 1), (2**128 - 1, 7, 1), (0xABC << 100, 0x5, 0x3), (1, 1, 0)]
    for trace_id, span_id, flags in cases + cases:
        context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(flags))
        expected = "00-%032x-%016x-%02x" % (context.trace_id, context.span_id, context.trace_flags)
        assert format_message_id(context) == expected
        assert parse_message_id(expected).span_id == span_id


def test_message_index_stays_out_of_the_collector_and_gives_back_the_span(recorded) -> None:
    """The message index holds nothing the garbage collector tracks after one collection
    (an app's full collections never walk it), and a message id still resolves to the
    exact span context and conversation that were stored, trace state included."""
    from opentelemetry.trace import SpanContext, TraceFlags
    from opentelemetry.trace.span import TraceState

    import otel_lunary as lunary
    from otel_lunary import _state

    thread = lunary.open_thread()
    message_id = thread.track_message({"role": "user", "content": "hi"})
    stored = SpanContext(7, 9, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1"), ("b", "2")]))
    _state.messages.put("m-remote", _state.MessageRef(stored, "conv-1"))
    gc.collect()
    entries = list(_state.messages._items.values())
    assert entries and not any(gc.is_tracked(entry) for entry in entries)
    found = _state.resolve("m-remote")
    assert found == _state.MessageRef(stored, "conv-1")
    assert found.span_context.trace_state.to_header() == "vendor=v1,b=2"
    assert found.span_context.is_remote and found.span_context.trace_flags == TraceFlags(1)
    mine = _state.resolve(message_id)
    assert mine is not None and mine.conversation_id == thread.id
    assert mine.span_context == recorded.all()[-1].get_span_context()


def test_slimmed_spans_read_the_same() -> None:
    """slim() (queued spans hold fewer GC-tracked objects) changes nothing an exporter
    reads: attributes, events, links and their dropped counts, for spans with none, some,
    or only dropped ones; and both encoders give the same bytes before and after."""
    from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
    from opentelemetry.trace import Link, SpanContext

    from otel_lunary._adoption import slim
    from otel_lunary.export.otlp_proto import encode_request

    def spans(limits: SpanLimits) -> list:
        ended: list = []

        class Keep(SpanProcessor):
            def on_end(self, span) -> None:
                ended.append(span)

        provider = TracerProvider(span_limits=limits)
        provider.add_span_processor(Keep())
        tracer = provider.get_tracer("t")
        tracer.start_span("plain", attributes={"a": "b", "tags": ["x", "y"]}).end()
        with_all = tracer.start_span("full", links=[Link(SpanContext(1, 2, False))])
        with_all.add_event("e", {"k": 1})
        with_all.set_attributes({f"n{i}": i for i in range(200)})  # over the default 128: some dropped
        with_all.end()
        return ended

    for limits in (SpanLimits(), SpanLimits(max_events=0, max_links=0)):
        for span in spans(limits):
            seen = (dict(span.attributes), span.dropped_attributes, span.events, span.links, span.dropped_events, span.dropped_links)
            slim(span)
            assert (dict(span.attributes), span.dropped_attributes, span.events, span.links, span.dropped_events, span.dropped_links) == seen
            assert type(span.attributes).__name__ == "mappingproxy"
            line, request = encode_line([span]), encode_request([span])
            slim(span)
            assert (encode_line([span]), encode_request([span])) == (line, request)
    plain = spans(SpanLimits())[0]
    slim(plain)
    assert plain._events == () and plain._links == () and type(plain._attributes) is dict
    full = spans(SpanLimits())[1]
    slim(full)
    assert full.dropped_attributes == 72 and len(full.events) == 1 and len(full.links) == 1


def test_application_provider_answers_as_get_tracer_provider_does() -> None:
    """The fast 'no application provider' answer agrees with the API's get_tracer_provider()
    in a fresh interpreter: nothing set, then OTEL_PYTHON_TRACER_PROVIDER exported after
    the first tracking call (the API loads it), then removed again (loaded for good)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import os
        from opentelemetry import trace
        import otel_lunary as lunary
        from otel_lunary._adoption import application_provider

        os.environ.pop("OTEL_PYTHON_TRACER_PROVIDER", None)
        lunary.open_thread().track_message({"role": "user", "content": "hi"})
        assert application_provider() is None
        os.environ["OTEL_PYTHON_TRACER_PROVIDER"] = "sdk_tracer_provider"
        found = application_provider()
        assert found is not None and found is trace.get_tracer_provider(), found
        del os.environ["OTEL_PYTHON_TRACER_PROVIDER"]
        assert application_provider() is found
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
