"""The wrapped aiokafka clients against a real broker."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiokafka
import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import AIOKafkaConnection
from aiokafka.structs import TopicPartition

from kafkahooks._wire import aiokafka as _aiokafka
from kafkahooks.aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafkahooks.broker import EmbeddedBroker
from kafkahooks.hooks import ApiKey
from kafkahooks.testing import RecordingHook
from tests._proxy import FrameProxy

N = 300


async def consume_all(consumer: Any, expected: int, timeout_s: float = 20.0) -> list[Any]:
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < expected and time.monotonic() < deadline:
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            records.extend(batch)
    return records


def test_internals_have_not_moved() -> None:
    """Fails loudly when aiokafka no longer has the internals the adapter relies on."""
    missing = _aiokafka.check_internals()
    assert [] == missing, (
        f"aiokafka {aiokafka.__version__} moved internals kafkahooks hooks into: {missing}. "
        f"kafkahooks was verified against aiokafka{_aiokafka.VERIFIED_VERSIONS}."
    )


async def test_nothing_installed_without_hooks(bootstrap: str, topic: str) -> None:
    """With no hooks and tracing off, the client and its connections are aiokafka's own."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, tracing="off")
    await producer.start()
    await producer.send_and_wait(topic, b"v")
    assert AIOKafkaClient is type(producer.client)
    assert {AIOKafkaConnection} == {type(c) for c in producer.client._conns.values()}
    assert "send" not in vars(producer)
    await producer.stop()


async def test_hook_counts_match_the_wire(proxied: tuple[str, FrameProxy]) -> None:
    """Every frame the proxy saw after connection set-up is reported once, with its exact size.

    aiokafka exchanges ApiVersions inside ``create_conn`` and bootstraps on a connection it does
    not keep, before kafkahooks can see them: those are the only frames allowed to be missing.
    """
    bootstrap, proxy = proxied
    proxy.reset()
    recorder = RecordingHook()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, hooks=[recorder], linger_ms=5)
    await producer.start()
    for i in range(N):
        await producer.send("wire-aio", b"x" * (i % 50))
    await producer.flush()
    await producer.stop()
    wire_writes, wire_reads = Counter(proxy.requests()), Counter(proxy.responses())
    hooked_writes = Counter((e.key, e.bytes_written) for e in recorder.of("broker_write"))
    hooked_reads = Counter((e.key, e.bytes_read) for e in recorder.of("broker_read"))
    unobservable = {ApiKey.API_VERSIONS, ApiKey.METADATA}
    for wire, hooked in ((wire_writes, hooked_writes), (wire_reads, hooked_reads)):
        assert {k: v for k, v in wire.items() if k[0] not in unobservable} == {
            k: v for k, v in hooked.items() if k[0] not in unobservable
        }
        assert not hooked - wire, "a hook reported a frame the wire never carried"
    assert sum(v for k, v in hooked_writes.items() if k[0] == ApiKey.PRODUCE) > 0


async def test_call_forms_deliver_every_record_unchanged(bootstrap: str, topic: str) -> None:
    """Positional and keyword headers, key only, value None, send_batch, every consume API."""
    recorder = RecordingHook()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, hooks=[recorder])
    await producer.start()
    await producer.send(topic, b"v1", b"k1", None, None, [("h", b"1")])
    await producer.send(topic, value=b"v2", headers=[("h", b"2")])
    await producer.send(topic, key=b"k3")
    await producer.send_and_wait(topic, None, b"k4")
    batch = producer.create_batch()
    batch.append(key=None, value=b"v5", timestamp=None, headers=[("h", b"5")])
    await (await producer.send_batch(batch, topic, partition=0))
    await producer.stop()

    expected = [
        (b"k1", b"v1", [("h", b"1")]),
        (None, b"v2", [("h", b"2")]),
        (b"k3", None, []),
        (b"k4", None, []),
        (None, b"v5", [("h", b"5")]),
    ]

    def shape(r: Any) -> tuple[Any, Any, list[Any]]:
        return (r.key, r.value, list(r.headers))

    async def consumer() -> Any:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, hooks=[RecordingHook()], auto_offset_reset="earliest")
        await c.start()
        c.assign([TopicPartition(topic, 0)])
        await c.seek_to_beginning()
        return c

    c = await consumer()
    assert expected == [shape(r) for r in await consume_all(c, 5)]
    await c.stop()
    c = await consumer()
    assert expected == [shape(await c.getone()) for _ in range(5)]
    await c.stop()
    c = await consumer()
    got = []
    async for record in c:
        got.append(shape(record))
        if len(got) == 5:
            break
    await c.stop()
    assert expected == got


async def test_wrapped_and_bare_clients_do_not_affect_each_other(
    bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """A bare producer on the same loop keeps plain objects and is invisible to the hooks."""
    wrapped_topic, bare_topic = make_topic(1), make_topic(1)
    recorder = RecordingHook()
    wrapped = AIOKafkaProducer(bootstrap_servers=bootstrap, hooks=[recorder])
    bare = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap)
    await asyncio.gather(wrapped.start(), bare.start())
    for _ in range(20):
        await wrapped.send(wrapped_topic, b"w")
        await bare.send(bare_topic, b"b")
    await asyncio.gather(wrapped.flush(), bare.flush())
    assert AIOKafkaClient is type(bare.client)
    assert {AIOKafkaConnection} == {type(c) for c in bare.client._conns.values()}
    await asyncio.gather(wrapped.stop(), bare.stop())
    assert {wrapped_topic} == {e.topic for e in recorder.of("produce_batch_written")}
    assert 20 == sum(e.metrics.num_records for e in recorder.of("produce_batch_written"))


async def run_transaction(producer: Any, topic: str) -> str:
    """Send five records in a transaction; return "ok" or the error's class name."""
    try:
        await producer.start()
        async with producer.transaction():
            for i in range(5):
                await producer.send(topic, b"%d" % i)
    except Exception as exc:
        return type(exc).__name__
    finally:
        await producer.stop()
    return "ok"


async def test_transactions_behave_as_with_the_bare_client(bootstrap: str, topic: str) -> None:
    """A transaction ends the same way wrapped and bare, and the hooks see it start (on Tansu 0.6
    both end in the broker refusing aiokafka's InitProducerId)."""
    recorder = RecordingHook()
    bare = await run_transaction(
        aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"b-{topic}"), topic
    )
    wrapped = await run_transaction(
        AIOKafkaProducer(bootstrap_servers=bootstrap, hooks=[recorder], transactional_id=f"w-{topic}"), topic
    )
    assert bare == wrapped
    assert ApiKey.INIT_PRODUCER_ID in {e.key for e in recorder.of("broker_write")}


async def test_a_committed_transaction_is_seen_by_the_hooks(bootstrap: str, topic: str) -> None:
    """Where the broker takes aiokafka's transactions, the hooks see its EndTxn and every record.
    Skipped on a broker that refuses them (Tansu 0.6 refuses aiokafka's InitProducerId; point
    KAFKAHOOKS_BOOTSTRAP at a Kafka to run it)."""
    recorder = RecordingHook()
    outcome = await run_transaction(
        AIOKafkaProducer(bootstrap_servers=bootstrap, hooks=[recorder], transactional_id=f"c-{topic}"), topic
    )
    if outcome != "ok":
        pytest.skip(f"this broker refuses aiokafka's transactions ({outcome})")
    assert ApiKey.END_TXN in {e.key for e in recorder.of("broker_write")}
    assert 5 == sum(e.metrics.num_records for e in recorder.of("produce_batch_written"))


async def test_broker_stopped_mid_stream_reports_errors_without_hanging(own_broker: EmbeddedBroker) -> None:
    """Killing the broker mid-produce ends in-flight requests with errors and a disconnect; no hang."""
    recorder = RecordingHook()
    producer = AIOKafkaProducer(
        bootstrap_servers=own_broker.bootstrap_servers,
        hooks=[recorder],
        linger_ms=1,
        request_timeout_ms=3000,
        retry_backoff_ms=100,
    )
    await producer.start()
    await producer.send_and_wait("killed", b"warm-up")
    started = time.monotonic()
    own_broker.kill()
    futures = [await producer.send("killed", b"v") for _ in range(200)]
    _, pending = await asyncio.wait(futures, timeout=15)
    await asyncio.wait_for(producer.stop(), 15)
    assert time.monotonic() - started < 30
    assert not pending
    assert recorder.of("broker_disconnect")
    errors = [e for e in recorder.of("broker_e2e") if e.e2e.err is not None] + [
        e for e in recorder.of("broker_connect") if e.err is not None
    ]
    assert errors, "no hook saw the broker going away"
    for event in recorder.of("broker_e2e"):
        assert event.e2e.duration_e2e_ns >= 0


async def test_a_hand_built_batch_keeps_the_clients_own_builder() -> None:
    """A batch the application built (create_batch/send_batch), even an empty one, reaches the
    accumulator with aiokafka's own record builder: aiokafka asserts that it is, when it stamps an
    idempotent producer's state on a batch. Only batches the accumulator opens for send() get
    kafkahooks' one-record stand-in, and lose it at their first record."""
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", tracing="hooks")  # never started
    accumulator = producer._message_accumulator
    tp = TopicPartition("t", 0)
    empty = producer.create_batch()
    await accumulator.add_batch(empty, tp, 1)
    assert DefaultRecordBatchBuilder is type(empty._builder)
    await accumulator.add_message(TopicPartition("u", 0), None, b"v", 1)
    (opened,) = accumulator._batches[TopicPartition("u", 0)]
    assert DefaultRecordBatchBuilder is type(opened._builder._builder)
    assert 1 == opened.record_count
