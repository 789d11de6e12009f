"""Behaviour both wrapped clients must share, one test per behaviour, run on each client (the
client-specific cases stay in test_aiokafka.py and test_kafka_python.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kafkahooks.hooks import ApiKey, Compression
from kafkahooks.testing import RecordingHook
from tests._checks import assert_batches_account_for_every_record, assert_reads_follow_writes_and_timings_are_sane
from tests._drivers import CLIENTS, consume, produce
from tests.conftest import GROUP_TIMEOUTS

N = 300


@pytest.mark.parametrize("client", CLIENTS)
def test_each_read_follows_its_write_and_timings_are_sane(client: str, bootstrap: str, topic: str) -> None:
    """Per broker, reads answer earlier writes; e2e = write + read wait + read; nothing negative;
    one new-client and one closed event; every connection made without error."""
    recorder = RecordingHook()
    produce(client, bootstrap, topic, [(b"v" * 100, None)] * N, hooks=[recorder], linger_ms=2)
    assert_reads_follow_writes_and_timings_are_sane(recorder)
    assert len(recorder.of("broker_write", ApiKey.PRODUCE)) == len(recorder.of("broker_e2e", ApiKey.PRODUCE)) > 0
    assert 1 == len(recorder.of("new_client"))
    assert 1 == len(recorder.of("client_closed"))
    assert recorder.of("broker_connect")
    assert all(e.err is None and e.init_ns > 0 for e in recorder.of("broker_connect"))


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("compression", [None, "gzip"])
def test_batch_hooks_sum_to_records_sent(
    client: str, compression: str | None, bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """Produce and fetch batch hooks account for every record over 3 partitions, with the codec
    and the sizes."""
    topic = make_topic(3)
    producer_rec, consumer_rec = RecordingHook(), RecordingHook()
    messages = [(b"value-%d" % i * 10, None) for i in range(N)]
    produce(
        client,
        bootstrap,
        topic,
        messages,
        partitions=3,
        hooks=[producer_rec],
        linger_ms=5,
        compression_type=compression,
    )
    group: dict[str, Any] = {"group_id": topic, **(GROUP_TIMEOUTS if client == "kafka-python" else {})}
    assert N == len(consume(client, bootstrap, topic, N, partitions=3, hooks=[consumer_rec], **group))
    codec = Compression.GZIP if compression else Compression.NONE
    fetched = [e for e in consumer_rec.of("fetch_batch_read") if e.topic == topic]
    assert_batches_account_for_every_record(producer_rec.of("produce_batch_written"), fetched, N, codec, 3)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks_modes(client: str, acks: Any, bootstrap: str, topic: str) -> None:
    """acks=0 writes with no read and still ends each request (with nothing read); acks=1/all
    read every Produce; the batch hooks count every record either way."""
    recorder = RecordingHook()
    produce(client, bootstrap, topic, [(b"v", None)] * 50, hooks=[recorder], acks=acks, linger_ms=5)
    writes = recorder.of("broker_write", ApiKey.PRODUCE)
    reads = recorder.of("broker_read", ApiKey.PRODUCE)
    assert len(writes) > 0
    assert (0 if acks == 0 else len(writes)) == len(reads)
    ends = recorder.of("broker_e2e", ApiKey.PRODUCE)
    assert len(writes) == len(ends)
    assert 50 == sum(e.metrics.num_records for e in recorder.of("produce_batch_written"))
    if acks == 0:
        assert all(e.e2e.bytes_read == 0 for e in ends)
