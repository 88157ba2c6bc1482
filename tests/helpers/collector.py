"""The real OpenTelemetry Collector and Jaeger v2, built from source, for the live tests.

``bash collector-config/build.sh`` builds ``otelcol-lunary`` (a Collector holding exactly
the components collector-config/ uses) and ``jaeger`` into ``.otel-bin/``; ``.ci/run``
calls it. ``binaries()`` finds them: when they are missing a test is skipped with the
reason, except under ``CI=true``, where it fails, so a CI run cannot pass without them.

``start_collector`` runs one config file from collector-config/ as a user would, with
its listeners (OTLP receivers, health check, Prometheus exporter) moved to free ports on
127.0.0.1 by ``--set`` and the Collector's own metrics listener switched off, so several
collectors and other tests' servers share the machine. ``start_jaeger`` runs Jaeger v2
with collector-config/jaeger/jaeger-v2.yaml on free ports.

The conversation helpers track through the public otel-lunary API with the real OTel
SDK exporting OTLP/HTTP, and read results back with the ``otel-lunary`` command.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_lunary as lunary
from helpers.servers import StopsOnExit, free_port, log_tail, poll_until, stop_process

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "collector-config"
BUILD_SCRIPT = CONFIG_DIR / "build.sh"
JAEGER_CONFIG = CONFIG_DIR / "jaeger" / "jaeger-v2.yaml"
HOST = "127.0.0.1"


# ---------------------------------------------------------------- binaries


@dataclass(frozen=True)
class Binaries:
    otelcol: Path
    jaeger: Path


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def binaries() -> Binaries:
    """The built binaries; skip (fail under CI=true) when they are not there."""
    printed = subprocess.run(["bash", str(BUILD_SCRIPT), "--print"], capture_output=True, text=True, timeout=60)
    paths = dict(line.split("=", 1) for line in printed.stdout.splitlines() if "=" in line)
    found = Binaries(Path(paths.get("OTELCOL", "")), Path(paths.get("JAEGER", "")))
    missing = [str(p) for p in (found.otelcol, found.jaeger) if not p.is_file()]
    if printed.returncode != 0 or missing:
        reason = (
            f"the Collector and Jaeger are not built ({', '.join(missing) or printed.stderr.strip()}): "
            "run `bash collector-config/build.sh` (needs Go and the Go module proxy)"
        )
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    return found


# ---------------------------------------------------------------- processes


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def free_port_on(host: str) -> int:
    """A TCP port free on ``host`` and on 127.0.0.1 (so one number serves both addresses)."""
    while True:
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, port))
            return port
        except OSError:
            continue


@dataclass
class Process(StopsOnExit):
    """A server started by these helpers; ``stop()`` ends it (SIGTERM, then SIGKILL)."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return log_tail(self.log_path, lines=100_000)

    def stop(self, timeout: float = 15) -> None:
        stop_process(self.popen, timeout)

    def wait_ready(self, check, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{log_tail(self.log_path, lines=40)}")
            if time.monotonic() >= deadline:
                self.stop()
                raise TimeoutError(f"{self.name} not ready within {timeout}s:\n{log_tail(self.log_path, lines=40)}")
            time.sleep(0.1)


def _spawn(name: str, args: list[str], env: Mapping[str, str], log_path: Path, wrap: list[str] | None = None) -> Process:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env.update(env)
    with log_path.open("ab") as log:
        popen = subprocess.Popen((wrap or []) + args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    return Process(name, popen, log_path)


@dataclass
class Collector(Process):
    """otelcol-lunary running a collector-config/ file; the ports its listeners were moved to."""

    host: str = HOST
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def otlp_http(self) -> str:
        """Base URL of the OTLP/HTTP receiver (append /v1/traces)."""
        return f"http://{self.host}:{self.ports['otlp.http']}"

    @property
    def otlp_grpc(self) -> str:
        return f"{self.host}:{self.ports['otlp.grpc']}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.ports['prometheus']}/metrics"


def listener_overrides(config: dict[str, Any], host: str) -> tuple[list[str], dict[str, int]]:
    """``--set`` flags moving every listener of ``config`` to a free port on ``host``."""
    flags = ["--set=service::telemetry::metrics::level=none"]
    ports: dict[str, int] = {}
    for name, receiver in (config.get("receivers") or {}).items():
        if name.split("/")[0] == "otlp":
            for protocol in (receiver or {}).get("protocols") or {}:
                ports[f"otlp.{protocol}"] = port = free_port_on(host)
                flags.append(f"--set=receivers::{name}::protocols::{protocol}::endpoint={host}:{port}")
    for name in config.get("extensions") or {}:
        if name.split("/")[0] == "health_check":
            ports["health"] = port = free_port_on(host)
            flags.append(f"--set=extensions::{name}::endpoint={host}:{port}")
    for name in config.get("exporters") or {}:
        if name.split("/")[0] == "prometheus":
            ports["prometheus"] = port = free_port_on(host)
            flags.append(f"--set=exporters::{name}::endpoint={host}:{port}")
    return flags, ports


def start_collector(
    binary: Path,
    config_name: str,
    tmp_path: Path,
    env: Mapping[str, str] | None = None,
    *,
    host: str = HOST,
    extra: list[str] | None = None,
    wrap: list[str] | None = None,
    startup_timeout: float = 60,
) -> Collector:
    """Run ``collector-config/<config_name>`` and wait for its health check to answer."""
    config_path = CONFIG_DIR / config_name
    flags, ports = listener_overrides(yaml.safe_load(config_path.read_text()), host)
    tmp_path.mkdir(parents=True, exist_ok=True)
    name = f"{config_path.stem}-{ports.get('health', 0)}"
    process = _spawn(name, [str(binary), f"--config={config_path}", *flags, *(extra or [])], env or {}, tmp_path / f"{name}.log", wrap)
    collector = Collector(process.name, process.popen, process.log_path, host=host, ports=ports)
    health = f"http://{host}:{ports['health']}/"
    collector.wait_ready(lambda: _get(health)[0] == 200, timeout=startup_timeout)
    return collector


@dataclass
class Jaeger(Process):
    """Jaeger v2 with in-memory storage; its OTLP gRPC receiver and query API."""

    otlp_grpc: str = ""
    otlp_http: str = ""
    url: str = ""

    def get_json(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params)
        status, body = _get(f"{self.url}{path}" + (f"?{query}" if query else ""), timeout=10)
        if status == 404:
            return None
        assert status == 200, (status, body[:500])
        return json.loads(body)

    def search(self, service: str, tags: Mapping[str, str], limit: int = 100) -> list[dict[str, Any]]:
        """Traces found as the Jaeger UI's search form finds them: service, tags as JSON, a lookback window."""
        now_us = int(time.time() * 1_000_000)
        found = self.get_json(
            "/api/traces",
            service=service,
            tags=json.dumps(dict(tags)),
            start=now_us - 3600 * 1_000_000,
            end=now_us + 60 * 1_000_000,
            limit=limit,
            lookback="1h",
        )
        return (found or {}).get("data") or []

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace by id from the UI's API, or None when Jaeger does not have it."""
        found = self.get_json(f"/api/traces/{trace_id}")
        data = (found or {}).get("data") or []
        return data[0] if data else None

    def services(self) -> list[str]:
        return (self.get_json("/api/services") or {}).get("data") or []


def start_jaeger(binary: Path, tmp_path: Path, startup_timeout: float = 60) -> Jaeger:
    """Jaeger v2 with collector-config/jaeger/jaeger-v2.yaml, every listener on a free port."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    grpc, http, query, query_grpc = (free_port() for _ in range(4))
    env = {
        "JAEGER_OTLP_GRPC_ENDPOINT": f"{HOST}:{grpc}",
        "JAEGER_OTLP_HTTP_ENDPOINT": f"{HOST}:{http}",
        "JAEGER_QUERY_HTTP_ENDPOINT": f"{HOST}:{query}",
        "JAEGER_QUERY_GRPC_ENDPOINT": f"{HOST}:{query_grpc}",
    }
    name = f"jaeger-{query}"
    process = _spawn(name, [str(binary), f"--config={JAEGER_CONFIG}"], env, tmp_path / f"{name}.log")
    jaeger = Jaeger(process.name, process.popen, process.log_path, otlp_grpc=f"{HOST}:{grpc}", otlp_http=f"http://{HOST}:{http}", url=f"http://{HOST}:{query}")
    jaeger.wait_ready(lambda: _get(jaeger.url + "/api/services")[0] == 200, timeout=startup_timeout)
    return jaeger


def jaeger_span_tags(span: dict[str, Any]) -> dict[str, Any]:
    """A span of Jaeger's UI API as {tag key: value}."""
    return {tag["key"]: tag["value"] for tag in span.get("tags") or []}


# ---------------------------------------------------------------- recording


@dataclass
class Turn:
    """One user turn as tracked: the message ids (W3C traceparents) and what was said."""

    question_id: str
    answer_id: str | None
    question: str
    answer: str | None
    model: str
    feedback: list[dict[str, Any]] = field(default_factory=list)

    @property
    def trace_id(self) -> str:
        """The turn's trace: message ids are traceparents (conventions decision 3)."""
        return self.question_id.split("-")[1]


@dataclass
class Recording:
    """What a test tracked, and every span the SDK exported (a copy kept in memory)."""

    sent: InMemorySpanExporter
    service: str
    turns: list[Turn] = field(default_factory=list)

    def spans(self) -> list[ReadableSpan]:
        return list(self.sent.get_finished_spans())

    def spans_of_trace(self, trace_id: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if format(s.context.trace_id, "032x") == trace_id]

    def trace_ids(self) -> set[str]:
        return {format(s.context.trace_id, "032x") for s in self.spans()}


@contextmanager
def recording(otlp_http: str, service: str, **configure: Any) -> Iterator[Recording]:
    """otel-lunary set up on a fresh SDK provider exporting OTLP/HTTP to ``otlp_http``.

    Each span is exported as it ends (SimpleSpanProcessor) and also kept in memory, so
    a test knows exactly what left the process. On exit everything is flushed and the
    provider shut down.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    sent = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp_http + "/v1/traces", timeout=10)))
    provider.add_span_processor(SimpleSpanProcessor(sent))
    lunary.configure(tracer_provider=provider, **configure)
    try:
        yield Recording(sent, service)
    finally:
        lunary.flush(10)
        provider.shutdown()


def fake_client(base_url: str) -> Any:
    """The real ``openai`` client wrapped by ``lunary.monitor``, talking to the fake LLM."""
    return lunary.monitor(openai.OpenAI(base_url=base_url, api_key="test", max_retries=0))


def track_turn(rec: Recording, thread: Any, client: Any, question: str, *, model: str = "gpt-4o-mini") -> Turn:
    """A user question, the LLM call answering it (nested under the question), the answer.

    ``model="error"`` makes the fake LLM answer HTTP 500: the call's span ends with an
    error status and the application apologises instead.
    """
    question_id = thread.track_message({"role": "user", "content": question})
    try:
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}], parent=question_id)
        answer = reply.choices[0].message.content
    except openai.APIError:
        answer = "Sorry, something went wrong."
    answer_id = thread.track_message({"role": "assistant", "content": answer})
    turn = Turn(question_id, answer_id, question, answer, model)
    rec.turns.append(turn)
    return turn


def give_feedback(turn: Turn, feedback: dict[str, Any]) -> None:
    assert turn.answer_id is not None
    lunary.track_feedback(turn.answer_id, feedback)
    turn.feedback.append(feedback)


# ---------------------------------------------------------------- replay


def otel_lunary_command() -> list[str]:
    """The installed ``otel-lunary`` console script of the interpreter running the tests."""
    beside = Path(sys.executable).parent / "otel-lunary"
    found = str(beside) if beside.exists() else shutil.which("otel-lunary")
    assert found, "the otel-lunary command is not installed (pip install -e .)"
    return [found]


def replay(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*otel_lunary_command(), "replay", *args], capture_output=True, text=True, timeout=timeout)


def replay_json(*args: str) -> list[dict[str, Any]]:
    """``otel-lunary replay ARGS --format json``: one object per conversation."""
    done = replay(*args, "--format", "json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def messages_of(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in conversation["items"] if item["type"] == "message"]


def expected_messages(turns: list[Turn]) -> list[tuple[str, str | None]]:
    return [pair for t in turns for pair in (("user", t.question), ("assistant", t.answer))]


def latest_feedback(turn: Turn) -> dict[str, Any]:
    """Lunary's merge of a message's feedback objects: later keys win, None removes."""
    merged: dict[str, Any] = {}
    for feedback in turn.feedback:
        for key, value in feedback.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
    return merged


def wait_for(fn: Any, *, timeout: float, what: str) -> Any:
    return poll_until(fn, timeout=timeout, interval=0.25, what=what)


# ---------------------------------------------------------------- prometheus


@dataclass
class Prometheus(Process):
    """A Prometheus server (Debian's package) scraping one target every second."""

    url: str = ""

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector of ``promql``, as [{"metric": {...}, "value": [time, "number"]}]."""
        status, body = _get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout=10)
        answer = json.loads(body or b"{}")
        assert status == 200 and answer.get("status") == "success", (status, body[:500])
        return answer["data"]["result"]


def prometheus_binary() -> Path:
    """Debian's prometheus (installed by .ci/run); skip (fail under CI=true) when absent."""
    found = shutil.which("prometheus")
    if not found:
        reason = "prometheus is not installed: apt-get install prometheus (.ci/run does)"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    return Path(found)


def start_prometheus(target: str, tmp_path: Path, startup_timeout: float = 60) -> Prometheus:
    """Prometheus on a free port, its TSDB in ``tmp_path``, scraping ``target`` (host:port) each second."""
    binary = prometheus_binary()
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [{"job_name": "otelcol", "static_configs": [{"targets": [target]}]}],
            }
        )
    )
    port = free_port()
    args = [str(binary), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address={HOST}:{port}"]
    process = _spawn(f"prometheus-{port}", args, {}, tmp_path / "prometheus.log")
    prometheus = Prometheus(process.name, process.popen, process.log_path, url=f"http://{HOST}:{port}")
    prometheus.wait_ready(lambda: _get(prometheus.url + "/-/ready")[0] == 200, timeout=startup_timeout)
    return prometheus
