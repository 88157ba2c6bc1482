"""Shared fixtures: the real OTel SDK with an in-memory exporter as the global provider.

OTel lets a process set the global TracerProvider once, so it is set here, at import,
for the whole session; each test gets a cleared exporter and a fresh otel-lunary setup.
Instrumentation that uses the global provider (OpenAI, HTTP) lands in the same exporter.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import openai
import pytest
from hypothesis import HealthCheck, settings
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_lunary as lunary
from otel_lunary import _health

# CI is a loaded 2-core machine: Hypothesis must fail on the code, never on how fast the
# machine generated inputs or ran one example. Every property test runs under this profile.
settings.register_profile(
    "otel-lunary",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
settings.load_profile("otel-lunary")
from otel_lunary._fake_llm import FakeLLM
from fixtures.rerun_recordings import Recording, record_all
from helpers.servers import OtlpSink

MEMORY = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(MEMORY))
trace.set_tracer_provider(PROVIDER)


class Recorded:
    """The spans a test produced, with the lookups the assertions need."""

    def __init__(self, exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
        self._exporter = exporter
        self.provider = provider

    def all(self) -> list[ReadableSpan]:
        return list(self._exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.all() if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.all()]}"
        return found[0]

    def by_span_id(self, span_id: int) -> ReadableSpan | None:
        return next((span for span in self.all() if span.context.span_id == span_id), None)

    def ancestors(self, span: ReadableSpan) -> list[int]:
        """Span ids from the parent up to the root, as far as they were recorded here."""
        chain = []
        parent = span.parent
        while parent is not None:
            chain.append(parent.span_id)
            found = self.by_span_id(parent.span_id)
            parent = found.parent if found is not None else None
        return chain


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    """A real OTLP/HTTP receiver on 127.0.0.1 that keeps what reached it."""
    server = OtlpSink().start()
    yield server
    server.stop()


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    """A local OpenAI-compatible server (otel_lunary._fake_llm) keeping the request bodies."""
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """The conversations of tests/fixtures/rerun_recordings.py, recorded once per rerun test module."""
    return record_all(tmp_path_factory.mktemp("recorded"))


@pytest.fixture
def client(llm: FakeLLM) -> openai.OpenAI:
    """The real ``openai`` client on the fake model, wrapped by ``lunary.monitor``; no retries,
    so a failed call is one request."""
    return lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0))


@pytest.fixture
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variable from the machine or the CI leaks into a test of settings."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorded]:
    """otel-lunary configured on the global SDK provider, content capture at its default."""
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    MEMORY.clear()
    _health.reset()
    lunary.configure(tracer_provider=PROVIDER)
    yield Recorded(MEMORY, PROVIDER)
    lunary.shutdown()
    MEMORY.clear()
