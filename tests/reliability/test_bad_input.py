"""Bad propagation headers from an unwrapped producer: every consume API, every tracing mode,
both clients. The application gets every record, unchanged and in order; nothing raises."""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from collections.abc import Callable
from typing import Any

import kafka
import pytest

from kafkahooks.datastreams import PathwayContext
from kafkahooks.datastreams import decode_errors as pathway_errors
from kafkahooks.tracing import decode_errors as trace_errors
from tests._drivers import iterate_to_end

VALID = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
FAR_FUTURE = PathwayContext(0x1234, 4_000_000_000_000, 4_000_000_000_000).encode_b64()

BAD_HEADERS: list[list[tuple[str, Any]]] = [
    [("traceparent", b"\xff\xfe")],
    [("traceparent", b"")],
    [("traceparent", VALID[:-1])],
    [("traceparent", b"00-00000000000000000000000000000000-b7ad6b7169203331-01")],
    [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01")],
    [("traceparent", VALID.upper())],
    [("traceparent", b"ff" + VALID[2:])],
    [("traceparent", VALID + b"-extra")],
    [("traceparent", b" " + VALID + b" ")],
    [("traceparent", b"x" * 500_000)],
    [("traceparent", VALID), ("traceparent", b"garbage")],
    [("TRACEPARENT", b"\x00bad")],
    [("tracestate", b"\xff=\xff"), ("traceparent", VALID)],
    [("dd-pathway-ctx-base64", b"not base64!!")],
    [("dd-pathway-ctx-base64", base64.b64encode(b"\x01" * 8 + b"\x80"))],
    [("dd-pathway-ctx-base64", base64.b64encode(b"\x01" * 8 + b"\xff" * 12))],
    [("dd-pathway-ctx-base64", base64.b64encode(b"\x00" * 8 + b"\x02\x02"))],
    [("dd-pathway-ctx-base64", FAR_FUTURE)],
    [("dd-pathway-ctx", b"\x00\x01garbage")],
    [("dd-pathway-ctx-base64", b"\xff\xfe\xfd")],
    [(f"h{i}", b"v") for i in range(10_000)],
    [],
]


@pytest.fixture(scope="module")
def bad_topic(bootstrap: str) -> str:
    """One record per bad header set, each its own producer batch (so each is a batch's first record)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"bad-input-{time.time_ns()}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, max_request_size=4_000_000)
    for i, headers in enumerate(BAD_HEADERS):
        producer.send(topic, value=b"%d" % i, key=b"\x00\xffkey", headers=headers).get(timeout=10)
    producer.close()
    return topic


def expected() -> list[tuple[bytes, list[tuple[str, Any]]]]:
    return [(b"%d" % i, list(h)) for i, h in enumerate(BAD_HEADERS)]


def shape(records: list[Any]) -> list[tuple[bytes, list[tuple[str, Any]]]]:
    return [(r.value, list(r.headers)) for r in records]


def kafka_python_read(bootstrap: str, topic: str, mode: str, api: str) -> list[Any]:
    from kafkahooks.kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        tracing=mode,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
        group_id=f"bad-{mode}-{api}",
        enable_auto_commit=False,
        strict_hooks=False,
    )
    consumer.assign([kafka.TopicPartition(topic, 0)])
    got: list[Any] = []
    if api == "iterate":
        got = iterate_to_end(consumer)
    else:
        deadline = time.monotonic() + 15
        while len(got) < len(BAD_HEADERS) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300, max_records=3).values():
                got.extend(records)
    consumer.close()
    return got


def aiokafka_read(bootstrap: str, topic: str, mode: str, api: str) -> list[Any]:
    from aiokafka.structs import TopicPartition

    from kafkahooks.aiokafka import AIOKafkaConsumer

    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            tracing=mode,
            auto_offset_reset="earliest",
            group_id=f"bad-{mode}-{api}",
            enable_auto_commit=False,
            max_partition_fetch_bytes=8_000_000,
            fetch_max_bytes=16_000_000,
        )
        await consumer.start()
        consumer.assign([TopicPartition(topic, 0)])
        got: list[Any] = []
        deadline = time.monotonic() + 15
        try:
            if api == "getmany":
                while len(got) < len(BAD_HEADERS) and time.monotonic() < deadline:
                    for records in (await consumer.getmany(timeout_ms=300, max_records=3)).values():
                        got.extend(records)
            elif api == "getone":
                while len(got) < len(BAD_HEADERS):
                    got.append(await asyncio.wait_for(consumer.getone(), 10))
            else:
                async for record in consumer:
                    got.append(record)
                    if len(got) == len(BAD_HEADERS):
                        break
        finally:
            await consumer.stop()
        return got

    return asyncio.run(run())


READERS: list[tuple[str, str, Callable[..., list[Any]]]] = [
    ("kafka-python", "poll", kafka_python_read),
    ("kafka-python", "iterate", kafka_python_read),
    ("aiokafka", "getmany", aiokafka_read),
    ("aiokafka", "getone", aiokafka_read),
    ("aiokafka", "async-for", aiokafka_read),
]


@pytest.mark.parametrize("mode", ["off", "hooks", "records"])
@pytest.mark.parametrize(("client", "api", "read"), READERS, ids=[f"{c}-{a}" for c, a, _ in READERS])
def test_every_record_arrives_unchanged(
    bootstrap: str, bad_topic: str, mode: str, client: str, api: str, read: Callable[..., list[Any]]
) -> None:
    """All bad-header records reach the application in order with their headers untouched, and
    (when tracing decodes headers) the decode-error counters move."""
    before = trace_errors() + pathway_errors()
    records = read(bootstrap, bad_topic, mode, api)
    assert expected() == shape(records)
    assert all(b"\x00\xffkey" == r.key for r in records)
    if mode != "off":
        assert trace_errors() + pathway_errors() > before


def test_bad_record_fields_behave_as_with_the_bare_client(bootstrap: str) -> None:
    """None and binary keys, 1 MB keys, long and unicode topic names: same outcome wrapped and bare."""
    from kafkahooks.kafka import KafkaProducer

    cases: list[tuple[str, bytes | None, bytes | None]] = [
        ("plain", None, b"v"),
        ("plain", b"\x00\xff\xfe", b"v"),
        ("plain", b"k" * 1_000_000, b"v"),
        ("t" * 249, b"k", b"v"),
        ("t\u00e9l\u00e9", b"k", b"v"),
        ("", b"k", b"v"),
    ]

    def outcome(producer: Any, topic: str, key: bytes | None, value: bytes | None) -> str:
        try:
            producer.send(topic, value=value, key=key).get(timeout=10)
            return "ok"
        except Exception as exc:
            return type(exc).__name__

    bare = kafka.KafkaProducer(bootstrap_servers=bootstrap, max_request_size=4_000_000, max_block_ms=3000)
    wrapped = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=4_000_000, max_block_ms=3000, tracing="hooks")
    for topic, key, value in cases:
        assert outcome(bare, topic, key, value) == outcome(wrapped, topic, key, value), topic[:20]
    bare.close()
    wrapped.close()


def test_pathway_header_struct_edge_cases_never_raise() -> None:
    """Raw pathway bytes at every truncation of a valid context, alone or followed by eight 0xff
    bytes: only the whole context decodes (to itself); every other cut is refused, none raises."""
    from kafkahooks.datastreams import decode

    ctx = PathwayContext(0xAF611DF36FC67C4D, 1_700_000_000_000, 1_700_000_000_250)
    raw = ctx.encode()
    decoded = {cut: decode(raw[:cut]) for cut in range(len(raw) + 1)}
    assert {len(raw): ctx} == {cut: got for cut, got in decoded.items() if got is not None}
    padded = [decode(raw[:cut] + struct.pack("<Q", 2**64 - 1)) for cut in range(len(raw) + 1)]
    assert [None] * (len(raw) + 1) == padded  # trailing garbage is refused, not half-read


PRODUCE_HEADER_CASES: list[tuple[str, Any]] = [
    ("str value", [("h", "text")]),
    ("None value", [("h", None)]),
    ("1-element tuple", [("h",)]),
    ("tuple of tuples", (("h", b"v"),)),
    ("bytes key", [(b"h", b"v")]),
    ("duplicate keys", [("h", b"1"), ("h", b"2")]),
    ("keys differing in case", [("H", b"1"), ("h", b"2")]),
    ("bytearray value", [("h", bytearray(b"v"))]),
    ("10 000 headers", [(f"h{i}", b"v") for i in range(10_000)]),
    ("1 MB value", [("h", b"x" * 1_000_000)]),
    ("headers=None", None),
    ("empty list", []),
    ("a string", "h=v"),
    ("app's malformed traceparent", [("traceparent", b"\xff\xfe")]),
    ("app's pathway header", [("dd-pathway-ctx-base64", b"!!")]),
]
OUR_KEYS = {"traceparent", "dd-pathway-ctx-base64"}


def produce_each(client: str, wrapped: bool, bootstrap: str, topic: str, mode: str) -> list[str]:
    """Send one record per case, awaiting each; the outcome of each (``ok`` or the exception's name)."""
    kwargs: dict[str, Any] = {"bootstrap_servers": bootstrap, "max_request_size": 4_000_000}
    if wrapped:
        kwargs["tracing"] = mode
    if client == "kafka-python":
        from kafkahooks.kafka import KafkaProducer

        producer = (KafkaProducer if wrapped else kafka.KafkaProducer)(**kwargs)
        out: list[str] = []
        for i, (_, headers) in enumerate(PRODUCE_HEADER_CASES):
            try:
                producer.send(topic, b"%d" % i, headers=headers).get(timeout=10)
                out.append("ok")
            except Exception as exc:
                out.append(type(exc).__name__)
        producer.close()
        return out

    async def run() -> list[str]:
        from aiokafka import AIOKafkaProducer as Bare

        from kafkahooks.aiokafka import AIOKafkaProducer

        producer = (AIOKafkaProducer if wrapped else Bare)(**kwargs)
        await producer.start()
        out: list[str] = []
        try:
            for i, (_, headers) in enumerate(PRODUCE_HEADER_CASES):
                try:
                    await asyncio.wait_for(producer.send_and_wait(topic, b"%d" % i, headers=headers), 10)
                    out.append("ok")
                except Exception as exc:
                    out.append(type(exc).__name__)
        finally:
            await producer.stop()
        return out

    return asyncio.run(run())


@pytest.mark.parametrize("mode", ["off", "hooks", "records"])
@pytest.mark.parametrize("client", ["kafka-python", "aiokafka"])
def test_odd_headers_from_the_application_behave_as_with_the_bare_client(
    bootstrap: str, make_topic: Callable[..., str], client: str, mode: str
) -> None:
    """Headers the application passes to the wrapped producer: each case succeeds or fails exactly
    as with the bare client, and what is stored is what the bare client stores (plus, at most,
    kafkahooks' own propagation headers after the application's)."""
    from tests._drivers import plain_consume

    bare_topic, wrapped_topic = make_topic(1), make_topic(1)
    bare = produce_each(client, False, bootstrap, bare_topic, mode)
    wrapped = produce_each(client, True, bootstrap, wrapped_topic, mode)
    assert dict(zip([name for name, _ in PRODUCE_HEADER_CASES], bare, strict=True)) == dict(
        zip([name for name, _ in PRODUCE_HEADER_CASES], wrapped, strict=True)
    )
    assert "ok" in bare
    delivered = bare.count("ok")
    stored_bare = {r.value: list(r.headers) for r in plain_consume(bootstrap, bare_topic, count=delivered)}
    stored_wrapped = {r.value: list(r.headers) for r in plain_consume(bootstrap, wrapped_topic, count=delivered)}
    assert delivered == len(stored_bare) == len(stored_wrapped)
    assert stored_bare.keys() == stored_wrapped.keys()
    for value, headers in stored_bare.items():
        extra = stored_wrapped[value][len(headers) :]
        assert headers == stored_wrapped[value][: len(headers)]
        assert {k for k, _ in extra} <= OUR_KEYS
        assert not any(k == "traceparent" for k, _ in extra) or all(k != "traceparent" for k, _ in headers)
