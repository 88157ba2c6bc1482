"""Hostile input to the bridge: what one client sends never costs another client's events.

Browser app keys are public, so anyone can post anything. Each test first sends the
attack, then checks that the good events sent beside it still reach a real collector
(rotel, forwarding to an OTLP sink) and that the attacker gets a reason.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_lunary import export
from otel_lunary._settings import resolve_settings
from otel_lunary.attributes import LUNARY_MESSAGE_ID
from otel_lunary.bridge import Bridge, resolve_config
from helpers.servers import OtlpSink, poll_until, start_rotel

INGEST = "/v1/runs/ingest"
GOOD_KEY, BAD_KEY = "pk-good", "pk-bad"

pytestmark = pytest.mark.usefixtures("clean_otel_env")


def chat(run_id: str, timestamp: object = 1795924374366, role: str = "user") -> dict:
    return {"event": "chat", "type": "thread", "runId": run_id, "parentRunId": "thread-h", "timestamp": timestamp,
            "message": {"role": role, "content": "hi"}}


def post(url: str, key: str, body: bytes | dict) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url + INGEST, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, content=content, timeout=30)


# (case, raw JSON of one hostile event; a literal NaN is what Python's json accepts)
OUT_OF_RANGE = [
    ("year 9999 ISO", json.dumps(chat("bad", "9999-12-31T23:59:59+00:00"))),
    ("epoch ms 1e14", json.dumps(chat("bad", 1e14))),
    ("epoch ms 10**17 as an int", json.dumps(chat("bad", 10**17))),
    ("before 1970 ISO", json.dumps(chat("bad", "1969-07-20T20:17:40+00:00"))),
    ("NaN", json.dumps(chat("bad", 0)).replace('"timestamp": 0', '"timestamp": NaN')),
    ("run end in year 9999", json.dumps({"event": "end", "type": "tool", "runId": "bad", "timestamp": "9999-01-01T00:00:00Z", "output": "x"})),
    ("token count past int64", json.dumps({"event": "end", "type": "llm", "runId": "bad", "timestamp": 1795924374366,
                                           "tokensUsage": {"prompt": 10**30, "completion": 1}})),
]


@pytest.mark.parametrize(("case", "hostile"), OUT_OF_RANGE, ids=[c[0] for c in OUT_OF_RANGE])
def test_a_value_outside_otlp_range_costs_no_other_event(tmp_path: Path, sink: OtlpSink, case: str, hostile: str) -> None:
    """An out-of-range timestamp or number is refused (or made representable) with a reason; 50 good events of the same project all reach the collector."""
    with start_rotel(tmp_path / "rotel", export_endpoint=sink.endpoint) as rotel:
        config = resolve_config(keys=f"{GOOD_KEY}=shop,{BAD_KEY}=shop", port=0, state_path=str(tmp_path / "state.sqlite"))
        options = export.ExportOptions(exporter="otlp", endpoint=rotel.http_endpoint)
        bridge = Bridge(config, export_options=options, settings=resolve_settings(capture_content=True)).start()
        try:
            answer = post(bridge.url, BAD_KEY, b'{"events": [' + hostile.encode() + b"]}")
            assert answer.status_code == 200, answer.text
            (result,) = answer.json()["results"]
            if not result["success"]:
                assert "timestamp" in result["error"] or "range" in result["error"], result
            good = [chat(f"good-{i}-{uuid.uuid4()}") for i in range(50)]
            assert all(r["success"] for r in post(bridge.url, GOOD_KEY, {"events": good}).json()["results"])
            bridge.flush()
            wanted = {event["runId"] for event in good}

            def arrived() -> set[str]:
                return wanted & {kv.value.string_value for span in list(sink.spans) for kv in span.attributes if kv.key == LUNARY_MESSAGE_ID}

            poll_until(lambda: arrived() == wanted, timeout=30, what=f"the 50 good events (got {len(arrived())})")
        finally:
            bridge.close()


class RefusesOneName(InMemorySpanExporter):
    """An exporter (a collector, in effect) that refuses every batch holding a span of one name."""

    def __init__(self, refused_name: str) -> None:
        super().__init__()
        self.refused_name = refused_name

    def export(self, spans):  # type: ignore[no-untyped-def]
        if any(span.name == self.refused_name for span in spans):
            return SpanExportResult.FAILURE
        return super().export(spans)


def test_a_span_the_exporter_refuses_alone_does_not_hold_the_others(tmp_path: Path) -> None:
    """A span the destination refuses on its own is dropped and counted; the 50 spans around it are delivered."""
    exporter = RefusesOneName("event poison")
    config = resolve_config(keys=f"{GOOD_KEY}=shop", port=0, state_path=str(tmp_path / "state.sqlite"))
    bridge = Bridge(config, [exporter], settings=resolve_settings(capture_content=True)).start()
    try:
        good = [chat(f"good-{i}") for i in range(50)]
        poison = {"event": "custom-event", "type": "thread", "name": "poison", "runId": "p-1", "parentRunId": "thread-h", "timestamp": 1795924374366}
        assert all(r["success"] for r in post(bridge.url, GOOD_KEY, {"events": [*good[:25], poison, *good[25:]]}).json()["results"])
        assert bridge.flush(30)
        delivered = {span.attributes[LUNARY_MESSAGE_ID] for span in exporter.get_finished_spans() if LUNARY_MESSAGE_ID in span.attributes}
        assert delivered == {event["runId"] for event in good}
        assert httpx.get(bridge.url + "/healthz", timeout=10).json()["undeliverable"] == 1
    finally:
        bridge.close()
