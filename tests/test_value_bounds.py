"""Issue 13 item 14: what a caller or an outsider controls besides content is bounded.

Tags and metadata of a thread ride on every span of the thread, event and run names
become span names, user ids and props ride on every message: a careless caller (or a
hostile client of the bridge) passing megabytes must not make every span megabytes.
Each value is cut to its limit with a visible marker and counted in ``stats()``.
"""

from __future__ import annotations

import json
import uuid

import httpx
from typing import Any

import pytest

import otel_lunary as lunary
from otel_lunary.attributes import (
    GEN_AI_CONVERSATION_ID,
    GEN_AI_EVALUATION_NAME,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
    LUNARY_EVENT_NAME,
    LUNARY_FEEDBACK,
    LUNARY_MESSAGE_ID,
    LUNARY_METADATA,
    LUNARY_THREAD_METADATA,
    LUNARY_THREAD_TAGS,
    LUNARY_USER_PROPS,
    USER_ID,
)
from helpers.bridge import APP_KEY, RunningBridge
from helpers.servers import poll_until

MB = 1024 * 1024
HUGE = "x" * (8 * MB)
# The limits a user gets without configuring anything.
NAME = 256
TAGS = 64
METADATA = 8192
# Content has its own bound (OTEL_LUNARY_MAX_CONTENT_LENGTH), tested in test_content_capture.
CONTENT = frozenset({GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES, GEN_AI_TOOL_CALL_ARGUMENTS, GEN_AI_TOOL_CALL_RESULT})
JSON_VALUES = frozenset({LUNARY_METADATA, LUNARY_THREAD_METADATA, LUNARY_USER_PROPS, LUNARY_FEEDBACK})


def assert_bounded(spans: list[Any]) -> None:
    """No span name, name or id over the name limit, no more tags than the limit, no JSON
    value over (about) the metadata limit: a span of a careless call stays a few KB."""
    assert spans
    for span in spans:
        assert len(span.name) <= NAME + 20, span.name[:80]
        for key, value in (span.attributes or {}).items():
            if key in CONTENT:
                continue
            if isinstance(value, str):
                limit = 2 * METADATA + 64 if key in JSON_VALUES else NAME
                assert len(value) <= limit, f"{span.name[:40]}: {key} has {len(value)} chars"
            elif isinstance(value, tuple):
                assert len(value) <= TAGS, f"{key} has {len(value)} items"
                assert all(len(item) <= NAME for item in value if isinstance(item, str)), key


class TestSdkCalls:
    def test_megabyte_values_from_a_careless_caller_are_cut_on_every_span(self, recorded):
        thread = lunary.open_thread(
            tags=[HUGE, *(f"tag{i}" for i in range(1000))],
            user_id=HUGE,
            user_props={"bio": HUGE},
            metadata={"blob": HUGE},
        )
        msg_id = thread.track_message({"role": "user", "content": "hi", "metadata": {"blob": HUGE}, "tags": [HUGE] * 200})
        thread.track_message({"role": "assistant", "content": "hello", "id": "reply-" + HUGE, "tool_call_id": HUGE})
        thread.track_event("clicked-" + HUGE, metadata={"blob": HUGE}, user_id=HUGE, user_props={"bio": HUGE})
        lunary.track_feedback(msg_id, {"k" + HUGE: 1, "comment": "ok"})

        @lunary.tool("search-" + HUGE, tags=[HUGE], metadata={"blob": HUGE}, user_id=HUGE)
        def search(query: str) -> str:
            return "found"

        with lunary.identify(HUGE, {"bio": HUGE}), lunary.tags(HUGE):
            assert search("q") == "found"

        spans = recorded.all()
        assert len(spans) == 6  # the turn span too: the reply ended it
        assert_bounded(spans)
        assert lunary.stats()["values_truncated"] > 0

        # What is kept: the start of each value, with a visible marker where it was cut.
        event = next(s for s in spans if s.attributes.get(LUNARY_EVENT_NAME))
        assert event.attributes[LUNARY_EVENT_NAME].startswith("clicked-xxx")
        assert event.attributes[LUNARY_EVENT_NAME].endswith("…")
        assert event.name.startswith("clicked-xxx") or "clicked-xxx" in event.name
        tool = next(s for s in spans if s.attributes.get(GEN_AI_TOOL_NAME))
        assert tool.attributes[GEN_AI_TOOL_NAME].startswith("search-xxx")
        assert "search-xxx" in tool.name
        first = spans[0].attributes
        assert first[LUNARY_THREAD_TAGS][0].endswith("…")
        assert list(first[LUNARY_THREAD_TAGS][1:4]) == ["tag0", "tag1", "tag2"]
        cut_metadata = json.loads(first[LUNARY_THREAD_METADATA])
        assert isinstance(cut_metadata, str) and cut_metadata.startswith('{"blob":"xxx') and "truncated" in cut_metadata
        feedback = next(s for s in spans if LUNARY_FEEDBACK in (s.attributes or {}))
        names = [e.attributes[GEN_AI_EVALUATION_NAME] for e in feedback.events]
        assert names[0].startswith("kxxx") and names[1] == "comment"

    def test_values_within_the_limits_are_untouched(self, recorded):
        metadata = {"plan": "pro", "doc": "d" * 4000}
        thread = lunary.open_thread(id="t-" + "i" * 200, tags=[f"t{i}" for i in range(TAGS)], user_id="u" * NAME, metadata=metadata)
        thread.track_event("e" * NAME, metadata=metadata)
        span = recorded.all()[0]
        assert span.attributes[GEN_AI_CONVERSATION_ID] == "t-" + "i" * 200
        assert list(span.attributes[LUNARY_THREAD_TAGS]) == [f"t{i}" for i in range(TAGS)]
        assert span.attributes[USER_ID] == "u" * NAME
        assert json.loads(span.attributes[LUNARY_THREAD_METADATA]) == metadata
        assert json.loads(span.attributes[LUNARY_METADATA]) == metadata
        assert span.attributes[LUNARY_EVENT_NAME] == "e" * NAME
        assert lunary.stats().get("values_truncated", 0) == 0

    def test_a_cut_id_stays_unique_and_the_same_in_every_process(self, recorded):
        """Ids cut to the limit keep a hash of the whole id: two long ids sharing their
        first 300 characters stay two conversations, and the same id is cut the same way
        (a thread resumed by id elsewhere lands in the same conversation)."""
        prefix = "p" * 300
        for suffix in ("a", "b", "a"):
            lunary.open_thread(id=prefix + suffix).track_message({"role": "user", "content": "hi"})
        ids = [span.attributes[GEN_AI_CONVERSATION_ID] for span in recorded.all()]
        assert all(len(i) <= NAME for i in ids)
        assert ids[0] != ids[1] and ids[0] == ids[2]

    def test_a_cut_message_id_still_links_its_feedback(self, recorded):
        thread = lunary.open_thread()
        msg_id = thread.track_message({"role": "user", "content": "hi", "id": "m" * 5000})
        assert msg_id is not None and len(msg_id) <= NAME
        lunary.track_feedback(msg_id, {"thumb": "up"})
        message, feedback = recorded.all()
        assert message.attributes[LUNARY_MESSAGE_ID] == msg_id
        assert feedback.parent.span_id == message.context.span_id


class TestSettings:
    def test_explicit_argument_over_environment_over_default(self, recorded, monkeypatch):
        monkeypatch.setenv("OTEL_LUNARY_MAX_NAME_LENGTH", "50")
        monkeypatch.setenv("OTEL_LUNARY_MAX_TAGS", "3")
        monkeypatch.setenv("OTEL_LUNARY_MAX_METADATA_LENGTH", "100")
        lunary.configure(tracer_provider=recorded.provider)
        thread = lunary.open_thread(tags=list("abcdef"), metadata={"m": "x" * 500})
        thread.track_event("e" * 80)
        lunary.configure(tracer_provider=recorded.provider, max_name_length=60, max_tags=4, max_metadata_length=200)
        thread = lunary.open_thread(tags=list("abcdef"), metadata={"m": "x" * 500})
        thread.track_event("e" * 80)
        from_env, explicit = recorded.all()
        assert len(from_env.attributes[LUNARY_EVENT_NAME]) == 50
        assert list(from_env.attributes[LUNARY_THREAD_TAGS]) == ["a", "b", "c"]
        assert len(json.loads(from_env.attributes[LUNARY_THREAD_METADATA])) < 150
        assert len(explicit.attributes[LUNARY_EVENT_NAME]) == 60
        assert list(explicit.attributes[LUNARY_THREAD_TAGS]) == ["a", "b", "c", "d"]
        assert 200 <= len(json.loads(explicit.attributes[LUNARY_THREAD_METADATA])) < 250

    def test_a_bad_environment_value_warns_and_uses_the_default(self, recorded, monkeypatch, caplog):
        monkeypatch.setenv("OTEL_LUNARY_MAX_NAME_LENGTH", "lots")
        lunary.configure(tracer_provider=recorded.provider)
        lunary.open_thread().track_event("e" * 1000)
        assert len(recorded.all()[0].attributes[LUNARY_EVENT_NAME]) == NAME
        assert "OTEL_LUNARY_MAX_NAME_LENGTH" in caplog.text

    @pytest.mark.parametrize("argument", [{"max_name_length": 0}, {"max_tags": -1}, {"max_metadata_length": "big"}, {"max_name_length": 2.5}])
    def test_a_wrong_argument_is_a_setup_error(self, recorded, argument):
        with pytest.raises(ValueError, match=next(iter(argument))):
            lunary.configure(tracer_provider=recorded.provider, **argument)


class TestBridge:
    """The bridge records through the same layer: a hostile client gets the same bounds."""

    def test_a_hostile_client_cannot_make_spans_megabytes(self, tmp_path):
        bridge = RunningBridge(tmp_path / "state.sqlite", max_body_bytes=16 * MB)
        try:
            big = "x" * (256 * 1024)  # far over every limit; the whole batch stays under the body limit
            thread = f"thread-{uuid.uuid4()}-" + "t" * 400  # the bridge takes ids up to 512 characters
            common = {"parentRunId": thread, "timestamp": 1795924374366, "userId": big, "userProps": {"bio": big},
                      "threadTags": [big, *(f"t{i}" for i in range(200))], "threadMetadata": {"blob": big}}
            events = [
                {"event": "chat", "type": "thread", "runId": "m1", "message": {"role": "user", "content": "hi", "metadata": {"b": big}}, **common},
                {"event": "custom-event", "type": "thread", "runId": "e1", "name": "evt-" + big, "metadata": {"b": big}, **common},
                {"event": "start", "type": "tool", "runId": "r1", "parentRunId": "m1", "name": "tool-" + big, "tags": [big],
                 "metadata": {"b": big}, "userId": big, "timestamp": 1795924374366, "input": "q"},
                {"event": "end", "type": "tool", "runId": "r1", "timestamp": 1795924374400, "output": "a"},
                {"event": "feedback", "type": "thread", "runId": "m1", "feedback": {"k" + big: 1}, "timestamp": 1795924374500},
            ]
            response = httpx.post(f"{bridge.url}/v1/runs/ingest", json={"events": events},
                                  headers={"Authorization": f"Bearer {APP_KEY}"}, timeout=60)
            assert response.status_code == 200
            assert all(result["success"] for result in response.json()["results"]), response.json()
            poll_until(lambda: len(bridge.spans()) == 4, timeout=30, what="the bridge's four spans")
            spans = bridge.spans()
            assert_bounded(spans)
            # still one conversation: the cut thread id is the same on every span
            assert len({span.attributes.get(GEN_AI_CONVERSATION_ID) for span in spans}) == 1
        finally:
            bridge.close()
