"""Trace-context carriers: kafkahooks writes and reads whatever the application's propagator speaks
(W3C trace context and baggage, B3 single and multi, Jaeger), checked against OpenTelemetry's own
propagators and the Kafka getter/setter of its kafka-python instrumentation, and against the broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.instrumentation.kafka.utils import _kafka_getter, _kafka_setter
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.jaeger import JaegerPropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from kafkahooks._selfstats import snapshot
from kafkahooks.tracing import Carriers, carriers, decode_errors, process_span, record_baggage, record_context
from kafkahooks.tracing._carriers import parse_b3, parse_b3_multi, parse_baggage, parse_uber_trace_id
from tests._drivers import CLIENTS, consume, plain_consume, produce
from tests.test_tracing import Tracing

FORMATS: dict[str, Callable[[], TextMapPropagator]] = {
    "tracecontext,baggage": lambda: CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]),
    "b3": lambda: CompositePropagator([B3SingleFormat()]),
    "b3multi": lambda: CompositePropagator([B3MultiFormat()]),
    "jaeger": lambda: CompositePropagator([JaegerPropagator()]),
}
"""What ``OTEL_PROPAGATORS`` builds for each value (checked by the first test)."""
CARRY_BAGGAGE = {"tracecontext,baggage", "jaeger"}
BAGGAGE = {"tenant": "acme corp/caf\u00e9", "request": "r-17"}
TRACE_128 = 0x0AF7651916CD43DD8448EB211C80319C
TRACE_64 = 0x8448EB211C80319C
SPAN = 0xB7AD6B7169203331


def app_context(trace_id: int = TRACE_128, sampled: bool = True, with_baggage: bool = True) -> Context:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    ctx = trace.set_span_in_context(NonRecordingSpan(SpanContext(trace_id, SPAN, False, flags)))
    for key, value in (BAGGAGE if with_baggage else {}).items():
        ctx = baggage.set_baggage(key, value, context=ctx)
    return ctx


def ids(ctx: SpanContext | None) -> tuple[int, int, bool] | None:
    return None if ctx is None else (ctx.trace_id, ctx.span_id, ctx.trace_flags.sampled)


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    t = Tracing()
    yield t
    t.provider.shutdown()


@pytest.fixture
def use_propagator() -> Iterator[Callable[[str], TextMapPropagator]]:
    """Set OpenTelemetry's global propagator for the test (as OTEL_PROPAGATORS would), then restore it."""
    before = propagate.get_global_textmap()

    def use(name: str) -> TextMapPropagator:
        made = FORMATS[name]()
        propagate.set_global_textmap(made)
        return made

    yield use
    propagate.set_global_textmap(before)


@pytest.mark.parametrize(
    ("configured", "formats"),
    [
        (None, ["tracecontext", "baggage"]),
        ("b3", ["b3"]),
        ("b3multi", ["b3multi"]),
        ("jaeger", ["jaeger"]),
        ("tracecontext,b3multi,jaeger", ["tracecontext", "b3multi", "jaeger"]),
        ("none", []),
    ],
)
def test_the_carriers_are_what_OTEL_PROPAGATORS_configures(configured: str | None, formats: list[str]) -> None:
    """A fresh process with OTEL_PROPAGATORS set, as a user runs one: kafkahooks' carriers are the
    formats of the propagator OpenTelemetry built from it, in its order."""
    env = {k: v for k, v in os.environ.items() if k != "OTEL_PROPAGATORS"}
    if configured is not None:
        env["OTEL_PROPAGATORS"] = configured
    code = (
        "import json; from kafkahooks.tracing import carriers; c = carriers();"
        "print(json.dumps([c.formats, sorted(c.keys)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    got, keys = json.loads(out.stdout)
    assert formats == got
    assert ("traceparent" in keys) == ("tracecontext" in formats)
    assert ("uber-trace-id" in keys) == ("jaeger" in formats)
    assert ("b3" in keys and "X-B3-TraceId" in keys) == bool({"b3", "b3multi"} & set(formats))
    if not formats:
        assert not keys


@pytest.mark.parametrize("trace_id", [TRACE_128, TRACE_64])
@pytest.mark.parametrize("name", list(FORMATS))
def test_what_opentelemetry_writes_kafkahooks_reads(name: str, trace_id: int) -> None:
    """Headers written by OpenTelemetry's own propagator through its Kafka setter: kafkahooks reads
    the same trace id, span id and sampling decision, and the baggage where the format carries it."""
    propagator = FORMATS[name]()
    headers: list[tuple[str, bytes]] = []
    propagator.inject(headers, context=app_context(trace_id), setter=_kafka_setter)
    ours = carriers(propagator)
    assert (trace_id, SPAN, True) == ids(ours.extract(headers))
    assert (BAGGAGE if name in CARRY_BAGGAGE else {}) == ours.baggage(headers)


@pytest.mark.parametrize("sampled", [True, False])
@pytest.mark.parametrize("name", list(FORMATS))
def test_what_kafkahooks_writes_opentelemetry_reads(name: str, sampled: bool) -> None:
    """kafkahooks' headers, read by OpenTelemetry's own propagator through its Kafka getter: the
    same context and baggage. An unsampled context is not written at all."""
    propagator = FORMATS[name]()
    written = carriers(propagator).inject(app_context(sampled=sampled))
    if not sampled:
        assert written is None
        return
    assert written
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in written)
    read = propagator.extract(list(written), context=Context(), getter=_kafka_getter)
    assert (TRACE_128, SPAN, True) == ids(trace.get_current_span(read).get_span_context())
    assert (BAGGAGE if name in CARRY_BAGGAGE else {}) == dict(baggage.get_all(read))


def test_a_context_is_encoded_once_and_an_applications_own_header_is_left_alone() -> None:
    """The same context object gives the same encoded headers without encoding again; a record that
    already holds a field the propagator writes (however spelled) gets none."""
    ours = carriers(FORMATS["b3multi"]())
    ctx = app_context()
    first = ours.inject(ctx)
    assert first is ours.inject(ctx)
    assert first is not ours.inject(app_context())
    assert ours.set_by_application([("X-B3-TraceId", b"463ac35c9f6413ad")])
    assert not ours.set_by_application([("traceparent", b"00-...")])


def test_header_keys_are_matched_exactly() -> None:
    """Kafka header keys are case-sensitive: ``B3``, ``Uber-Trace-Id`` or ``X-b3-traceid`` carry no
    context; OpenTelemetry's lower-case ``x-b3-*`` and the canonical ``X-B3-TraceId`` spelling do."""
    b3 = carriers(CompositePropagator([B3MultiFormat(), JaegerPropagator()]))
    single = b"0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"
    assert (
        b3.extract([("B3", single), ("Uber-Trace-Id", b"af7651916cd43dd8448eb211c80319c:b7ad6b7169203331:0:1")]) is None
    )
    assert (
        b3.extract([("X-b3-traceid", b"0af7651916cd43dd8448eb211c80319c"), ("X-b3-spanid", b"b7ad6b7169203331")])
        is None
    )
    for trace_key, span_key in (("x-b3-traceid", "x-b3-spanid"), ("X-B3-TraceId", "X-B3-SpanId")):
        got = b3.extract([(trace_key, b"0af7651916cd43dd8448eb211c80319c"), (span_key, b"b7ad6b7169203331")])
        assert (TRACE_128, SPAN, False) == ids(got)
    assert (TRACE_128, SPAN, True) == ids(b3.extract([(b"b3", single)]))  # bytes keys, as some clients give


def test_jaeger_variants_and_a_lone_b3_sampling_decision() -> None:
    """Jaeger drops leading zeros and may escape its colons; a ``b3`` of just ``1`` is a sampling
    decision without a context: no context, and not an error."""
    assert (0xAF7651916CD43DD8448EB211C80319C, SPAN, True) == ids(
        parse_uber_trace_id(b"af7651916cd43dd8448eb211c80319c%3Ab7ad6b7169203331%3A0%3A3")
    )
    assert (0x1, 0x2, False) == ids(parse_uber_trace_id("1:2:0:0"))
    before = decode_errors()
    assert parse_b3(b"1") is None
    assert parse_b3_multi(None, None, b"1") is None
    assert before == decode_errors()


LONG = b"f" * 9000
MALFORMED: list[tuple[str, list[tuple[Any, Any]]]] = [
    ("b3", [("b3", b"0af7651916cd43dd-b7ad6b7169203331-x")]),  # sampling not 0/1/d
    ("b3", [("b3", b"0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-1")]),  # 31 hex
    ("b3", [("b3", b"00000000000000000000000000000000-b7ad6b7169203331-1")]),  # zero trace id
    ("b3", [("b3", b"0af7651916cd43dd-b7ad6b7169203331-1-zz")]),  # bad parent
    ("b3", [("b3", b"0af7651916cd43dd-b7ad6b7169203331-1-b7ad6b7169203331-9")]),  # five fields
    ("b3", [("b3", "0af7651916cd43dd-b7ad6b716920333\u00e9")]),  # not ASCII
    ("b3", [("b3", LONG)]),
    ("b3", [("b3", 12345)]),
    ("b3multi", [("x-b3-traceid", b"0af7651916cd43dd")]),  # no span id
    ("b3multi", [("x-b3-traceid", b"0af7651916cd43dg"), ("x-b3-spanid", b"b7ad6b7169203331")]),
    (
        "b3multi",
        [("x-b3-traceid", b"0af7651916cd43dd"), ("x-b3-spanid", b"b7ad6b7169203331"), ("x-b3-sampled", b"yes")],
    ),
    ("b3multi", [("x-b3-traceid", b"0af7651916cd43dd"), ("x-b3-spanid", b"b7ad6b7169203331"), ("x-b3-flags", b"2")]),
    ("jaeger", [("uber-trace-id", b"af7651916cd43dd:b7ad6b7169203331:0")]),  # three fields
    ("jaeger", [("uber-trace-id", b"10af7651916cd43dd8448eb211c80319c:b7ad6b7169203331:0:1")]),  # 33 hex
    ("jaeger", [("uber-trace-id", b"0:b7ad6b7169203331:0:1")]),  # zero trace id
    ("jaeger", [("uber-trace-id", b"af7651916cd43dd:b7ad6b7169203331:0:100")]),  # flags too long
    ("jaeger", [("uber-trace-id", LONG)]),
    ("tracecontext,baggage", [("traceparent", LONG)]),
]


@pytest.mark.parametrize(("name", "headers"), MALFORMED)
def test_malformed_carriers_mean_no_context_and_are_counted(name: str, headers: list[tuple[Any, Any]]) -> None:
    """Each malformed value: no context, the decode-error counter moves, nothing raises."""
    before = decode_errors()
    assert carriers(FORMATS[name]()).extract(headers) is None
    assert decode_errors() > before


@pytest.mark.parametrize(
    "value",
    [
        b"a=1,b",  # a member without "="
        ",".join(f"k{i}=v" for i in range(181)).encode(),  # 181 members
        b"a=two words",  # a space inside a value
        b"a=%FF",  # percent-encoding that is not UTF-8
        b"a\x1b[2J=1",  # a terminal escape in a key
        b"a=" + b"v" * 9000,  # over 8 192 bytes
    ],
)
def test_malformed_baggage_is_refused_whole_and_counted(value: bytes) -> None:
    """W3C baggage is parsed here, never by OpenTelemetry's propagator (which logs rejected values
    raw): a malformed header brings no baggage at all, and is counted."""
    before = decode_errors()
    assert carriers(FORMATS["tracecontext,baggage"]()).baggage([("baggage", value)]) == {}
    assert decode_errors() > before
    assert {"a": "1", "b": "x y"} == parse_baggage(b"a=1;prop=2, b = x%20y")


def test_jaeger_baggage_is_bounded() -> None:
    """300 ``uberctx-`` headers: at most 180 entries and 8 192 bytes are taken (Jaeger's limits);
    keys that are not tokens are refused."""
    jaeger = carriers(FORMATS["jaeger"]())
    many = [(f"uberctx-k{i}", b"v" * 60) for i in range(300)]
    got = jaeger.baggage([*many, ("uberctx-bad key", b"1")])
    assert 0 < len(got) <= 180
    assert sum(len(k) + len(v) + 1 for k, v in got.items()) <= 8192
    assert "bad key" not in jaeger.baggage([("uberctx-bad key", b"1")])


class MyPropagator(TextMapPropagator):
    """A propagator kafkahooks does not know: reads and writes ``my-ctx`` as ``{trace}/{span}``."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list[int] = []

    def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Context:
        value = getter.get(carrier, "my-ctx")
        if self.fail:
            raise ValueError("broken propagator")
        self.seen.append(len(value[0]))
        trace_hex, span_hex = value[0].split("/")
        span = NonRecordingSpan(SpanContext(int(trace_hex, 16), int(span_hex, 16), True, TraceFlags(1)))
        return trace.set_span_in_context(span, context)

    def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
        ctx = trace.get_current_span(context).get_span_context()
        setter.set(carrier, "my-ctx", f"{ctx.trace_id:x}/{ctx.span_id:x}")

    @property
    def fields(self) -> set[str]:
        return {"my-ctx"}


def test_an_unknown_propagator_reads_only_bounded_values_and_its_failures_are_counted() -> None:
    """A propagator kafkahooks has no parser for writes as it likes and is called on its own
    fields' values within 8 192 bytes only (a 100 KB value is refused unread); when it raises, the
    record simply has no context, and the failure is counted."""
    mine = MyPropagator()
    ours = carriers(mine)
    assert ("other",) == ours.formats
    written = ours.inject(app_context())
    assert written is not None
    assert (TRACE_128, SPAN, True) == ids(ours.extract(written))
    assert ours.extract([("my-ctx", b"1/" + b"2" * 100_000)]) is None
    assert all(n < 8192 for n in mine.seen)
    failed = snapshot().get("trace_context_propagator_errors", 0)
    assert carriers(MyPropagator(fail=True)).extract(written) is None
    assert snapshot()["trace_context_propagator_errors"] == failed + 1


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=120), st.text(max_size=120)), st.sampled_from(["b3", "uber", "baggage", "multi"]))
def test_arbitrary_values_never_raise(value: bytes | str, parser: str) -> None:
    if parser == "b3":
        parse_b3(value)
    elif parser == "uber":
        parse_uber_trace_id(value)
    elif parser == "baggage":
        parse_baggage(value)
    else:
        parse_b3_multi(value, value, value, value)


# -- mixed fleets, against the broker ---------------------------------------------------------------


def peer_send(bootstrap: str, topic: str, propagator: TextMapPropagator, count: int) -> list[SpanContext]:
    """A peer service: a bare kafka-python producer, each record sent in its own span and its own
    batch, its context written by OpenTelemetry's propagator through the instrumentation's setter."""
    import kafka

    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    sent = []
    for i in range(count):
        ctx = app_context(TRACE_128 + i)
        headers: list[tuple[str, bytes]] = []
        propagator.inject(headers, context=ctx, setter=_kafka_setter)
        producer.send(topic, b"v", headers=headers).get(timeout=20)
        sent.append(trace.get_current_span(ctx).get_span_context())
    producer.close()
    return sent


@pytest.mark.parametrize("name", list(FORMATS))
@pytest.mark.parametrize("client", CLIENTS)
def test_a_peer_producers_context_reaches_kafkahooks_consumers(
    client: str,
    name: str,
    bootstrap: str,
    topic: str,
    tracing: Tracing,
    use_propagator: Callable[[str], TextMapPropagator],
) -> None:
    """Peer producers writing B3, B3 multi, Jaeger or W3C (the format the consumer's process is
    configured with): the kafkahooks consumer's poll spans link to each peer span,
    ``record_context`` finds it, and ``process_span(as_child=True)`` continues it with the
    peer's baggage current inside."""
    propagator = use_propagator(name)
    sent = peer_send(bootstrap, topic, propagator, 3)
    records = consume(client, bootstrap, topic, 3, tracing="hooks", tracer_provider=tracing.provider)
    assert 3 == len(records)
    linked = {ids(link.context) for span in tracing.spans("poll") for link in span.links}
    assert {ids(ctx) for ctx in sent} == linked
    assert [ids(ctx) for ctx in sent] == [ids(record_context(r)) for r in records]
    with process_span(records[0], as_child=True, tracer_provider=tracing.provider) as span:
        inside = dict(baggage.get_all())
    assert sent[0].trace_id == span.get_span_context().trace_id
    assert (BAGGAGE if name in CARRY_BAGGAGE else {}) == inside == record_baggage(records[0])


@pytest.mark.parametrize("name", list(FORMATS))
@pytest.mark.parametrize("client", CLIENTS)
def test_kafkahooks_producers_context_continues_in_a_peer_consumer(
    client: str,
    name: str,
    bootstrap: str,
    topic: str,
    tracing: Tracing,
    use_propagator: Callable[[str], TextMapPropagator],
) -> None:
    """A kafkahooks producer in a process configured for B3, B3 multi, Jaeger or W3C: the first
    record of each batch carries the application's context and baggage in that format, and a peer
    consumer reading it with OpenTelemetry's propagator continues the same trace."""
    propagator = use_propagator(name)
    with tracing.tracer.start_as_current_span("app") as app:
        token = otel_context.attach(baggage.set_baggage("tenant", BAGGAGE["tenant"]))
        try:
            produce(client, bootstrap, topic, [(b"v", None)] * 50, tracing="hooks", tracer_provider=tracing.provider)
        finally:
            otel_context.detach(token)
    records = plain_consume(bootstrap, topic, count=50)
    assert 50 == len(records)
    carrying = [r for r in records if any(k in carriers(propagator).keys for k, _ in r.headers)]
    assert 1 <= len(carrying) == len(tracing.spans("send"))
    for record in carrying:
        read = propagator.extract(record.headers, context=Context(), getter=_kafka_getter)
        assert ids(app.get_span_context()) == ids(trace.get_current_span(read).get_span_context())
        expected = {"tenant": BAGGAGE["tenant"]} if name in CARRY_BAGGAGE else {}
        assert expected == dict(baggage.get_all(read))


def test_carriers_repr_names_the_formats() -> None:
    assert "Carriers(b3multi, jaeger)" == repr(Carriers(CompositePropagator([B3MultiFormat(), JaegerPropagator()])))
    assert "Carriers(none)" == repr(Carriers(CompositePropagator([])))


@pytest.mark.parametrize("name", ["b3", "jaeger"])
@pytest.mark.parametrize("client", CLIENTS)
def test_per_record_tracing_speaks_the_configured_carriers_too(
    client: str,
    name: str,
    bootstrap: str,
    topic: str,
    tracing: Tracing,
    use_propagator: Callable[[str], TextMapPropagator],
) -> None:
    """``tracing="records"``: every record carries its own send span's context in the configured
    format, and a kafkahooks consumer with ``tracing="records"`` links each poll span to it."""
    propagator = use_propagator(name)
    with tracing.tracer.start_as_current_span("app"):
        produce(client, bootstrap, topic, [(b"v", None)] * 5, tracing="records", tracer_provider=tracing.provider)
    sends = {ids(s.context) for s in tracing.spans("send")}
    records = plain_consume(bootstrap, topic, count=5)
    read = [
        ids(trace.get_current_span(propagator.extract(r.headers, Context(), _kafka_getter)).get_span_context())
        for r in records
    ]
    assert 5 == len(sends) == len(set(read))
    assert sends == set(read)
    consume(client, bootstrap, topic, 5, tracing="records", tracer_provider=tracing.provider)
    assert sends == {ids(link.context) for s in tracing.spans("poll") for link in s.links}


def test_contexts_read_are_remembered_in_a_bounded_table() -> None:
    """Batches repeat contexts: the second read of the same carrier values is the same object,
    a refused value is counted again (not parsed again), and the table never holds more than
    1 024 entries nor values longer than 1.3 KB."""
    from kafkahooks.tracing._carriers import MAX_CACHED

    ours = carriers(FORMATS["b3multi"]())
    headers = [("x-b3-traceid", b"0af7651916cd43dd8448eb211c80319c"), ("x-b3-spanid", b"b7ad6b7169203331")]
    assert ours.extract(headers) is ours.extract(headers)
    bad = [("b3", b"not-a-context")]
    before = decode_errors()
    assert ours.extract(bad) is None
    assert ours.extract(bad) is None
    assert decode_errors() == before + 2
    for _ in range(2):  # a lone sampling decision carries no context and is no error, cached or not
        assert ours.extract([("b3", b"1")]) is None
    assert decode_errors() == before + 2
    for i in range(2 * MAX_CACHED):
        ours.extract([("x-b3-traceid", b"%032x" % (i + 1)), ("x-b3-spanid", b"b7ad6b7169203331")])
    assert len(ours._parsed) <= MAX_CACHED
    ours.extract([("b3", b"0" * 1_400)])
    assert all(sum(len(v) for _, v in key) <= 1_300 for key in ours._parsed)
