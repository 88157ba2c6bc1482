"""The collector-config/ scenarios run with the real Collector and the real Jaeger v2.

Each test starts ``otelcol-lunary`` (built from source by collector-config/build.sh) on
one config file exactly as shipped, with only its listeners moved to free ports and its
variables set, tracks conversations through the public otel-lunary API with the real
OTel SDK exporting OTLP/HTTP to it, and asserts on what arrived at the far end: a real
Jaeger v2 (searched through the API its UI uses, and read by ``otel-lunary replay
--jaeger``), an OTLP receiver keeping the raw request bytes, the Collector's own file
archive, or its Prometheus endpoint. Without the binaries the tests skip (fail under
CI=true). Jaeger and the fake LLM are shared by the module; collectors are per test.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import otel_lunary as lunary
from helpers.collector import (
    REPO,
    Binaries,
    Jaeger,
    Recording,
    binaries,
    expected_messages,
    fake_client,
    give_feedback,
    jaeger_span_tags,
    latest_feedback,
    messages_of,
    recording,
    replay,
    replay_json,
    start_collector,
    start_jaeger,
    start_prometheus,
    track_turn,
    wait_for,
)
from otel_lunary._fake_llm import FakeLLM
from helpers.servers import OtlpSink

pytestmark = pytest.mark.slow

CONVERSATION_ID = "gen_ai.conversation.id"


@pytest.fixture(scope="module")
def built() -> Binaries:
    return binaries()


@pytest.fixture(scope="module")
def jaeger(built: Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    with start_jaeger(built.jaeger, tmp_path_factory.mktemp("jaeger")) as server:
        yield server


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def _span_ids_in(trace: dict[str, Any] | None) -> set[str]:
    return {span["spanID"] for span in (trace or {}).get("spans") or []}


def _sent_span_ids(rec: Recording, trace_id: str) -> set[str]:
    return {format(span.context.span_id, "016x") for span in rec.spans_of_trace(trace_id)}


def _feedback_span_ids(rec: Recording, trace_id: str) -> set[str]:
    return {format(s.context.span_id, "016x") for s in rec.spans_of_trace(trace_id) if (s.attributes or {}).get("lunary.span.type") == "feedback"}


@pytest.fixture(scope="module")
def jaeger_conversation(built: Binaries, jaeger: Jaeger, fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> tuple[Recording, str]:
    """A two-turn conversation with feedback, sent SDK -> Collector (jaeger.yaml) -> Jaeger, all arrived."""
    service = "chatbot-jaeger"
    tmp_path = tmp_path_factory.mktemp("jaeger-collector")
    with start_collector(built.otelcol, "jaeger.yaml", tmp_path, {"JAEGER_OTLP_ENDPOINT": jaeger.otlp_grpc}) as collector:
        with recording(collector.otlp_http, service) as rec:
            client = fake_client(fake_llm.base_url)
            thread = lunary.open_thread(tags=["support"], user_id="alice")
            first = track_turn(rec, thread, client, "Plan a trip to Paris")
            give_feedback(first, {"thumb": "up"})
            second = track_turn(rec, thread, client, "Thank you!")
            give_feedback(second, {"thumb": "down", "comment": "too short"})
        wanted = {format(s.context.span_id, "016x") for s in rec.spans()}
        wait_for(lambda: set().union(*(_span_ids_in(jaeger.trace(t)) for t in rec.trace_ids())) >= wanted, timeout=30, what="the conversation in Jaeger")
    return rec, thread.id


class TestJaeger:
    def test_ui_search_by_conversation_tag_finds_every_turn(self, jaeger: Jaeger, jaeger_conversation: tuple[Recording, str]) -> None:
        """Jaeger's own search (service + tag gen_ai.conversation.id, as the UI sends it) returns each turn's whole trace."""
        rec, conversation_id = jaeger_conversation
        traces = jaeger.search(rec.service, {CONVERSATION_ID: conversation_id})
        assert {t["traceID"] for t in traces} == {turn.trace_id for turn in rec.turns}
        assert set().union(*map(_span_ids_in, traces)) == {format(s.context.span_id, "016x") for s in rec.spans()}
        for trace in traces:
            for span in trace["spans"]:
                assert jaeger_span_tags(span).get(CONVERSATION_ID) == conversation_id, span["operationName"]
        assert jaeger.search(rec.service, {CONVERSATION_ID: "no-such-conversation"}) == []

    def test_replay_rebuilds_the_conversation_from_jaeger(self, jaeger: Jaeger, jaeger_conversation: tuple[Recording, str]) -> None:
        """`otel-lunary replay --jaeger URL --jaeger-service S -c ID` gives back the messages, ids and latest feedback."""
        rec, conversation_id = jaeger_conversation
        (conversation,) = replay_json("--jaeger", jaeger.url, "--jaeger-service", rec.service, "-c", conversation_id)
        messages = messages_of(conversation)
        assert [(m["role"], m["content"]) for m in messages] == expected_messages(rec.turns)
        assert [m["id"] for m in messages] == [i for t in rec.turns for i in (t.question_id, t.answer_id)]
        by_id = {m["id"]: m for m in messages}
        assert [by_id[t.answer_id]["feedback"] for t in rec.turns] == [latest_feedback(t) for t in rec.turns]
        listed = replay("--jaeger", jaeger.url, "--jaeger-service", rec.service, "--list")
        assert listed.returncode == 0 and conversation_id in listed.stdout, listed.stderr


class TestTailSampling:
    def test_bad_turns_kept_whole_rest_sampled_feedback_always(self, built: Binaries, jaeger: Jaeger, fake_llm: FakeLLM, tmp_path: Path) -> None:
        """tail-sampling.yaml: thumbs-down (in the decision window) and error turns whole, a share of the rest, every feedback span.

        A thumbs down that comes after the turn's decision joins the turn when the
        baseline had kept it, and arrives alone when the turn was dropped.
        """
        service = "chatbot-sampling"
        env = {
            "BACKEND_OTLP_ENDPOINT": jaeger.otlp_grpc,
            "BACKEND_INSECURE": "true",
            "TAIL_SAMPLING_DECISION_WAIT": "3s",
            "TAIL_SAMPLING_PERCENTAGE": "50",
        }
        with start_collector(built.otelcol, "tail-sampling.yaml", tmp_path, env) as collector:
            with recording(collector.otlp_http, service) as rec:
                client = fake_client(fake_llm.base_url)
                thread = lunary.open_thread(tags=["sampling"])
                down = [track_turn(rec, thread, client, f"question {i} that goes badly") for i in range(8)]
                for turn in down:
                    give_feedback(turn, {"thumb": "down"})
                errors = [track_turn(rec, thread, client, f"question {i} the model fails", model="error") for i in range(4)]
                rest = [track_turn(rec, thread, client, f"ordinary question {i}") for i in range(20)]
                for turn in rest[::2]:
                    give_feedback(turn, {"thumb": "up"})
                late = [track_turn(rec, thread, client, f"question {i} rated later") for i in range(8)]
                # A turn tracked after the others is decided after them: once it is in
                # Jaeger (errors are always kept), every earlier turn has been decided.
                marker = track_turn(rec, thread, client, "marker: decided last", model="error")
                wait_for(lambda: jaeger.trace(marker.trace_id), timeout=45, what="the first decisions")
                for turn in late:
                    give_feedback(turn, {"thumb": "down", "comment": "noticed too late"})
                marker_after = track_turn(rec, thread, client, "marker: after the late feedback", model="error")
            wait_for(lambda: jaeger.trace(marker_after.trace_id), timeout=45, what="the late feedback's decisions")

        def arrived(turn: Any) -> set[str]:
            return _span_ids_in(jaeger.trace(turn.trace_id))

        for turn in down + errors:
            assert arrived(turn) == _sent_span_ids(rec, turn.trace_id), turn.question
        kept_rest = 0
        for turn in rest:
            got, whole, feedback = arrived(turn), _sent_span_ids(rec, turn.trace_id), _feedback_span_ids(rec, turn.trace_id)
            assert got in (whole, feedback), "a turn arrives whole, or only its feedback"
            kept_rest += got == whole
        assert 0 < kept_rest < len(rest), f"{kept_rest} of {len(rest)} ordinary turns kept"
        late_whole = late_alone = 0
        for turn in late:
            got, whole, feedback = arrived(turn), _sent_span_ids(rec, turn.trace_id), _feedback_span_ids(rec, turn.trace_id)
            assert got in (whole, feedback) and feedback, "late thumbs-down feedback is always kept"
            late_whole += got == whole
            late_alone += got == feedback
        sent_spans = len(rec.spans())
        kept_spans = sum(len(arrived(t)) for t in rec.turns)
        print(
            f"tail sampling: {kept_rest}/{len(rest)} ordinary turns kept whole; late thumbs-down: {late_whole} whole, "
            f"{late_alone} feedback only; spans kept {kept_spans}/{sent_spans}"
        )


class TestRedaction:
    def test_no_content_reaches_the_backend(self, built: Binaries, fake_llm: FakeLLM, tmp_path: Path) -> None:
        """redaction.yaml: the bytes the backend receives hold no message text, comment or raw user id; ids and labels stay."""
        secrets = ("Where is my parcel 55-ZX", "You said: Where is my parcel 55-ZX", "the bot was rude", "alice@example.com")
        sink = OtlpSink().start()
        try:
            with start_collector(built.otelcol, "redaction.yaml", tmp_path, {"REDACTED_EXPORT_ENDPOINT": sink.endpoint}) as collector:
                with recording(collector.otlp_http, "chatbot-redaction") as rec:
                    client = fake_client(fake_llm.base_url)
                    thread = lunary.open_thread(tags=["billing"], user_id="alice@example.com")
                    turn = track_turn(rec, thread, client, secrets[0])
                    give_feedback(turn, {"thumb": "down", "comment": secrets[2]})
                sent = len(rec.spans())
                wait_for(lambda: sink.count() >= sent, timeout=30, what="spans through the redacting collector")
        finally:
            sink.stop()
        assert sink.count() == sent
        received = b"".join(sink.bodies)
        for secret in secrets:
            assert secret.encode() not in received, secret
        attributes = [{kv.key: kv.value for kv in span.attributes} for span in sink.spans]
        assert {a[CONVERSATION_ID].string_value for a in attributes} == {thread.id}
        message_ids = {a["lunary.message.id"].string_value for a in attributes if "lunary.message.id" in a}
        assert message_ids == {turn.question_id, turn.answer_id}
        assert {a["user.id"].string_value for a in attributes if "user.id" in a} == {hashlib.sha256(b"alice@example.com").hexdigest()}
        (feedback,) = [(span, a) for span, a in zip(sink.spans, attributes) if "lunary.span.type" in a and a["lunary.span.type"].string_value == "feedback"]
        assert json.loads(feedback[1]["lunary.feedback"].string_value) == {"thumb": "down", "comment": "[redacted]"}
        events = [{kv.key: kv.value for kv in e.attributes} for e in feedback[0].events]
        assert [(e["gen_ai.evaluation.name"].string_value, e["gen_ai.evaluation.score.label"].string_value) for e in events if "gen_ai.evaluation.score.label" in e] == [("thumb", "down")]
        assert [e["gen_ai.evaluation.name"].string_value for e in events] == ["thumb", "comment"]
        assert all("gen_ai.evaluation.explanation" not in e for e in events)


def _archived_spans(directory: Path) -> dict[str, set[str]]:
    """trace id -> span ids in the OTLP JSON Lines files of one file-archive collector."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in directory.glob("traces*.jsonl"):
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            for resource_spans in json.loads(line).get("resourceSpans") or []:
                for scope_spans in resource_spans.get("scopeSpans") or []:
                    for span in scope_spans.get("spans") or []:
                        found[span["traceId"]].add(span["spanId"])
    return found


class TestGatewayLoadBalancing:
    def test_every_span_of_a_turn_reaches_one_sampler(self, built: Binaries, fake_llm: FakeLLM, tmp_path: Path) -> None:
        """gateway-loadbalancing.yaml in front of two tail-sampling.yaml instances: each turn lands whole in one.

        The gateway resolves the second tier by DNS as in production: its default name
        `otelcol-sampling`, which a private /etc/hosts (a mount namespace of the gateway
        process only) maps to 127.0.0.1 and 127.0.0.2, where the two samplers listen on
        one port. Each sampler keeps everything and exports to its own file archive.
        """
        archives = [tmp_path / "archive-1", tmp_path / "archive-2"]
        hosts = tmp_path / "hosts"
        hosts.write_text("127.0.0.1 localhost\n127.0.0.1 otelcol-sampling\n127.0.0.2 otelcol-sampling\n")
        started = []
        try:
            for index, directory in enumerate(archives):
                directory.mkdir()
                started.append(start_collector(built.otelcol, "file-archive.yaml", tmp_path / f"a{index}", {"ARCHIVE_DIR": str(directory)}))
            sampler_host = ["127.0.0.1", "127.0.0.2"]
            first = start_collector(
                built.otelcol,
                "tail-sampling.yaml",
                tmp_path / "s0",
                {"BACKEND_OTLP_ENDPOINT": started[0].otlp_grpc, "BACKEND_INSECURE": "true", "TAIL_SAMPLING_DECISION_WAIT": "1s", "TAIL_SAMPLING_PERCENTAGE": "100"},
                host=sampler_host[0],
            )
            started.append(first)
            port = first.ports["otlp.grpc"]
            second = start_collector(
                built.otelcol,
                "tail-sampling.yaml",
                tmp_path / "s1",
                {"BACKEND_OTLP_ENDPOINT": started[1].otlp_grpc, "BACKEND_INSECURE": "true", "TAIL_SAMPLING_DECISION_WAIT": "1s", "TAIL_SAMPLING_PERCENTAGE": "100"},
                host=sampler_host[1],
                extra=[f"--set=receivers::otlp::protocols::grpc::endpoint={sampler_host[1]}:{port}"],
            )
            started.append(second)
            gateway = start_collector(
                built.otelcol,
                "gateway-loadbalancing.yaml",
                tmp_path / "gw",
                {"SAMPLING_TIER_PORT": str(port)},
                wrap=["unshare", "--mount", "sh", "-c", f'mount --bind "{hosts}" /etc/hosts && exec "$@"', "sh"],
            )
            started.append(gateway)
            with recording(gateway.otlp_http, "chatbot-gateway") as rec:
                client = fake_client(fake_llm.base_url)
                thread = lunary.open_thread()
                turns = [track_turn(rec, thread, client, f"routed question {i}") for i in range(24)]
                for turn in turns[::3]:
                    give_feedback(turn, {"thumb": "down"})
            sent = {t: _sent_span_ids(rec, t) for t in rec.trace_ids()}
            total = sum(map(len, sent.values()))

            def all_archived() -> list[dict[str, set[str]]] | None:
                found = [_archived_spans(d) for d in archives]
                return found if sum(len(s) for f in found for s in f.values()) >= total else None

            found = wait_for(all_archived, timeout=60, what="every span in one of the two archives")
        finally:
            for process in reversed(started):
                process.stop()
        for trace_id, span_ids in sent.items():
            holders = [f[trace_id] for f in found if trace_id in f]
            assert len(holders) == 1, f"trace {trace_id} split over {len(holders)} samplers"
            assert holders[0] == span_ids
        split = [len(f) for f in found]
        assert all(split), f"both samplers get turns: {split}"
        print(f"gateway: {len(sent)} traces split {split[0]}/{split[1]} between the two samplers")


class TestFileArchive:
    def test_replay_reads_the_collector_archive(self, built: Binaries, fake_llm: FakeLLM, tmp_path: Path) -> None:
        """file-archive.yaml writes OTLP JSON Lines that `otel-lunary replay DIR` turns back into the conversation."""
        archive = tmp_path / "archive"
        archive.mkdir()  # the file exporter refuses to start without it, as the config says
        with start_collector(built.otelcol, "file-archive.yaml", tmp_path, {"ARCHIVE_DIR": str(archive)}) as collector:
            with recording(collector.otlp_http, "chatbot-archive") as rec:
                client = fake_client(fake_llm.base_url)
                thread = lunary.open_thread(tags=["archive"], user_id="bob")
                first = track_turn(rec, thread, client, "Plan a trip to Paris")
                give_feedback(first, {"thumb": "down", "comment": "too generic"})
                second = track_turn(rec, thread, client, "Thank you")
                give_feedback(second, {"thumb": "up"})
                give_feedback(second, {"thumb": None})
            total = len(rec.spans())
            wait_for(lambda: sum(map(len, _archived_spans(archive).values())) >= total, timeout=30, what="the archive file")
        assert (archive / "traces.jsonl").is_file()
        (conversation,) = replay_json(str(archive), "-c", thread.id)
        messages = messages_of(conversation)
        assert [(m["role"], m["content"]) for m in messages] == expected_messages(rec.turns)
        by_id = {m["id"]: m for m in messages}
        assert [by_id[t.answer_id]["feedback"] for t in rec.turns] == [latest_feedback(t) for t in rec.turns] == [{"thumb": "down", "comment": "too generic"}, {}]
        assert conversation["thread_tags"] == ["archive"]


# ---------------------------------------------------------------- conversation metrics


def _scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus samples by sample name: [(labels, value)]."""
    from helpers.collector import _get

    status, body = _get(url)
    assert status == 200, status
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[sample.name].append((dict(sample.labels), sample.value))
    return samples


def _sum(samples: list[tuple[dict[str, str], float]], by: tuple[str, ...], **match: str) -> dict[tuple[str, ...], float]:
    totals: dict[tuple[str, ...], float] = defaultdict(float)
    for labels, value in samples:
        if all(labels.get(k) == v for k, v in match.items()):
            totals[tuple(labels.get(k, "") for k in by)] += value
    return dict(totals)


def thumbs_down_rate_by(feedback: dict[tuple[str, ...], float], groups_of_conversation: dict[str, set[str]]) -> dict[str, float]:
    """The docs/export.md join: feedback per conversation, attributed to each group (model, tag) of that conversation."""
    down: dict[str, float] = defaultdict(float)
    rated: dict[str, float] = defaultdict(float)
    for (conversation, label), count in feedback.items():
        for group in groups_of_conversation.get(conversation, ()):
            rated[group] += count if label in ("up", "down") else 0
            down[group] += count if label == "down" else 0
    return {group: down[group] / rated[group] for group in rated if rated[group]}


def _documented_promql() -> tuple[str, str]:
    """The two PromQL blocks of docs/export.md: thumbs-down rate per model, and for the tag "support"."""
    blocks = re.findall(r"```promql\n(.*?)```", (REPO / "docs" / "export.md").read_text(), re.DOTALL)
    per_model = [b for b in blocks if "by (gen_ai_request_model)" in b]
    per_tag = [b for b in blocks if "lunary_thread_tags" in b]
    assert len(per_model) == 1 and len(per_tag) == 1 and '\\"support\\"' in per_tag[0], blocks
    return per_model[0], per_tag[0]


def _documented_promql_rates(collector: Any, tmp_path: Path, conversations: list[Any]) -> tuple[dict[str, float], dict[str, float]]:
    """A real Prometheus scrapes the Collector; the documented queries' answers, per model and per tag."""
    per_model, per_tag = _documented_promql()
    tags = sorted({tag for _, tags, _, _ in conversations for tag in tags})
    models = sorted({model for _, _, model, _ in conversations})
    target = collector.metrics_url.split("//", 1)[1].split("/", 1)[0]
    with start_prometheus(target, tmp_path / "prometheus") as prometheus:

        def answered() -> tuple[dict[str, float], dict[str, float]] | None:
            by_model = {r["metric"].get("gen_ai_request_model", ""): float(r["value"][1]) for r in prometheus.query(per_model)}
            by_tag = {}
            for tag in tags:
                result = prometheus.query(per_tag.replace('\\"support\\"', f'\\"{tag}\\"'))
                if result:
                    by_tag[tag] = float(result[0]["value"][1])
            return (by_model, by_tag) if set(by_model) == set(models) and set(by_tag) == set(tags) else None

        return wait_for(answered, timeout=60, what="Prometheus answering the documented queries")


class TestConversationMetrics:
    def test_prometheus_numbers_match_what_was_recorded(self, built: Binaries, fake_llm: FakeLLM, tmp_path: Path) -> None:
        """conversation-metrics.yaml: turns, messages, feedback by label, thumbs-down rate per model and tag, latency."""
        env = {"METRICS_FLUSH_INTERVAL": "1s"}
        script: list[tuple[list[str], str, list[dict[str, Any] | None]]] = [  # (tags, model, feedback per turn)
            (["support"], "gpt-4o-mini", [{"thumb": "down"}, {"thumb": "up"}, None]),
            (["support", "vip"], "gpt-4o", [{"thumb": "up"}, {"thumb": "up"}]),
            (["sales"], "gpt-4o-mini", [{"thumb": "down"}, {"thumb": "down", "comment": "no"}, {"thumb": "up"}, None]),
        ]
        with start_collector(built.otelcol, "conversation-metrics.yaml", tmp_path, env) as collector:
            conversations: list[tuple[str, list[str], str, list[Any]]] = []
            with recording(collector.otlp_http, "chatbot-metrics") as rec:
                client = fake_client(fake_llm.base_url)
                for tags, model, feedbacks in script:
                    thread = lunary.open_thread(tags=tags)
                    turns = []
                    for index, rating in enumerate(feedbacks):
                        turn = track_turn(rec, thread, client, f"question {index}", model=model)
                        if rating:
                            give_feedback(turn, rating)
                        turns.append(turn)
                    conversations.append((thread.id, tags, model, turns))
            attributes = [(span, dict(span.attributes or {})) for span in rec.spans()]
            lunary_spans = sum(1 for _, a in attributes if a.get("lunary.span.type"))
            timed = [(span, a) for span, a in attributes if a.get("gen_ai.operation.name")]
            given = sum(len(f) for _, _, _, ts in conversations for turn in ts for f in turn.feedback)  # one event per key

            def complete() -> dict[str, list[tuple[dict[str, str], float]]] | None:
                """Both connectors have flushed everything: spans, feedback events, timed operations."""
                samples = _scrape(collector.metrics_url)
                totals = {name: sum(v for _, v in samples.get(name, [])) for name in ("lunary_spans_total", "lunary_feedback_total", "lunary_genai_duration_milliseconds_count")}
                done = totals == {"lunary_spans_total": lunary_spans, "lunary_feedback_total": given, "lunary_genai_duration_milliseconds_count": len(timed)}
                return samples if done else None

            samples = wait_for(complete, timeout=30, what="every span counted on /metrics")
            promql_rates = _documented_promql_rates(collector, tmp_path, conversations)

        spans_total = samples["lunary_spans_total"]
        turns_per_conversation = _sum(spans_total, ("gen_ai_conversation_id",), lunary_span_type="message", lunary_message_role="user")
        messages_per_conversation = _sum(spans_total, ("gen_ai_conversation_id",), lunary_span_type="message")
        assert turns_per_conversation == {(cid,): float(len(ts)) for cid, _, _, ts in conversations}
        assert messages_per_conversation == {(cid,): float(2 * len(ts)) for cid, _, _, ts in conversations}

        feedback = _sum(samples["lunary_feedback_total"], ("gen_ai_conversation_id", "gen_ai_evaluation_score_label"), gen_ai_evaluation_name="thumb")
        expected_feedback: Counter[tuple[str, ...]] = Counter()
        truth_model: dict[str, list[str]] = defaultdict(list)
        truth_tag: dict[str, list[str]] = defaultdict(list)
        for cid, tags, model, ts in conversations:
            for turn in ts:
                for thumb in (f["thumb"] for f in turn.feedback):
                    expected_feedback[(cid, thumb)] += 1
                    truth_model[model].append(thumb)
                    for tag in tags:
                        truth_tag[tag].append(thumb)
        assert feedback == {key: float(n) for key, n in expected_feedback.items()}
        rate_by_model = {m: v.count("down") / len(v) for m, v in truth_model.items()}
        rate_by_tag = {t: v.count("down") / len(v) for t, v in truth_tag.items()}

        # The join on the conversation id that the documented PromQL does, done here on the scrape...
        calls = _sum(samples["lunary_genai_calls_total"], ("gen_ai_conversation_id", "gen_ai_request_model"), gen_ai_operation_name="chat")
        models: dict[str, set[str]] = defaultdict(set)
        for cid, model in calls:
            models[cid].add(model)
        tags_of = {labels["gen_ai_conversation_id"]: set(json.loads(labels["lunary_thread_tags"])) for labels, _ in spans_total if labels.get("lunary_span_type") == "message"}
        assert thumbs_down_rate_by(feedback, models) == rate_by_model
        assert thumbs_down_rate_by(feedback, tags_of) == rate_by_tag
        # ... and by a real Prometheus running the queries as docs/export.md writes them.
        assert promql_rates == (rate_by_model, rate_by_tag), "the PromQL of docs/export.md, run by Prometheus"

        # Latency histogram of the LLM calls (and of turn spans, when the SDK records them).
        expected_count: Counter[tuple[str, ...]] = Counter()
        expected_sum: dict[tuple[str, ...], float] = defaultdict(float)
        for span, a in timed:
            key = (str(a["gen_ai.operation.name"]), str(a.get("gen_ai.request.model", "")))
            expected_count[key] += 1
            expected_sum[key] += max(0, (span.end_time or 0) - (span.start_time or 0)) / 1e6
        by = ("gen_ai_operation_name", "gen_ai_request_model")
        assert _sum(samples["lunary_genai_duration_milliseconds_count"], by) == {k: float(n) for k, n in expected_count.items()}
        for timed_key, total in _sum(samples["lunary_genai_duration_milliseconds_sum"], by).items():
            assert math.isclose(total, expected_sum[timed_key], rel_tol=1e-9, abs_tol=1e-6), timed_key
        thumbs = Counter(label for (_, label), n in feedback.items() for _ in range(int(n)))
        print(
            f"metrics: turns {sorted(turns_per_conversation.values())}, messages {sorted(messages_per_conversation.values())}, "
            f"thumbs {dict(thumbs)}, down rate by model {rate_by_model}, by tag {rate_by_tag}"
        )


class TestPhoenix:
    def test_conversation_through_collector_to_phoenix(self, built: Binaries, fake_llm: FakeLLM, tmp_path: Path) -> None:
        """phoenix.yaml: the Collector files spans under the project it names; Phoenix shows the session; replay rebuilds it."""
        from helpers.servers import start_phoenix

        project = "lunary-through-collector"
        with start_phoenix(tmp_path) as phoenix:
            env = {"PHOENIX_COLLECTOR_ENDPOINT": phoenix.url, "PHOENIX_PROJECT_NAME": project}
            with start_collector(built.otelcol, "phoenix.yaml", tmp_path, env) as collector:
                with recording(collector.otlp_http, "chatbot-phoenix") as rec:
                    client = fake_client(fake_llm.base_url)
                    thread = lunary.open_thread(tags=["phoenix"], user_id="carol")
                    first = track_turn(rec, thread, client, "Plan a trip to Paris")
                    give_feedback(first, {"thumb": "up"})
                    track_turn(rec, thread, client, "Thank you")
                sent = {format(s.context.span_id, "016x") for s in rec.spans()}
                wait_for(lambda: {s["context"]["span_id"] for s in phoenix.spans(project)} >= sent, timeout=60, what="spans in Phoenix")
            assert {s["context"]["span_id"] for s in phoenix.spans(project)} == sent
            session = wait_for(lambda: phoenix.session(thread.id), timeout=30, what="the Phoenix session")
            assert {t["trace_id"] for t in session["traces"]} == {t.trace_id for t in rec.turns}
            (conversation,) = replay_json("--phoenix", phoenix.url, "--project", project, "-c", thread.id)
        messages = messages_of(conversation)
        assert [(m["role"], m["content"]) for m in messages] == expected_messages(rec.turns)
        assert [m["id"] for m in messages] == [i for t in rec.turns for i in (t.question_id, t.answer_id)]
        assert messages[1]["feedback"] == {"thumb": "up"}
