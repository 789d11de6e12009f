"""A broker that refuses record headers (a topic on a pre-0.11 message format): kafkahooks stops
adding them and resends the refused batch without its own, so every record is still delivered,
exactly as the bare client delivers it.

The test broker stores v2 batches only, so the refusal is made on the wire: a proxy in front of it
answers every Produce request that carries a record header with UNSUPPORTED_FOR_MESSAGE_FORMAT, the
error a real broker gives (``Magic v1 does not support record headers``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import kafka
import pytest

from kafkahooks._selfstats import snapshot
from tests._drivers import CLIENTS, plain_consume
from tests._proxy import FrameProxy

Outcome = list[str]


@pytest.fixture
def refusing(proxied: tuple[str, FrameProxy]) -> Iterator[tuple[str, str, FrameProxy]]:
    """(bootstrap, a fresh topic, the proxy) with the proxy refusing record headers."""
    from kafka.admin import KafkaAdminClient, NewTopic

    bootstrap, proxy = proxied
    topic = f"refusal-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    proxy.refuse_headers = True
    proxy.refusals = 0
    yield bootstrap, topic, proxy
    proxy.refuse_headers = False


def send_all(client: str, wrapped: bool, bootstrap: str, topic: str, messages: list[Any], **kwargs: Any) -> Outcome:
    """Send ``(value, headers)`` pairs, awaiting each (one batch each); the outcome of every send."""
    if client == "kafka-python":
        from kafkahooks.kafka import KafkaProducer

        producer = (KafkaProducer if wrapped else kafka.KafkaProducer)(bootstrap_servers=bootstrap, **kwargs)
        out: Outcome = []
        for value, headers in messages:
            try:
                producer.send(topic, value, headers=headers).get(timeout=15)
                out.append("ok")
            except Exception as exc:
                out.append(type(exc).__name__)
        producer.close()
        return out

    async def run() -> Outcome:
        from aiokafka import AIOKafkaProducer as Bare

        from kafkahooks.aiokafka import AIOKafkaProducer

        producer = (AIOKafkaProducer if wrapped else Bare)(bootstrap_servers=bootstrap, **kwargs)
        await producer.start()
        out: Outcome = []
        try:
            for value, headers in messages:
                try:
                    await asyncio.wait_for(producer.send_and_wait(topic, value, headers=headers), 15)
                    out.append("ok")
                except Exception as exc:
                    out.append(type(exc).__name__)
        finally:
            await producer.stop()
        return out

    return asyncio.run(run())


@pytest.mark.parametrize("compression", [None, "gzip"])
@pytest.mark.parametrize("client", CLIENTS)
def test_refused_headers_are_dropped_and_every_record_delivered(
    refusing: tuple[str, str, FrameProxy], client: str, compression: str | None
) -> None:
    """With ``tracing="hooks"`` (traceparent and pathway on each batch) every send succeeds, as
    with the bare client; the stored records carry no header; the producer stops injecting after the
    first refusal and counts it."""
    bootstrap, topic, proxy = refusing
    messages = [(b"%d" % i, None) for i in range(20)]
    before = snapshot()

    assert ["ok"] * 20 == send_all(client, False, bootstrap, topic, messages, compression_type=compression)
    assert 0 == proxy.refusals
    wrapped = send_all(client, True, bootstrap, topic, messages, compression_type=compression, tracing="hooks")
    assert ["ok"] * 20 == wrapped
    assert 1 == proxy.refusals  # one batch carried our headers; every later one went without

    stored = plain_consume(bootstrap, topic, count=40)
    assert [v for v, _ in messages] * 2 == [r.value for r in stored]
    assert all(not r.headers for r in stored)
    after = snapshot()
    assert before.get("batch_headers_disabled", 0) + 1 == after["batch_headers_disabled"]
    assert before.get("batches_resent_without_headers", 0) + 1 == after["batches_resent_without_headers"]


@pytest.mark.parametrize("client", CLIENTS)
def test_application_headers_fail_as_with_the_bare_client(refusing: tuple[str, str, FrameProxy], client: str) -> None:
    """Records with the application's own headers are refused for the bare client; wrapped, they
    fail the same way (kafka-python's idempotent producer then fails what follows too, wrapped or
    not), and kafkahooks never strips the application's headers to make them pass."""
    bootstrap, topic, _ = refusing
    messages = [(b"a", [("app", b"1")]), (b"b", None), (b"c", [("app", b"2"), ("traceparent", b"mine")])]
    bare = send_all(client, False, bootstrap, topic, messages)
    wrapped = send_all(client, True, bootstrap, topic, messages, tracing="hooks")
    assert "ok" != bare[0]
    assert bare == wrapped
    delivered = [value for (value, _), outcome in zip(messages, bare, strict=True) if outcome == "ok"]
    assert delivered * 2 == [r.value for r in plain_consume(bootstrap, topic, count=2 * len(delivered))]


def test_an_unknown_server_error_takes_two_refusals_to_stop_injection() -> None:
    """UNSUPPORTED_FOR_MESSAGE_FORMAT names headers as the cause; UNKNOWN_SERVER_ERROR might be a
    restarting broker, so injection stops only at the second."""
    import kafka.errors

    from kafkahooks._wire._rejected import HeaderGate

    clear = HeaderGate()
    clear.refused(kafka.errors.UnsupportedForMessageFormatError())
    assert not clear.open
    vague = HeaderGate()
    vague.refused(kafka.errors.UnknownError())
    assert vague.open
    vague.refused(kafka.errors.UnknownError())
    assert not vague.open
