"""The fused telemetry path: one record per request for kafkahooks' own plugins, consumer
hand-outs per record batch, and clients whose objects keep their own classes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from kafkahooks import _otel, export
from kafkahooks.hooks import ALL_KEYS, TRACING_KEYS, ApiKey
from kafkahooks.hooks._records import HandOut, Request
from kafkahooks.hooks._requests import RequestNeeds, needs_of
from tests._drivers import CLIENTS, produce

CONSUME_APIS = [
    ("kafka-python", "poll"),
    ("kafka-python", "iteration"),
    ("aiokafka", "getmany"),
    ("aiokafka", "getone"),
    ("aiokafka", "async for"),
]


class Fused:
    """A fused plugin that keeps what the request log hands it (as the built-in plugins receive it)."""

    kafkahooks_inline = True

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.handouts: list[HandOut] = []
        self.entered: list[tuple[str, int, int]] = []

    @property
    def request_needs(self) -> RequestNeeds:
        return RequestNeeds(ALL_KEYS, produce_batches=True, fetch_batches=True)

    def on_requests_finished(self, requests: Sequence[Request]) -> None:
        self.requests.extend(requests)

    def on_batches_handed_out(self, handouts: Sequence[HandOut]) -> None:
        self.handouts.extend(handouts)

    def on_fetch_batch_entered(self, topic: str, partition: int, info: Any, scoped: bool) -> None:
        self.entered.append((topic, partition, info.base_offset))


def one_record_batches(bootstrap: str, topic: str, count: int) -> None:
    """``count`` records, each its own batch (a producer that sends and waits, one at a time)."""
    import kafka

    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    for i in range(count):
        producer.send(topic, b"%d" % i).get(timeout=10)
    producer.close()


def consume_with(client: str, api: str, bootstrap: str, topic: str, count: int, **kwargs: Any) -> list[Any]:
    """Read ``count`` records from the start of ``topic`` through one consume API of a wrapped client."""
    deadline = time.monotonic() + 60
    if client == "kafka-python":
        import kafka

        from kafkahooks.kafka import KafkaConsumer

        consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", **kwargs)
        consumer.assign([kafka.TopicPartition(topic, 0)])
        got: list[Any] = []
        if api == "poll":
            while len(got) < count and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    got.extend(records)
        else:
            for record in consumer:
                got.append(record)
                if len(got) == count or time.monotonic() > deadline:
                    break
        consumer.close()
        return got

    async def run() -> list[Any]:
        from aiokafka.structs import TopicPartition

        from kafkahooks.aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", **kwargs)
        await consumer.start()
        consumer.assign([TopicPartition(topic, 0)])
        got: list[Any] = []
        try:
            if api == "getmany":
                while len(got) < count and time.monotonic() < deadline:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        got.extend(records)
            elif api == "getone":
                while len(got) < count:
                    got.append(await asyncio.wait_for(consumer.getone(), 10))
            else:
                async for record in consumer:
                    got.append(record)
                    if len(got) == count:
                        break
        finally:
            await consumer.stop()
        return got

    return asyncio.run(run())


@pytest.mark.parametrize(("client", "api"), CONSUME_APIS)
def test_every_handed_out_record_is_counted_once_per_batch(client: str, api: str, bootstrap: str, topic: str) -> None:
    """3 000 one-record batches read through each consume API: every record is counted in exactly
    one hand-out, each batch is handed out once, and nothing is left unattributed."""
    from kafkahooks._selfstats import snapshot

    count = 3000
    one_record_batches(bootstrap, topic, count)
    plugin = Fused()
    unattributed = snapshot().get("handouts_unattributed", 0)
    records = consume_with(client, api, bootstrap, topic, count, hooks=[plugin])
    export.flush()
    assert [b"%d" % i for i in range(count)] == [r.value for r in records]
    assert count == sum(h.handed for h in plugin.handouts)
    assert list(range(count)) == sorted(h.info.base_offset for h in plugin.handouts)
    assert count == len(plugin.entered)
    assert unattributed == snapshot().get("handouts_unattributed", 0)


class PerBatch:
    """A consumer-side plugin written against the public hand-out and connection events alone
    (no ``on_requests_finished``)."""

    def __init__(self) -> None:
        self.entered: list[tuple[str, int, bool]] = []
        self.polls: list[list[Any]] = []
        self.handed: list[tuple[int, int, Any, str]] = []
        self.events: list[tuple[str, str]] = []

    def on_fetch_batch_entered(self, topic: str, partition: int, info: Any, scoped: bool) -> tuple[str, int]:
        self.entered.append((threading.current_thread().name, info.base_offset, scoped))
        return ("token", info.base_offset)

    def on_poll_ended(self, tokens: Sequence[Any]) -> None:
        self.polls.append(list(tokens))

    def on_batches_handed_out(self, handouts: Sequence[HandOut]) -> None:
        name = threading.current_thread().name
        self.handed.extend((h.info.base_offset, h.handed, h.token(self), name) for h in handouts)

    def on_connection_events(self, events: Sequence[Any]) -> None:
        name = threading.current_thread().name
        self.events.extend((e.kind, name) for e in events)


class BrokenEntry:
    def on_fetch_batch_entered(self, topic: str, partition: int, info: Any, scoped: bool) -> None:
        raise RuntimeError("a third-party bug")

    def on_poll_ended(self, tokens: Sequence[Any]) -> None:
        assert all(t is None for t in tokens)  # the failed calls' tokens
        raise RuntimeError("another one")


@pytest.mark.parametrize(("client", "api"), CONSUME_APIS)
def test_a_third_party_plugin_hears_hand_outs_per_batch_through_the_public_events(
    client: str, api: str, bootstrap: str, topic: str
) -> None:
    """300 one-record batches, read through each consume API by a client whose plugins implement
    only the public hand-out and connection events: every batch enters once, on the application's
    thread, and comes back handed out, on the export worker, with the token its entry returned;
    list calls (``poll``, ``getmany``, and the polls kafka-python's iterator draws from) are
    scoped and end with their batches' tokens in order;
    connects arrive batched. A plugin that raises in both application-side events costs the
    consumer nothing (every record arrives), is counted, and leaves the others their tokens."""
    from kafkahooks._selfstats import snapshot

    count = 300
    one_record_batches(bootstrap, topic, count)
    plugin = PerBatch()
    failures = snapshot().get("hook_failures", 0)
    records = consume_with(client, api, bootstrap, topic, count, hooks=[BrokenEntry(), plugin])
    export.flush()
    assert [b"%d" % i for i in range(count)] == [r.value for r in records]
    app = threading.main_thread().name
    scoped = api in ("poll", "getmany", "iteration")  # kafka-python's iterator draws from poll()s
    assert [(app, i, scoped) for i in range(count)] == plugin.entered
    assert [(i, 1, ("token", i), "kafkahooks-export") for i in range(count)] == sorted(plugin.handed)
    if scoped:
        assert [("token", i) for i in range(count)] == [t for poll in plugin.polls for t in poll]
        assert all(plugin.polls)
    else:
        assert [] == plugin.polls
    assert ("connect", "kafkahooks-export") in plugin.events
    assert {"kafkahooks-export"} == {thread for _, thread in plugin.events}
    # Each of BrokenEntry's calls failed once: one per batch, one per list call that entered some.
    assert snapshot().get("hook_failures", 0) - failures == count + len(plugin.polls)


@pytest.mark.parametrize("client", CLIENTS)
def test_record_at_a_time_consumers_report_per_batch_not_per_record(
    client: str, bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """Iteration hands records out one by one, yet the plugins hear of each producer batch once."""
    from tests._drivers import produce

    topic = make_topic(1)
    produce(client, bootstrap, topic, [(b"v" * 100, None)] * 2000, linger_ms=20)
    plugin = Fused()
    records = consume_with(
        client, "iteration" if client == "kafka-python" else "async for", bootstrap, topic, 2000, hooks=[plugin]
    )
    export.flush()
    assert 2000 == len(records)
    assert 2000 == sum(h.handed for h in plugin.handouts)
    assert len(plugin.handouts) < 200, "one hand-out per batch of many records, not one per record"
    fetches = [r for r in plugin.requests if r.key == ApiKey.FETCH and r.fetched]
    assert sum(info.num_records for r in fetches for _, _, info in r.fetched or ()) >= 2000


def test_a_consumer_that_stops_inside_a_batch_counts_what_it_handed_out(bootstrap: str, topic: str) -> None:
    """Leaving a 200-record batch after 50 records counts 50, not 200."""
    from tests._drivers import produce

    produce("aiokafka", bootstrap, topic, [(b"v", None)] * 200, linger_ms=50)
    plugin = Fused()
    records = consume_with("aiokafka", "async for", bootstrap, topic, 50, hooks=[plugin])
    export.flush()
    assert 50 == len(records)
    assert 50 == sum(h.handed for h in plugin.handouts)


def test_a_seek_inside_a_batch_counts_what_was_handed_out_before_it(bootstrap: str, topic: str) -> None:
    """aiokafka's fetch results stay in its own ``OrderedDict`` (a subclass would slow its per-record
    reads); a result dropped by a seek is found when the next fetch is processed, and counted
    exactly: 30 records of the batch before the seek back to 0, then all 200."""
    import collections

    from aiokafka.structs import TopicPartition

    from kafkahooks.aiokafka import AIOKafkaConsumer

    produce("aiokafka", bootstrap, topic, [(b"v", None)] * 200, linger_ms=50)
    plugin = Fused()

    async def run() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, hooks=[plugin])
        await consumer.start()
        try:
            assert type(consumer._fetcher._records) is collections.OrderedDict
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            got = 0
            for _ in range(30):
                await consumer.getone()
                got += 1
            consumer.seek(tp, 0)
            for _ in range(200):
                await consumer.getone()
                got += 1
            return got
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == 230
    export.flush()
    assert [30, 200] == [h.handed for h in plugin.handouts]


def test_a_used_up_fetch_result_is_let_go_of_at_once(bootstrap: str, topic: str) -> None:
    """Once a fetch result's records run out, kafkahooks keeps no reference to it (holding it until
    the next fetch was processed raised peak RSS by ~5 MB on ``async for``). Checked with no await
    in between, so no fetch response can be processed meanwhile."""
    from aiokafka.structs import TopicPartition

    from kafkahooks._wire.aiokafka._handouts import _HandOutRecords
    from kafkahooks.aiokafka import AIOKafkaConsumer

    produce("aiokafka", bootstrap, topic, [(b"v", None)] * 200, linger_ms=50)
    plugin = Fused()

    async def run() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, hooks=[plugin], auto_offset_reset="earliest")
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            got = 0
            while got < 200:
                await consumer.getone()
                got += 1
            handouts = consumer._fetcher._kh_handouts
            # The last record is out; aiokafka asks its records for more only on the next read.
            _, records, _ = handouts._open[tp]
            assert type(records._records) is _HandOutRecords
            assert records._records.has_next() is False  # what aiokafka asks next: the records ran out
            assert tp not in handouts._open  # let go of at once, not at the next fetch
        finally:
            await consumer.stop()

    asyncio.run(run())
    export.flush()
    assert sum(h.handed for h in plugin.handouts) == 200


@pytest.mark.parametrize("client", CLIENTS)
def test_wrapped_clients_never_reassign_an_objects_class(client: str, bootstrap: str, topic: str) -> None:
    """With tracing="hooks" every object of the client library keeps the class it was built with
    (reassigning __class__ slows each attribute read on that object for good in CPython 3.11)."""
    if client == "kafka-python":
        import kafka

        from kafkahooks.kafka import KafkaConsumer, KafkaProducer

        producer = KafkaProducer(bootstrap_servers=bootstrap, tracing="hooks")
        producer.send(topic, b"v").get(timeout=10)
        conns = list(producer._sender._client._manager._conns.values())
        assert conns
        for conn in conns:
            assert kafka.net.connection.KafkaConnection is type(conn)
            assert type(conn).__module__.startswith("kafka.")
            assert type(conn.transport).__module__.startswith("kafka.")
            assert type(conn.parser).__module__.startswith("kafka.")
        producer.close()
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, tracing="hooks")
        assert type(consumer).__module__ == "kafkahooks.kafka._clients"
        consumer.close()
        return

    async def run() -> None:
        import aiokafka
        from aiokafka.client import AIOKafkaClient
        from aiokafka.conn import AIOKafkaConnection
        from aiokafka.producer.message_accumulator import BatchBuilder, MessageBatch

        from kafkahooks.aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, tracing="hooks", linger_ms=50)
        await producer.start()
        await producer.send(topic, b"v")
        (batch,) = producer._message_accumulator._batches[next(iter(producer._message_accumulator._batches))]
        assert MessageBatch is type(batch)
        assert BatchBuilder is type(batch._builder)
        await producer.flush()
        assert AIOKafkaClient is type(producer.client)
        for conn in producer.client._conns.values():
            assert AIOKafkaConnection is type(conn)
            assert type(conn._writer).__module__ == "asyncio.streams"
        await producer.stop()
        from aiokafka.structs import TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, tracing="hooks", auto_offset_reset="earliest")
        assert aiokafka.AIOKafkaConsumer.getone is type(consumer).getone, "no per-record override"
        await consumer.start()
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.getone()
        assert AIOKafkaClient is type(consumer._client)
        for conn in consumer._client._conns.values():
            assert AIOKafkaConnection is type(conn)
        await consumer.stop()

    asyncio.run(run())


def test_sdk_recorder_writes_what_the_public_api_writes() -> None:
    """The same measurements through kafkahooks' recorder and through the public API export the
    same points (count, sum, min, max, buckets, attributes), for histograms and counters; with a
    reader added later and an attribute set seen for the first time, too."""
    assert [] == _otel.check_internals()
    readers = [InMemoryMetricReader(), InMemoryMetricReader()]
    provider = MeterProvider(metric_readers=readers[:1])
    meter = provider.get_meter("t")
    bounds = [0.005, 0.01, 0.1, 1.0]

    def points(reader: InMemoryMetricReader) -> dict[str, Any]:
        data = reader.get_metrics_data()
        assert data is not None
        out = {}
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.data.data_points:
                        out[f"{metric.name} {sorted(p.attributes.items())}"] = (
                            (p.count, round(p.sum, 9), p.min, p.max, tuple(p.bucket_counts))
                            if hasattr(p, "bucket_counts")
                            else p.value
                        )
        return out

    pairs = []
    for name in ("public", "fast"):
        histogram = meter.create_histogram(f"h-{name}", explicit_bucket_boundaries_advisory=bounds)
        counter = meter.create_counter(f"c-{name}")
        pairs.append(
            (histogram.record, counter.add)
            if name == "public"
            else (_otel.recorder(histogram), _otel.recorder(counter))
        )
    assert isinstance(pairs[1][0], _otel._SdkRecorder)
    a, b = {"k": "a"}, {"k": "b", "n": 1}
    values = [0.001, 0.02, 0.5, 3.0, 0.0, 0.007] * 50
    for i, value in enumerate(values):
        attrs = a if i % 3 else b
        for record, add in pairs:
            record(value, attrs)
            add(i % 7, attrs)
        if i == 100:
            provider.add_metric_reader(readers[1])  # a reader added mid-way
    for reader in readers:
        got = points(reader)
        public = {k.replace("-public", ""): v for k, v in got.items() if "-public" in k}
        fast = {k.replace("-fast", ""): v for k, v in got.items() if "-fast" in k}
        assert public == fast
        assert public
    provider.shutdown()


def test_record_many_writes_what_as_many_calls_write() -> None:
    """One value recorded ``count`` times at once (record_many) exports what ``count`` calls of the
    public API export: histograms (count, sum, min, max, buckets) and counters, through
    kafkahooks' recorder and through a plain public ``record``; first-seen attribute sets, counts
    of one, and a reader added mid-way included."""
    readers = [InMemoryMetricReader(), InMemoryMetricReader()]
    provider = MeterProvider(metric_readers=readers[:1])
    meter = provider.get_meter("t")
    bounds = [0.005, 0.01, 0.1, 1.0]
    public_h = meter.create_histogram("h-public", explicit_bucket_boundaries_advisory=bounds)
    public_c = meter.create_counter("c-public")
    many_h = meter.create_histogram("h-many", explicit_bucket_boundaries_advisory=bounds)
    plain_h = meter.create_histogram("h-plain", explicit_bucket_boundaries_advisory=bounds)
    many_c = meter.create_counter("c-many")
    fast_h, fast_c = _otel.recorder(many_h), _otel.recorder(many_c)
    assert isinstance(fast_h, _otel._SdkRecorder)
    a, b = {"k": "a"}, {"k": "b"}
    for i, (value, count) in enumerate([(0.001, 3), (0.02, 1), (0.5, 50), (3.0, 2), (0.0, 7), (0.007, 4)] * 20):
        attrs = a if i % 3 else b
        for _ in range(count):
            public_h.record(value, attrs)
            public_c.add(2, attrs)
        _otel.record_many(fast_h, value, attrs, count)
        _otel.record_many(plain_h.record, value, attrs, count)
        _otel.record_many(fast_c, 2, attrs, count)
        if i == 50:
            provider.add_metric_reader(readers[1])
    for reader in readers:
        data = reader.get_metrics_data()
        assert data is not None
        got: dict[str, dict[str, Any]] = {}
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind, how = metric.name.split("-")
                    for q in metric.data.data_points:
                        got.setdefault(f"{kind} {sorted(q.attributes.items())}", {})[how] = (
                            (q.count, round(q.sum, 9), q.min, q.max, tuple(q.bucket_counts))
                            if hasattr(q, "bucket_counts")
                            else q.value
                        )
        assert len(got) == 4  # histogram and counter, two attribute sets each
        for key, found in got.items():
            assert set(found) == ({"public", "many", "plain"} if key.startswith("h ") else {"public", "many"})
            assert len(set(found.values())) == 1, found
    provider.shutdown()


class ThirdParty:
    """A plugin written against the public API only: ``on_requests_finished`` and ``request_needs``."""

    request_needs = RequestNeeds(TRACING_KEYS, produce_batches=True)

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.threads: set[str] = set()

    def on_requests_finished(self, requests: Sequence[Request]) -> None:
        self.threads.add(threading.current_thread().name)
        self.requests.extend(requests)


class EveryKey:
    """No ``request_needs``: request records alone, for every key."""

    def __init__(self) -> None:
        self.keys: set[int] = set()

    def on_requests_finished(self, requests: Sequence[Request]) -> None:
        self.keys.update(r.key for r in requests)


class Broken:
    def on_requests_finished(self, requests: Sequence[Request]) -> None:
        raise RuntimeError("a third-party bug")


@pytest.mark.parametrize("client", CLIENTS)
def test_a_third_party_plugin_takes_the_batched_path(client: str, bootstrap: str, topic: str) -> None:
    """A plugin built on the public event alone gets what kafkahooks' own plugins get: on the
    export worker, only the keys it asked for (Produce here, no Metadata), with the batches it
    asked for (every record counted); a plugin without ``request_needs`` gets every key; one that
    raises is counted as a hook failure and the others still get every pass."""
    third, every, broken = ThirdParty(), EveryKey(), Broken()
    sent: list[Any] = []
    produce(client, bootstrap, topic, [(b"v", None)] * 50, hooks=[broken, third, every], before_close=sent.append)
    export.flush()
    assert {"kafkahooks-export"} == third.threads
    assert {int(ApiKey.PRODUCE)} == {r.key for r in third.requests}
    assert 50 == sum(info.num_records for r in third.requests for info in (r.batches or {}).values())
    assert all(r.time_to_write_ns > 0 and r.bytes_written > 0 for r in third.requests)
    assert needs_of(every).request_keys is ALL_KEYS
    assert int(ApiKey.PRODUCE) in every.keys
    if client == "kafka-python":  # aiokafka's bootstrap Metadata goes out before its taps are on
        assert int(ApiKey.METADATA) in every.keys
    dispatch = sent[0]._kh.dispatch
    assert dispatch.failures[("Broken", "on_requests_finished")] >= 1


@pytest.mark.parametrize(("client", "api"), [("aiokafka", "getmany"), ("kafka-python", "poll")])
def test_a_third_party_plugin_beside_the_built_in_ones_gets_batch_infos_and_hand_outs(
    client: str, api: str, bootstrap: str, topic: str
) -> None:
    """With ``tracing="hooks"``, kafkahooks' own plugins read each fetched batch and hand-out as a
    plain tuple; a plugin beside them written against the public events still gets a
    :class:`BatchInfo` at entry and :class:`HandOut` s on the export worker, with its own tokens,
    and nothing fails."""
    from kafkahooks._selfstats import snapshot

    count = 200
    one_record_batches(bootstrap, topic, count)
    plugin = PerBatch()
    failures = snapshot().get("hook_failures", 0)
    records = consume_with(client, api, bootstrap, topic, count, hooks=[plugin], tracing="hooks")
    export.flush()
    assert count == len(records)
    assert [i for _, i, _ in plugin.entered] == list(range(count))
    assert [(i, 1, ("token", i), "kafkahooks-export") for i in range(count)] == sorted(plugin.handed)
    assert failures == snapshot().get("hook_failures", 0)
