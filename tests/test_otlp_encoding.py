"""The fast OTLP encoders say exactly what the OTel SDK's encoder says.

``otlp_proto.encode_request`` and ``otlp_json.encode_line`` are checked against the SDK's
own ``encode_spans`` on the same spans: the protobuf bytes are decoded with the official
``opentelemetry.proto`` classes and compared (and are byte-identical), the JSON line is
parsed back into the same classes with ``json_format`` (ids turned back into base64, the
one OTLP/JSON rule protobuf's mapping does not know) and compared, and it is compared with
the JSON walker over the SDK encoder's protobuf that the file exporter used before.

Where the SDK's encoder loses a whole batch or writes what no decoder reads (strings
that are not valid Unicode, times outside uint64, values nested just under its limit),
the fast encoders are documented to do better (``otel_lunary.export._span_batch``); the
property test compares them with the SDK's encoder on the spans as they document
normalising them, and the divergences each have a test of their own.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from otel_lunary.export import otlp_json, otlp_proto

SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d\ude00", "\ude00\ud83d"]
INT64_EXTREMES = [-(2**63), 2**63 - 1, 0, -1, 1, 2**31, -(2**31) - 1, 2**53 + 1]
OUT_OF_INT64 = [2**63, -(2**63) - 1, 2**64, 10**30, -(10**30)]
FLOATS_OF_NOTE = [math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1.7976931348623157e308, 1e16, 0.1]


# --- the oracle: the SDK's encoder on the spans as the fast encoders normalise them ------


def independent_clean(text: str) -> str:
    """Surrogate pairs joined, lone surrogates replaced by U+FFFD (written apart from the
    package's own helper on purpose)."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if "\ud800" <= char <= "\udbff" and i + 1 < len(text) and "\udc00" <= text[i + 1] <= "\udfff":
            out.append(chr(0x10000 + ((ord(char) - 0xD800) << 10) + (ord(text[i + 1]) - 0xDC00)))
            i += 2
            continue
        out.append("\ufffd" if "\ud800" <= char <= "\udfff" else char)
        i += 1
    return "".join(out)


def clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return independent_clean(value)
    if isinstance(value, (bool, int, float, bytes)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {independent_clean(str(k)): clean_value(v) for k, v in value.items()}
    return [clean_value(v) for v in value]


def clean_attributes(attributes: Any) -> Any:
    if attributes is None:
        return None
    cleaned = {independent_clean(k) if isinstance(k, str) else k: clean_value(v) for k, v in attributes.items()}
    dropped = getattr(attributes, "dropped", 0)
    if dropped:
        bounded = BoundedAttributes(maxlen=len(cleaned), attributes=None)
        bounded._dict.update(cleaned)
        bounded.dropped = dropped
        return bounded
    return cleaned


def clamp(ns: int | None) -> int | None:
    return None if ns is None else min(max(ns, 0), 2**64 - 1)


def normalised(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """``spans`` as the fast encoders document treating them: text cleaned, times clamped."""
    resources: dict[int, Resource] = {}
    scopes: dict[int, Any] = {}
    out = []
    for span in spans:
        r = span.resource
        if id(r) not in resources:
            resources[id(r)] = Resource(clean_attributes(r.attributes), r.schema_url)
        sc = span.instrumentation_scope
        if id(sc) not in scopes:
            scopes[id(sc)] = sc if sc is None else InstrumentationScope(
                independent_clean(sc.name), sc.version and independent_clean(sc.version), sc.schema_url, clean_attributes(sc.attributes)
            )
        events = [Event(independent_clean(e.name), clean_attributes(e.attributes), clamp(e.timestamp)) for e in span.events]
        if getattr(span._events, "dropped", 0):
            events = BoundedList.from_seq(len(events), events)
            events.dropped = span._events.dropped
        context = span.context
        trace_state = TraceState([(k, independent_clean(v)) for k, v in context.trace_state.items()])
        status = span.status
        out.append(
            ReadableSpan(
                name=independent_clean(span.name),
                context=SpanContext(context.trace_id, context.span_id, context.is_remote, context.trace_flags, trace_state),
                parent=span.parent,
                resource=resources[id(r)],
                attributes=clean_attributes(span._attributes),
                events=events,
                links=span._links and [Link(link.context, clean_attributes(link.attributes)) for link in span.links],
                kind=span.kind,
                status=Status(status.status_code, status.description and independent_clean(status.description)),
                start_time=clamp(span.start_time),
                end_time=clamp(span.end_time),
                instrumentation_scope=scopes[id(sc)],
            )
        )
    return out


def ids_to_base64(obj: Any) -> Any:
    """OTLP/JSON's hex ids back to protobuf JSON's base64, for ``json_format``."""
    if isinstance(obj, list):
        return [ids_to_base64(v) for v in obj]
    if isinstance(obj, dict):
        return {
            k: base64.b64encode(bytes.fromhex(v)).decode() if k in ("traceId", "spanId", "parentSpanId") else ids_to_base64(v)
            for k, v in obj.items()
        }
    return obj


def as_dict(request: ExportTraceServiceRequest) -> dict[str, Any]:
    return json_format.MessageToDict(request)


def assert_same_as_sdk(spans: list[ReadableSpan], expected_spans: list[ReadableSpan] | None = None) -> ExportTraceServiceRequest:
    """Both fast encodings of ``spans`` decode to the SDK encoder's request for ``expected_spans``."""
    stock = encode_spans(expected_spans if expected_spans is not None else spans)
    stock_bytes = stock.SerializeToString(deterministic=True)

    ours = otlp_proto.encode_request(spans)
    decoded = ExportTraceServiceRequest.FromString(ours)
    assert as_dict(decoded) == as_dict(stock)
    assert decoded.SerializeToString(deterministic=True) == stock_bytes
    assert ours == stock_bytes  # same fields in the same order: byte for byte

    line = otlp_json.encode_line(spans)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    obj = json.loads(line)
    assert obj == otlp_json.request_to_dict(stock)  # the JSON the file exporter wrote before
    parsed = json_format.ParseDict(ids_to_base64(obj), ExportTraceServiceRequest())
    assert as_dict(parsed) == as_dict(stock)  # not bytes: JSON's "NaN" has no sign or payload
    return decoded


# --- strategies ---------------------------------------------------------------------------

hostile_text = st.lists(st.one_of(st.characters(), st.sampled_from(SURROGATES)), max_size=12).map("".join)
text = st.one_of(st.text(max_size=20), hostile_text)
scalars = st.one_of(
    text,
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from(INT64_EXTREMES + OUT_OF_INT64),
    st.floats(),
    st.sampled_from(FLOATS_OF_NOTE),
    st.binary(max_size=16),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(text, inner, max_size=3).filter(lambda kv: len({independent_clean(key) for key in kv}) == len(kv)),
    ),
    max_leaves=10,
)
homogeneous = st.one_of(*(st.lists(s, max_size=4).map(tuple) for s in (text, st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats())))
# Keys that differ only in lone surrogates clean to one key, which the SDK's dict of the
# cleaned batch (the oracle) holds once; the encoder keeps both, as the span did.
attribute_maps = st.dictionaries(text, st.one_of(values, homogeneous), max_size=6).filter(
    lambda attributes: len({independent_clean(key) for key in attributes}) == len(attributes)
)
span_ids = st.one_of(st.integers(1, 2**64 - 1), st.sampled_from([1, 2**64 - 1]))
trace_ids = st.one_of(st.integers(1, 2**128 - 1), st.sampled_from([1, 2**128 - 1]))
trace_states = st.sampled_from([TraceState(), TraceState([("vendor", "value")]), TraceState([("a", "1"), ("b@c", "x=y")])])
times = st.one_of(st.none(), st.integers(0, 2**64 - 1), st.integers(-(2**70), 2**70))


@st.composite
def contexts(draw: st.DrawFn) -> SpanContext:
    return SpanContext(
        draw(trace_ids), draw(span_ids), draw(st.booleans()), TraceFlags(draw(st.sampled_from([0, 1]))), draw(trace_states)
    )


@st.composite
def bounded(draw: st.DrawFn, attributes: dict[str, Any]) -> Any:
    """Plain dict, or the SDK's BoundedAttributes having dropped some (``droppedAttributesCount``)."""
    if not attributes or not draw(st.booleans()):
        return attributes
    kept = BoundedAttributes(maxlen=len(attributes), attributes=None)
    kept._dict.update(attributes)
    kept.dropped = draw(st.integers(1, 2**32 - 1))
    return kept


RESOURCE_A = Resource({"service.name": "a", "n": 1})
RESOURCES = [
    RESOURCE_A,
    Resource({"service.name": "a", "n": 1}),  # equal to A, another object: grouped with A
    Resource({"service.name": "b", "tags": ("x", "y")}, "https://opentelemetry.io/schemas/1.26.0"),
    Resource({}),
    Resource({"host": "h\ud800"}),
]
SCOPES = [
    InstrumentationScope("otel_lunary", "0.1.0"),
    InstrumentationScope("otel_lunary", "0.1.0"),
    InstrumentationScope("other", None, "https://schema", {"k": "v", "n": 2}),
    InstrumentationScope("", "", ""),
    None,
]


@st.composite
def spans(draw: st.DrawFn) -> ReadableSpan:
    events = [
        Event(draw(text), draw(attribute_maps.flatmap(bounded)) or draw(st.none()), draw(times.filter(lambda t: t is not None)))
        for _ in range(draw(st.integers(0, 3)))
    ]
    if events and draw(st.booleans()):
        events = BoundedList.from_seq(len(events), events)
        events.dropped = draw(st.integers(1, 1000))
    links = [Link(draw(contexts()), draw(st.none() | attribute_maps)) for _ in range(draw(st.integers(0, 2)))]
    code = draw(st.sampled_from(StatusCode))
    return ReadableSpan(
        name=draw(text),
        context=draw(contexts()),
        parent=draw(st.none() | contexts()),
        resource=draw(st.sampled_from(RESOURCES)),
        attributes=draw(st.none() | attribute_maps.flatmap(bounded)),
        events=events,
        links=links,
        kind=draw(st.sampled_from(SpanKind)),
        status=Status(code, draw(text) if code is StatusCode.ERROR else None),
        start_time=draw(times),
        end_time=draw(times),
        instrumentation_scope=draw(st.sampled_from(SCOPES)),
    )


@pytest.fixture(autouse=True)
def quiet_sdk_encoder() -> Iterator[None]:
    """The SDK's encoder logs a traceback per attribute it drops; ours one line."""
    logger = logging.getLogger("opentelemetry.exporter.otlp.proto.common._internal")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def span(**fields: Any) -> ReadableSpan:
    fields.setdefault("name", "span")
    fields.setdefault("context", SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False, TraceFlags(1)))
    fields.setdefault("start_time", 1_700_000_000_000_000_000)
    fields.setdefault("end_time", 1_700_000_000_000_001_000)
    fields.setdefault("resource", RESOURCE_A)
    fields.setdefault("instrumentation_scope", SCOPES[0])
    return ReadableSpan(**fields)


def attributes_of(request: ExportTraceServiceRequest) -> dict[str, Any]:
    (only,) = request.resource_spans[0].scope_spans[0].spans
    return {kv.key: json_format.MessageToDict(kv.value) for kv in only.attributes}


# --- tests --------------------------------------------------------------------------------


class TestSameAsTheSdkEncoder:
    @given(st.lists(spans(), max_size=6))
    def test_any_batch_decodes_to_what_the_sdk_encoder_sends(self, batch: list[ReadableSpan]) -> None:
        """Property: every kind, attribute type, event, link, status, resource and scope."""
        assert_same_as_sdk(batch, normalised(batch))

    def test_every_kind_and_attribute_type(self) -> None:
        """One span per kind, every attribute type and its sequences, empty ones, events, links."""
        attributes: dict[str, Any] = {
            "str": "text",
            "empty_str": "",
            "bool": True,
            "false": False,
            "int_min": -(2**63),
            "int_max": 2**63 - 1,
            "zero": 0,
            "float": 0.25,
            "nan": math.nan,
            "inf": math.inf,
            "-inf": -math.inf,
            "bytes": b"\x00\xff",
            "strs": ("a", ""),
            "bools": (True, False),
            "ints": (-(2**63), 2**63 - 1),
            "floats": (math.nan, -0.0),
            "empty": (),
            "nested": [["a", [1, [True]]], []],
            "mapping": {"k": [1.5, {"deeper": None}], "": "empty key"},
            "none": None,
        }
        link = Link(SpanContext(7, 8, True, TraceFlags(1)), {"link.attr": 3})
        batch = [
            span(name=f"span {kind.name}", kind=kind, attributes=attributes, links=[link], parent=SpanContext(1, 2, kind is SpanKind.SERVER),
                 events=[Event("ev", {"score": 1.0, "tags": ("x",)}, 1_700_000_000_000_000_500)],
                 status=Status(StatusCode.ERROR, "boom") if kind is SpanKind.CLIENT else Status(StatusCode.OK))
            for kind in SpanKind
        ]
        decoded = assert_same_as_sdk(batch)
        assert [s.kind for s in decoded.resource_spans[0].scope_spans[0].spans] == [1, 2, 3, 4, 5]
        assert len(decoded.resource_spans[0].scope_spans[0].spans[0].attributes) == len(attributes)

    def test_real_otel_lunary_spans(self, recorded: Any) -> None:
        """A recorded conversation (messages, event, feedback, a call) encodes the same."""
        import otel_lunary as lunary

        thread = lunary.open_thread(tags=["support", "vip"], user_id="u-1")
        first = thread.track_message({"role": "user", "content": "Hello, can you help? ✓"})
        thread.track_event("open-document", metadata={"documentName": "a.pdf", "pages": 3})
        reply = thread.track_message({"role": "assistant", "content": "Sure."})
        lunary.track_feedback(reply, {"thumb": "up", "comment": "great"})
        lunary.track_feedback(first, {"thumb": "down"})
        batch = recorded.all()
        assert len(batch) >= 5
        assert_same_as_sdk(batch)

    def test_huge_strings(self) -> None:
        """A 4 MiB attribute and a 100 kB name (multi-byte UTF-8, lengths over 2 bytes of varint)."""
        assert_same_as_sdk([span(name="n" * 100_000, attributes={"big": "é" * (2 * 2**20), "small": "x"})])

    def test_the_recurring_value_cache_is_keyed_by_key_and_value(self) -> None:
        """A cached value comes back only for its own key: one value under two keys, one key with two values."""
        first = span(attributes={"a": "same", "b": "same"})
        second = span(attributes={"b": "same", "a": "other"})
        assert_same_as_sdk([first, second, first])

    def test_keys_whose_values_never_recur_stop_being_cached_and_encode_the_same(self) -> None:
        """A message id or text is new on every span: once such a key's cache has filled
        up, its values are no longer kept; the output is unchanged, before and after."""
        recurring = [f"thread-{i % 7}" for i in range(12_000)]
        batches = [
            [span(attributes={"id": f"message-{i}-{j}", "thread": recurring[i + j]}) for j in range(100)]
            for i in range(0, 11_900, 100)
        ]
        for batch in batches[:-1]:
            otlp_proto.encode_request(batch)
            otlp_json.encode_line(batch)
        assert otlp_proto._span_attributes.by_key["id"].unique and not otlp_proto._span_attributes.by_key["thread"].unique
        assert "id" in otlp_json._span_attributes.unique and "thread" not in otlp_json._span_attributes.unique
        assert_same_as_sdk(batches[-1] + [span(attributes={"id": "message-0-0", "thread": "thread-0"})])


class _BrokenHash:
    """A value whose hash raises (not TypeError): only an unsupported type to the encoders."""

    def __hash__(self) -> int:
        raise ValueError("no hash")


class TestRecurringValuesMixedWithOthers:
    """Spans mixing values the encoders have cached (a thread's id and tags, a span's type
    and role) with values that are new, dropped, unhashable or look like cached ones encode
    exactly as the SDK's encoder does, whatever their position."""

    def test_cached_values_mixed_with_every_other_kind_of_value(self) -> None:
        recurring = {"thread.id": "t-1", "thread.tags": ("support", "vip"), "span.type": "message", "role": "user"}
        warm = span(attributes=recurring)
        assert_same_as_sdk([warm, warm])  # now cached by (key, value)
        assert "t-1" in otlp_proto._span_attributes.by_key["thread.id"].values and "t-1" in otlp_json._span_attributes.values["thread.id"]
        odd: list[Any] = [
            "new text ✓", 2**64, object(), _BrokenHash(), [1, 2], ("a", 1), {"k": "v"}, math.nan, 1, True, 1.0, b"\x00", None,
            type("Text", (str,), {})("t-1"),  # a str subclass equal to a cached value
            ("support", type("Tag", (str,), {})("vip")),  # a tuple equal to a cached one
        ]
        batch = []
        for value in odd:
            for at in range(len(recurring) + 1):  # the odd value first, between, last
                items = list(recurring.items())
                items.insert(at, ("odd", value))
                batch.append(span(attributes=dict(items)))
        batch.append(span(attributes={"thread.id": "t-1", "odd": [1, 2]}))  # only one cached value
        batch.append(span(attributes={"only": object()}))  # nothing cached, nothing kept
        assert_same_as_sdk(batch)


    def test_a_tuple_holding_a_value_whose_hash_raises_drops_that_attribute_not_the_batch(self) -> None:
        # The tuple's hash (the cache lookup) raises what its item's hash raises: the SDK's
        # encoder drops the attribute and keeps the span, so do the fast encoders; raising
        # would fail the exporter's whole batch.
        recurring = {"thread.id": "t-1", "thread.tags": ("support", "vip")}
        assert_same_as_sdk([span(attributes=recurring)] * 2)
        decoded = assert_same_as_sdk(
            [
                span(attributes={**recurring, "thread.tags": ("support", _BrokenHash())}),
                span(attributes={**recurring, "odd": (_BrokenHash(),), "role": "user"}),
                span(attributes=recurring),
            ]
        )
        spans = decoded.resource_spans[0].scope_spans[0].spans
        assert [[kv.key for kv in s.attributes] for s in spans] == [["thread.id"], ["thread.id", "thread.tags", "role"], ["thread.id", "thread.tags"]]

class TestDocumentedDivergences:
    """Where the SDK's encoder loses data or whole batches, the fast encoders do not."""

    def test_lone_surrogates_become_replacement_characters(self) -> None:
        """The SDK's encoder drops such an attribute; here it is kept, U+FFFD for each lone surrogate."""
        hostile = span(attributes={"v": "a\ud800b", "pair": "\ud83d\ude00", "ok": "fine"})
        assert "v" not in attributes_of(encode_spans([hostile]))
        decoded = assert_same_as_sdk([hostile], normalised([hostile]))
        assert attributes_of(decoded)["v"] == {"stringValue": "a\ufffdb"}
        assert attributes_of(decoded)["pair"] == {"stringValue": "😀"}

    def test_a_surrogate_in_a_span_name_does_not_fail_the_batch(self) -> None:
        """The SDK's encoder raises for the whole batch; here the good span and the cleaned one go."""
        batch = [span(name="good"), span(name="bad \udc00", events=[Event("ev \ud800", {"k\ud800": 1}, 5)])]
        with pytest.raises(UnicodeEncodeError):
            encode_spans(batch)
        decoded = assert_same_as_sdk(batch, normalised(batch))
        assert [s.name for s in decoded.resource_spans[0].scope_spans[0].spans] == ["good", "bad \ufffd"]

    @pytest.mark.parametrize("start, end", [(-5, 10), (2**64, 2**70), (None, 2**64 + 1)])
    def test_times_outside_uint64_are_clamped(self, start: int | None, end: int | None) -> None:
        """The SDK's encoder fails the whole batch (issue 13 item 1); here the span goes, clamped."""
        batch = [span(name="good"), span(name="odd", start_time=start, end_time=end)]
        with pytest.raises(ValueError):
            encode_spans(batch)
        assert_same_as_sdk(batch, normalised(batch))

    @pytest.mark.parametrize("value", OUT_OF_INT64 + [object(), {1, 2}, [1, object()]])
    def test_values_otlp_cannot_carry_are_dropped_like_the_sdk_does(self, value: Any, caplog: pytest.LogCaptureFixture) -> None:
        """Integers outside int64 and unsupported types: the attribute goes, the rest stays, one log line."""
        batch = [span(attributes={"before": 1, "bad": value, "after": "x"})]
        decoded = assert_same_as_sdk(batch)
        assert list(attributes_of(decoded)) == ["before", "after"]
        assert "'bad' not exported" in caplog.text

    @pytest.mark.parametrize("kind", ["list", "map"])
    def test_nesting_is_bounded_so_every_request_decodes(self, kind: str) -> None:
        """Nested values up to the SDK's parseable depth are identical; deeper ones are dropped,
        where the SDK's encoder writes requests protobuf refuses to decode, or fails the batch."""
        def nest(depth: int) -> Any:
            value: Any = "leaf"
            for _ in range(depth):
                value = [value] if kind == "list" else {"k": value}
            return value

        deepest_ok = 47 if kind == "list" else 31  # 2 (3) message levels per array (kvlist) level
        assert_same_as_sdk([span(attributes={"deep": nest(deepest_ok), "x": 1})])
        for depth in (deepest_ok + 1, deepest_ok + 2, 60, 900):
            batch = [span(attributes={"deep": nest(depth), "x": 1})]
            decoded = ExportTraceServiceRequest.FromString(otlp_proto.encode_request(batch))
            assert list(attributes_of(decoded)) == ["x"]
            from_json = json_format.ParseDict(ids_to_base64(json.loads(otlp_json.encode_line(batch))), ExportTraceServiceRequest())
            assert from_json == decoded
        with pytest.raises(Exception):  # the SDK's own output, just past the limit, does not decode
            stock = encode_spans([span(attributes={"deep": nest(deepest_ok + 1)})]).SerializeToString()
            ExportTraceServiceRequest.FromString(stock)
