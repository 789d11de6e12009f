"""Data-stream checkpoints per batch across a real three-stage pipeline, for both clients."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from typing import Any

import pytest

from kafkahooks.datastreams import HEADER, DataStreams, Point, current_pathway, from_headers, pathway_hash
from tests._drivers import CLIENTS, consume, iterate_to_end, plain_consume, produce
from tests.test_pathway import Capture

ENV = "test"


def make_streams(service: str, header_mode: str = "batch") -> tuple[DataStreams, Capture]:
    capture = Capture()
    return DataStreams(service, ENV, exporters=[capture], header_mode=header_mode), capture  # type: ignore[arg-type]


def points(streams: DataStreams, capture: Capture) -> list[Point]:
    streams.flush(final=True)
    return capture.points


def isolated(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a pipeline stage in a fresh, empty context, as a separate service would be."""
    return contextvars.Context().run(fn, *args, **kwargs)


def relay(client: str, bootstrap: str, source: str, target: str, count: int, streams: DataStreams, group: str) -> None:
    """Consume from ``source`` and forward each poll's records to ``target``, with no pathway code."""
    if client == "kafka-python":
        import kafka

        from kafkahooks.kafka import KafkaConsumer, KafkaProducer

        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            data_streams=streams,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        consumer.assign([kafka.TopicPartition(source, 0)])
        producer = KafkaProducer(bootstrap_servers=bootstrap, data_streams=streams, linger_ms=5)
        moved, deadline = 0, time.monotonic() + 20
        while moved < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    producer.send(target, record.value)
                moved += len(records)
        producer.flush()
        producer.close()
        consumer.close()
        return

    async def run() -> None:
        from aiokafka.structs import TopicPartition

        from kafkahooks.aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            data_streams=streams,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, data_streams=streams, linger_ms=5)
        await asyncio.gather(consumer.start(), producer.start())
        consumer.assign([TopicPartition(source, 0)])
        moved, deadline = 0, time.monotonic() + 20
        while moved < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    await producer.send(target, record.value)
                moved += len(records)
        await producer.stop()
        await consumer.stop()

    asyncio.run(run())


def weight(ps: list[Point], direction: str) -> int:
    return sum(p.weight for p in ps if f"direction:{direction}" in p.edge_tags)


@pytest.mark.parametrize("client", CLIENTS)
def test_three_stage_pipeline(client: str, bootstrap: str, make_topic: Callable[..., str], cluster_id: str) -> None:
    """producer -> relay -> sink: hashes chain parent to child, counts equal records, latencies add
    up; every edge carries the cluster id each client detected, as ddtrace's do."""
    cid = f"kafka_cluster_id:{cluster_id}"
    orders, enriched = make_topic(1), make_topic(1)
    (a, cap_a), (b, cap_b), (c, cap_c) = make_streams("svc-a"), make_streams("svc-b"), make_streams("svc-c")
    n = 300
    isolated(produce, client, bootstrap, orders, [(b"%d" % i, None) for i in range(n)], data_streams=a, linger_ms=5)
    isolated(relay, client, bootstrap, orders, enriched, n, b, "g-relay")
    isolated(consume, client, bootstrap, enriched, n, data_streams=c, group_id="g-sink", enable_auto_commit=False)
    pa, pb, pc = points(a, cap_a), points(b, cap_b), points(c, cap_c)

    out_a = pathway_hash("svc-a", ENV, ("direction:out", cid, f"topic:{orders}", "type:kafka"), 0)
    in_b = pathway_hash("svc-b", ENV, ("direction:in", "group:g-relay", cid, f"topic:{orders}", "type:kafka"), out_a)
    out_b = pathway_hash("svc-b", ENV, ("direction:out", cid, f"topic:{enriched}", "type:kafka"), in_b)
    in_c = pathway_hash("svc-c", ENV, ("direction:in", "group:g-sink", cid, f"topic:{enriched}", "type:kafka"), out_b)
    assert {(out_a, 0)} == {(p.hash, p.parent_hash) for p in pa}
    assert {(in_b, out_a), (out_b, in_b)} == {(p.hash, p.parent_hash) for p in pb}
    assert {(in_c, out_b)} == {(p.hash, p.parent_hash) for p in pc}
    assert (n, n, n, n) == (weight(pa, "out"), weight(pb, "in"), weight(pb, "out"), weight(pc, "in"))
    assert len(pa) < n, "one checkpoint per batch, not per record"
    for p in pa + pb + pc:
        assert 0 <= p.edge_latency_ns <= p.pathway_latency_ns < 60e9
    assert max(p.pathway_latency_ns for p in pc) >= max(p.edge_latency_ns for p in pc)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("given", "tagged"), [("prod-eu", "kafka_cluster_id:prod-eu"), ("", None)])
def test_a_given_cluster_id_overrides_the_detected_one(
    client: str, given: str, tagged: str | None, bootstrap: str, topic: str
) -> None:
    """DataStreams(cluster_id=...) wins over what the clients detect; "" leaves the tag out."""
    capture = Capture()
    streams = DataStreams("svc", ENV, exporters=[capture], cluster_id=given)  # type: ignore[list-item]
    isolated(produce, client, bootstrap, topic, [(b"v", None)] * 3, data_streams=streams)
    isolated(consume, client, bootstrap, topic, 3, data_streams=streams)
    found = {t for p in points(streams, capture) for t in p.edge_tags if t.startswith("kafka_cluster_id:")}
    assert ({tagged} if tagged else set()) == found


def test_the_env_defaults_to_datadogs_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without DD_ENV the env is "none", as ddtrace hashes it; DD_ENV and env= win."""
    monkeypatch.delenv("DD_ENV", raising=False)
    assert "none" == DataStreams("svc", exporters=[]).env
    monkeypatch.setenv("DD_ENV", "prod")
    assert "prod" == DataStreams("svc", exporters=[]).env
    assert "" == DataStreams("svc", "", exporters=[]).env


@pytest.mark.parametrize("client", CLIENTS)
def test_edges_add_up_to_the_pathway_for_one_record(
    client: str, bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """For a single record, the three edge latencies sum exactly to its latency from origin (ms)."""
    orders, enriched = make_topic(1), make_topic(1)
    (a, cap_a), (b, cap_b), (c, cap_c) = make_streams("one-a"), make_streams("one-b"), make_streams("one-c")
    isolated(produce, client, bootstrap, orders, [(b"x", None)], data_streams=a)
    time.sleep(0.05)
    isolated(relay, client, bootstrap, orders, enriched, 1, b, "g1")
    time.sleep(0.05)
    isolated(consume, client, bootstrap, enriched, 1, data_streams=c, group_id="g2", enable_auto_commit=False)
    (_,) = points(a, cap_a)
    consume_b, produce_b = sorted(points(b, cap_b), key=lambda p: "direction:out" in p.edge_tags)
    (consume_c,) = points(c, cap_c)
    edges = consume_b.edge_latency_ns + produce_b.edge_latency_ns + consume_c.edge_latency_ns
    assert edges == consume_c.pathway_latency_ns
    assert consume_c.pathway_latency_ns >= 100_000_000


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("mode", ["batch", "record", "off"])
def test_header_modes_on_the_wire(client: str, mode: str, bootstrap: str, topic: str) -> None:
    """batch: one pathway header per producer batch; record: one per record; off: none."""
    streams, capture = make_streams(f"modes-{mode}", mode)
    isolated(produce, client, bootstrap, topic, [(b"v" * 50, None)] * 200, data_streams=streams, linger_ms=5)
    records = plain_consume(bootstrap, topic)
    carrying = [r for r in records if any(k == HEADER for k, _ in r.headers)]
    produced = points(streams, capture)
    assert 200 == len(records) == sum(p.weight for p in produced)
    expected = {"batch": len(produced), "record": 200, "off": 0}[mode]
    assert expected == len(carrying)
    assert all(from_headers(r.headers) is not None for r in carrying)


@pytest.mark.parametrize("client", CLIENTS)
def test_off_mode_consumers_start_a_new_pathway_from_the_record_timestamp(
    client: str, bootstrap: str, topic: str
) -> None:
    """Without headers the consumer starts a pathway at the batch timestamp, so edge = pathway latency > 0."""
    producer_streams, _ = make_streams("plain-producer", "off")
    isolated(produce, client, bootstrap, topic, [(b"v", None)] * 20, data_streams=producer_streams)
    time.sleep(0.1)
    streams, capture = make_streams("reader")
    isolated(consume, client, bootstrap, topic, 20, data_streams=streams, group_id="r", enable_auto_commit=False)
    consumed = points(streams, capture)
    assert 20 == sum(p.weight for p in consumed)
    assert all(p.parent_hash == 0 and p.edge_latency_ns == p.pathway_latency_ns >= 100_000_000 for p in consumed)


@pytest.mark.parametrize("client", CLIENTS)
def test_mid_batch_seek_keeps_the_batch_pathway(client: str, bootstrap: str, topic: str) -> None:
    """Starting in the middle of a producer batch still attributes the records to that batch's pathway."""
    source, _ = make_streams("seek-src")
    isolated(produce, client, bootstrap, topic, [(b"v", None)] * 50, data_streams=source, linger_ms=50)
    streams, capture = make_streams("seek-reader")

    def read_from_middle() -> list[Any]:
        if client == "kafka-python":
            import kafka

            from kafkahooks.kafka import KafkaConsumer

            consumer = KafkaConsumer(bootstrap_servers=bootstrap, data_streams=streams, consumer_timeout_ms=3000)
            tp = kafka.TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 25)
            got = iterate_to_end(consumer)
            consumer.close()
            return got

        async def run() -> list[Any]:
            from aiokafka.structs import TopicPartition

            from kafkahooks.aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, data_streams=streams)
            await consumer.start()
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 25)
            got = []
            async for record in consumer:  # one record at a time: the getone path
                got.append(record)
                if len(got) == 25:
                    break
            await consumer.stop()
            return got

        return asyncio.run(run())

    records = isolated(read_from_middle)
    consumed = points(streams, capture)
    assert 25 == len(records) == sum(p.weight for p in consumed)
    assert all(p.parent_hash != 0 for p in consumed), "the batch's pathway was found without its first record"


def test_consuming_sets_the_current_pathway_for_the_thread(bootstrap: str, topic: str) -> None:
    """After a poll, the thread's current pathway is the consume checkpoint's outgoing context."""
    source, _ = make_streams("cur-src")
    isolated(produce, "kafka-python", bootstrap, topic, [(b"v", None)] * 5, data_streams=source)
    streams, capture = make_streams("cur-reader")

    def read() -> Any:
        consume("kafka-python", bootstrap, topic, 5, data_streams=streams)
        return current_pathway()

    ctx = isolated(read)
    assert ctx is not None
    assert {ctx.hash} == {p.hash for p in points(streams, capture)}
    assert current_pathway() is None, "the pathway stays in the context that consumed"


@pytest.mark.parametrize("client", CLIENTS)
def test_produce_and_commit_offsets_feed_the_lag_backlogs(
    client: str, bootstrap: str, topic: str, cluster_id: str
) -> None:
    """The last produced offset and the committed offset per partition reach the backlogs, tagged
    with the cluster (as ddtrace tags them)."""
    streams, capture = make_streams(f"lag-{client}")
    isolated(produce, client, bootstrap, topic, [(b"v", None)] * 30, data_streams=streams)

    def consume_and_commit() -> None:
        if client == "kafka-python":
            import kafka

            from kafkahooks.kafka import KafkaConsumer

            consumer = KafkaConsumer(
                bootstrap_servers=bootstrap,
                group_id="lag",
                data_streams=streams,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                consumer_timeout_ms=3000,
            )
            consumer.assign([kafka.TopicPartition(topic, 0)])
            assert 30 == len(iterate_to_end(consumer))
            consumer.commit()
            consumer.close()
            return

        async def run() -> None:
            from aiokafka.structs import TopicPartition

            from kafkahooks.aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap,
                group_id="lag",
                data_streams=streams,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await consumer.start()
            consumer.assign([TopicPartition(topic, 0)])
            got = 0
            while got < 30:
                got += sum(len(r) for r in (await consumer.getmany(timeout_ms=1000)).values())
            await consumer.commit()
            await consumer.stop()

        asyncio.run(run())

    isolated(consume_and_commit)
    streams.flush(final=True)
    backlogs = {tags: offset for bucket in capture.buckets for tags, offset in bucket.backlogs.items()}
    cid = f"kafka_cluster_id:{cluster_id}"
    assert 29 == backlogs[(cid, "partition:0", f"topic:{topic}", "type:kafka_produce")]
    assert 30 == backlogs[("consumer_group:lag", cid, "partition:0", f"topic:{topic}", "type:kafka_commit")]


def test_otel_exporter_counts_every_weighted_record_and_every_checkpoint() -> None:
    """The message counter sums weights per pathway (folded per pass); the latency histograms
    keep one measurement per checkpoint."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from kafkahooks.datastreams import OtelMetricsExporter
    from kafkahooks.datastreams._exporters import hash_hex

    reader = InMemoryMetricReader()
    exporter = OtelMetricsExporter(MeterProvider(metric_readers=[reader]))
    tags = ("direction:out", "topic:t", "type:kafka")
    points = [Point(0, tags, 1, 0, 0, 0, 100.0, weight) for weight in (2, 3, 5)]
    points.append(Point(0, tags, 2, 1, 1_000_000, 2_000_000, 100.0, 7))
    # Five checkpoints of one series with equal latencies (recorded together): five measurements.
    points += [Point(0, tags, 3, 1, 4_000_000, 9_000_000, 10.0, 1) for _ in range(5)]
    exporter.export_points("svc", "env", points)
    exporter.export_points("svc", "env", points[:1])

    found: dict[tuple[str, str], Any] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    found[(metric.name, str(point.attributes["kafkahooks.pathway.hash"]))] = point
    first, second = hash_hex(1), hash_hex(2)
    assert 12 == found[("kafkahooks.datastreams.messages", first)].value
    assert 7 == found[("kafkahooks.datastreams.messages", second)].value
    assert 4 == found[("kafkahooks.datastreams.edge_latency", first)].count
    assert 1 == found[("kafkahooks.datastreams.pathway_latency", second)].count
    assert 0.002 == found[("kafkahooks.datastreams.pathway_latency", second)].sum
    third = hash_hex(3)
    assert 5 == found[("kafkahooks.datastreams.edge_latency", third)].count
    assert 5 == found[("kafkahooks.datastreams.messages", third)].value
    assert abs(found[("kafkahooks.datastreams.edge_latency", third)].sum - 0.02) < 1e-12
    assert abs(found[("kafkahooks.datastreams.pathway_latency", third)].sum - 0.045) < 1e-12
    assert 0.004 == found[("kafkahooks.datastreams.edge_latency", third)].min


def test_checkpoints_differing_only_in_weight_make_the_same_sketches() -> None:
    """Checkpoints of one pathway with equal latencies are added to the sketches once, weights
    summed: the bucket's counts and quantiles are those of adding each one by itself."""
    from ddsketch import DDSketch

    from kafkahooks.datastreams._stats import RELATIVE_ACCURACY

    streams, capture = make_streams("coalesce")
    tags = ("direction:out", "topic:t", "type:kafka")
    expected = DDSketch(RELATIVE_ACCURACY)
    samples = [(3, 5), (3, 5), (3, 5), (8, 1), (3, 2)]  # (edge ms, weight)
    for edge_ms, w in samples:
        streams.record(tags, _origin().hash, 0, edge_ms, edge_ms, weight=w, payload_bytes=10.0, at_ns=0)
        expected.add(edge_ms / 1000, w)
    streams.flush(final=True)
    [bucket] = capture.buckets
    [group] = bucket.groups.values()
    assert sum(w for _, w in samples) == group.messages == group.edge_latency.count
    for q in (0.1, 0.5, 0.9, 1.0):
        assert expected.get_quantile_value(q) == group.edge_latency.get_quantile_value(q)


def _origin() -> Any:
    from kafkahooks.datastreams import PathwayContext

    return PathwayContext(1, 0, 0)


def test_no_sketches_for_exporters_that_read_only_points() -> None:
    """An exporter that says it reads no buckets (OtelMetricsExporter) gets its points and no
    bucket; a bucket exporter next to it still gets both kinds of data it reads."""

    class PointsOnly:
        uses_buckets = False

        def __init__(self) -> None:
            self.points: list[Point] = []
            self.bucket_calls = 0

        def export_points(self, service: str, env: str, points: Any) -> None:
            self.points.extend(points)

        def export_buckets(self, service: str, env: str, buckets: Any) -> None:
            self.bucket_calls += 1

    only = PointsOnly()
    streams = DataStreams("points-only", ENV, exporters=[only])
    tags = ("direction:out", "topic:t", "type:kafka")
    streams.record(tags, _origin().hash, 0, 1, 1, weight=4, at_ns=0)
    streams.backlog(("partition:0", "topic:t", "type:kafka_produce"), 9)
    streams.flush(final=True)
    assert [4] == [p.weight for p in only.points]
    assert 0 == only.bucket_calls

    both = Capture()
    streams = DataStreams("both", ENV, exporters=[PointsOnly(), both])
    streams.record(tags, _origin().hash, 0, 1, 1, weight=4, at_ns=0)
    streams.flush(final=True)
    assert [4] == [p.weight for p in both.points]
    assert [4] == [g.messages for b in both.buckets for g in b.groups.values()]


@pytest.mark.parametrize("parent", [None, (0x1234, 1_700_000_000_000, 1_700_000_000_500)])
def test_a_waiting_produce_checkpoint_is_left_to_no_full_collection(parent: tuple[int, int, int] | None) -> None:
    """A produce checkpoint waits in the opened-batches table until the export worker's pass (up to
    half a second, past several young collections). It is a tuple of atomic values and cached tags,
    which the collector untracks at its first young collection, so it is never promoted for the
    full collections to walk (a context object inside kept it tracked, and the context with it).
    And it still records what the batch's acknowledgement says: the pathway's hash, the parent's."""
    import gc

    from kafkahooks.datastreams import PathwayContext, data_stream_hooks, set_pathway
    from kafkahooks.hooks._records import BatchInfo, Request
    from kafkahooks.hooks._types import ApiKey, BrokerMeta, Compression

    streams, capture = make_streams("waiting")
    hooks = data_stream_hooks(streams)
    ctx = PathwayContext(*parent) if parent else None

    def open_batch(timestamp_ms: int) -> None:
        set_pathway(ctx)
        hooks.inject_batch_headers("orders", 3, None, timestamp_ms)

    isolated(open_batch, 1_700_000_000_990)  # the edge tags, cached from the first batch on
    gc.collect()  # (long untracked, in a service that has produced for a while)
    isolated(open_batch, 1_700_000_001_000)
    waiting = hooks._opened.get("orders", 3, 1_700_000_001_000)
    assert waiting is not None
    assert gc.is_tracked(waiting)  # (a new tuple: the collector has not looked at it yet)
    gc.collect(0)
    assert not gc.is_tracked(waiting)

    request = Request(BrokerMeta(1, "127.0.0.1", 9092), int(ApiKey.PRODUCE), 0, 0, True)
    request.batches = {("orders", 3): BatchInfo(7, 700, 700, Compression.NONE, 40, 46, 1_700_000_001_000, ())}
    request.acks = [("orders", 3, 0, 40)]
    hooks.on_requests_finished([request])
    (point,) = points(streams, capture)  # the second batch's: the first was never acknowledged
    tags = streams.produce_tags("orders")
    assert point.weight == 7
    assert point.hash == pathway_hash(streams.service, streams.env, tags, ctx.hash if ctx else 0)
    assert point.parent_hash == (ctx.hash if ctx else 0)
    assert hooks._opened.get("orders", 3, 1_700_000_001_000) is None


def test_a_consume_checkpoint_waits_untracked_and_a_poll_keeps_the_oldest_pathway() -> None:
    """A batch's consume checkpoint waits in its hand-out record until the export worker's pass;
    it is a tuple of atomic values and cached tags, untracked at the collector's first young
    collection. A poll of several batches makes current what ``merge_contexts`` keeps of the
    contexts each batch alone would have made current (the earliest pathway start, then edge
    start, then hash), and the worker records each batch's outgoing hash and parent."""
    import gc

    from kafkahooks.datastreams import PathwayContext, data_stream_hooks, merge_contexts, set_pathway
    from kafkahooks.hooks._records import BatchInfo, HandOut
    from kafkahooks.hooks._types import Compression

    streams, capture = make_streams("fan-in")
    hooks = data_stream_hooks(streams)
    now_ms = time.time_ns() // 1_000_000
    parents = [
        PathwayContext(0x1234, now_ms - 900, now_ms - 50),
        PathwayContext(0x5678, now_ms - 900, now_ms - 80),  # same start, earlier edge: kept
        PathwayContext(0x9ABC, now_ms - 400, now_ms - 400),
        None,  # a new pathway from the batch's first timestamp
    ]
    headers = [(("dd-pathway-ctx-base64", p.encode_b64()),) if p else () for p in parents]
    infos = [
        BatchInfo(2, 200, 200, Compression.NONE, 10 * i, 10 * i + 1, now_ms - 100, h) for i, h in enumerate(headers)
    ]

    def poll() -> tuple[list[Any], list[Any], Any]:
        alone = []
        for info in infos:
            hooks.on_fetch_batch_entered("orders", 0, info, False)
            alone.append(current_pathway())
        set_pathway(None)
        tokens = [hooks.on_fetch_batch_entered("orders", 0, info, True) for info in infos]
        hooks.on_poll_ended(tokens)
        return alone, tokens, current_pathway()

    isolated(poll)  # the edge tags, cached from the first batch on
    gc.collect()  # (long untracked, in a service that has consumed for a while)
    alone, tokens, current = isolated(poll)
    assert current == merge_contexts(*alone)
    assert (alone[1].hash, now_ms - 900) == (current.hash, current.pathway_start_ms)
    assert all(gc.is_tracked(t) for t in tokens)  # (new tuples: the collector has not looked yet)
    gc.collect(0)
    assert not any(gc.is_tracked(t) for t in tokens)

    entered_ns = time.time_ns()
    handouts = [HandOut("orders", 0, i, 2, entered_ns, (hooks,), (t,)) for i, t in zip(infos, tokens, strict=True)]
    hooks.on_batches_handed_out(handouts)
    recorded = points(streams, capture)
    assert [c.hash for c in alone] == [p.hash for p in recorded]
    assert [p.hash if p else 0 for p in parents] == [p.parent_hash for p in recorded]
    assert [2, 2, 2, 2] == [p.weight for p in recorded]


def test_checkpoints_wait_as_rows_of_numbers_and_third_party_exporters_get_points() -> None:
    """A checkpoint waits for the export worker as a row of numbers beside its caller's cached
    edge tags, leaving no block of its own on the heap (a consumer queues one per batch handed out,
    amid the client's records: see PackedBuffer); an exporter written against the public protocol
    still gets :class:`Point` s, one list a pass, and kafkahooks' own reads the tuples."""
    import gc
    import sys

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from kafkahooks.datastreams import OtelMetricsExporter
    from kafkahooks.export import worker

    class Points:
        uses_points = True
        uses_buckets = False

        def __init__(self) -> None:
            self.got: list[Any] = []

        def export_points(self, service: str, env: str, points: Any) -> None:
            self.got.extend(points)

        def export_buckets(self, service: str, env: str, buckets: Any) -> None:
            raise AssertionError("not asked for")

    theirs = Points()
    ours = OtelMetricsExporter(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    streams = DataStreams("svc", "env", exporters=[theirs, ours], capacity=20_000)
    worker().unregister(streams)  # passes run here, by hand
    tags = ("direction:in", "topic:t", "type:kafka")
    big = 10**12  # hashes and times as large as real ones: each a heap block as a Python int
    assert streams.record(tags, big, 0, 2, 3, weight=4, payload_bytes=10.0, at_ns=1_000)  # warm
    streams.buffer.clear()
    gc.disable()
    try:
        before = sys.getallocatedblocks()
        for i in range(10_000):
            assert streams.record(tags, big + i, big, 2000 + i, 3000 + i, weight=600, payload_bytes=10.5, at_ns=big + i)
        held = sys.getallocatedblocks() - before
    finally:
        gc.enable()
    assert 10_000 == len(streams.buffer)
    assert held < 100, f"{held} blocks for 10 000 checkpoints (a tuple and its numbers each would be 50 000)"
    streams.buffer.clear()
    for i in range(100):
        assert streams.record(tags, i, 0, 2, 3, weight=4, payload_bytes=10.0, at_ns=1_000)
    streams.process(final=True)
    assert [Point(1_000, tags, i, 0, 2_000_000, 3_000_000, 10.0, 4) for i in range(100)] == theirs.got
    assert all(type(p) is Point for p in theirs.got)
