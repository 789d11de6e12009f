"""The wrapped kafka-python clients against a real broker."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import kafka
from kafka.net.connection import KafkaConnection
from kafka.net.manager import KafkaConnectionManager

from kafkahooks._wire import kafka_python as _kafka_python
from kafkahooks.broker import EmbeddedBroker
from kafkahooks.hooks import ApiKey
from kafkahooks.kafka import KafkaConsumer, KafkaProducer
from kafkahooks.testing import RecordingHook
from tests._drivers import iterate_to_end
from tests._proxy import FrameProxy

N = 300


def consume_all(consumer: Any, expected: int, timeout_s: float = 20.0) -> list[Any]:
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def test_internals_have_not_moved() -> None:
    """Fails loudly when kafka-python no longer has the internals the adapter relies on."""
    missing = _kafka_python.check_internals()
    assert [] == missing, (
        f"kafka-python {kafka.__version__} moved internals kafkahooks hooks into: {missing}. "
        f"kafkahooks was verified against kafka-python{_kafka_python.VERIFIED_VERSIONS}."
    )


def test_nothing_installed_without_hooks(bootstrap: str, topic: str) -> None:
    """With no hooks and tracing off, the client and its connections are kafka-python's own."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, tracing="off")
    producer.send(topic, b"v").get(timeout=10)
    manager = producer._sender._client._manager
    assert KafkaConnectionManager is type(manager)
    assert {KafkaConnection} == {type(c) for c in manager._conns.values()}
    producer.close()


def test_hook_counts_match_the_wire(proxied: tuple[str, FrameProxy]) -> None:
    """Every request and response frame the proxy saw is reported once, with its exact size."""
    bootstrap, proxy = proxied
    proxy.reset()
    recorder = RecordingHook()
    producer = KafkaProducer(bootstrap_servers=bootstrap, hooks=[recorder], linger_ms=5)
    for i in range(N):
        producer.send("wire-kp", b"x" * (i % 50))
    producer.flush()
    producer.close()
    hooked_writes = Counter((e.key, e.bytes_written) for e in recorder.of("broker_write"))
    hooked_reads = Counter((e.key, e.bytes_read) for e in recorder.of("broker_read"))
    assert Counter(proxy.requests()) == hooked_writes
    assert Counter(proxy.responses()) == hooked_reads
    assert all(e.err is None for e in recorder.of("broker_write") + recorder.of("broker_read"))


def test_bootstrap_connections_are_named_seed(bootstrap: str, topic: str) -> None:
    """kafka-python's bootstrap connections have no node id yet: their hooks name them seed_N."""
    recorder = RecordingHook()
    producer = KafkaProducer(bootstrap_servers=bootstrap, hooks=[recorder])
    producer.send(topic, b"v").get(timeout=10)
    producer.close()
    assert {"seed_0"} <= {e.meta.name for e in recorder.of("broker_connect")}


def test_call_forms_deliver_every_record_unchanged(bootstrap: str, topic: str) -> None:
    """Positional and keyword headers, key only, value None: all delivered exactly as sent."""
    recorder = RecordingHook()
    producer = KafkaProducer(bootstrap_servers=bootstrap, hooks=[recorder], tracing="off")
    producer.send(topic, b"v1", b"k1", [("h", b"1")])
    producer.send(topic, value=b"v2", headers=[("h", b"2")])
    producer.send(topic, key=b"k3")
    producer.send(topic, None, b"k4")
    producer.send(topic, b"v5", None, None, 0, 1_700_000_000_000).get(timeout=10)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, hooks=[RecordingHook()], auto_offset_reset="earliest", consumer_timeout_ms=3000
    )
    consumer.assign([kafka.TopicPartition(topic, 0)])
    got = [(r.key, r.value, list(r.headers)) for r in iterate_to_end(consumer)]
    consumer.close()
    assert [
        (b"k1", b"v1", [("h", b"1")]),
        (None, b"v2", [("h", b"2")]),
        (b"k3", None, []),
        (b"k4", None, []),
        (None, b"v5", []),
    ] == got


def test_wrapped_and_bare_clients_do_not_affect_each_other(bootstrap: str, make_topic: Callable[..., str]) -> None:
    """A bare producer in the same process keeps plain connections and is invisible to the hooks."""
    wrapped_topic, bare_topic = make_topic(1), make_topic(1)
    recorder = RecordingHook()
    wrapped = KafkaProducer(bootstrap_servers=bootstrap, hooks=[recorder])
    bare = kafka.KafkaProducer(bootstrap_servers=bootstrap)
    for _ in range(20):
        wrapped.send(wrapped_topic, b"w")
        bare.send(bare_topic, b"b")
    wrapped.flush()
    bare.flush()
    assert {KafkaConnection} == {type(c) for c in bare._sender._client._manager._conns.values()}
    assert KafkaConnectionManager is type(bare._sender._client._manager)
    wrapped.close()
    bare.close()
    assert {wrapped_topic} == {e.topic for e in recorder.of("produce_batch_written")}
    assert 20 == sum(e.metrics.num_records for e in recorder.of("produce_batch_written"))


def test_transactions_still_work(bootstrap: str, topic: str) -> None:
    """A transactional producer commits through the wrapper and the hooks see the txn requests."""
    recorder = RecordingHook()
    producer = KafkaProducer(bootstrap_servers=bootstrap, hooks=[recorder], transactional_id=f"tx-{topic}")
    producer.init_transactions()
    producer.begin_transaction()
    for i in range(5):
        producer.send(topic, b"%d" % i)
    producer.commit_transaction()
    producer.close()
    keys = {e.key for e in recorder.of("broker_write")}
    assert {ApiKey.INIT_PRODUCER_ID, ApiKey.PRODUCE, ApiKey.END_TXN} <= keys
    assert 5 == sum(e.metrics.num_records for e in recorder.of("produce_batch_written"))


def test_broker_stopped_mid_stream_reports_errors_without_hanging(own_broker: EmbeddedBroker, topic: str) -> None:
    """Killing the broker mid-produce ends in-flight requests with errors and a disconnect; no hang."""
    recorder = RecordingHook()
    producer = KafkaProducer(
        bootstrap_servers=own_broker.bootstrap_servers,
        hooks=[recorder],
        linger_ms=1,
        request_timeout_ms=3000,
        max_block_ms=3000,
        reconnect_backoff_max_ms=200,
        retries=0,
        delivery_timeout_ms=4000,
    )
    producer.send("killed", b"warm-up").get(timeout=10)
    started = time.monotonic()
    own_broker.kill()
    futures = [producer.send("killed", b"v") for _ in range(200)]
    with contextlib.suppress(kafka.errors.KafkaTimeoutError):  # the bare client's own behaviour
        producer.flush(timeout=10)
    producer.close(timeout=2)
    assert all(f.is_done for f in futures)
    assert time.monotonic() - started < 20
    assert recorder.of("broker_disconnect")
    errors = [e for e in recorder.of("broker_e2e") if e.e2e.err is not None] + [
        e for e in recorder.of("broker_connect") if e.err is not None
    ]
    assert errors, "no hook saw the broker going away"
    for event in recorder.of("broker_e2e"):
        assert event.e2e.duration_e2e_ns >= 0
