"""Behaviour both wrapped clients must share, one test per behaviour, run on each client (the
client-specific cases stay in test_aiokafka.py and test_kafka_python.py)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import pytest

from kafkahooks import export
from kafkahooks._guard import internal_errors
from kafkahooks.hooks import ApiKey, Compression
from kafkahooks.testing import RecordingHook
from tests._checks import assert_batches_account_for_every_record, assert_reads_follow_writes_and_timings_are_sane
from tests._drivers import CLIENTS, consume, produce
from tests._proxy import FrameProxy
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
@pytest.mark.parametrize("compression", [None, "gzip", "snappy", "lz4", "zstd"])
def test_batch_hooks_sum_to_records_sent(
    client: str, compression: str | None, bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """Produce and fetch batch hooks account for every record over 3 partitions, with the codec
    and the sizes: with every codec, the uncompressed sizes a producer reads from its own batches'
    framing (no decompression) add up to what the consumer measures by decompressing them."""
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
    codec = Compression[compression.upper()] if compression else Compression.NONE
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


@pytest.mark.parametrize("client", CLIENTS)
def test_idle_fetch_reads_in_fetch_max_wait(client: str, bootstrap: str, topic: str) -> None:
    """An idle long-poll Fetch takes about fetch_max_wait_ms to read."""
    recorder = RecordingHook()
    assert [] == consume(client, bootstrap, topic, 1, timeout_s=4, hooks=[recorder], fetch_max_wait_ms=500)
    fetch_reads = [e.time_to_read_ns / 1e6 for e in recorder.of("broker_read", ApiKey.FETCH) if e.err is None]
    assert len(fetch_reads) >= 3
    assert 450 <= statistics.median(fetch_reads) <= 1000


@pytest.mark.parametrize("client", CLIENTS)
def test_record_hooks_see_each_record_and_may_add_headers(client: str, bootstrap: str, topic: str) -> None:
    """Per-record hooks fire once per record; a header added when buffered is delivered."""

    class Stamp(RecordingHook):
        def on_produce_record_buffered(self, record: Any) -> None:
            record.headers.append(("stamp", b"1"))
            super().on_produce_record_buffered(record)

    stamp, consumed = Stamp(), RecordingHook()
    produce(client, bootstrap, topic, [(b"%d" % i, None) for i in range(10)], hooks=[stamp])
    assert 10 == len(stamp.of("produce_record_buffered"))
    assert list(range(10)) == sorted(e.record.offset for e in stamp.of("produce_record_unbuffered"))
    records = consume(client, bootstrap, topic, 10, hooks=[consumed])
    assert [b"%d" % i for i in range(10)] == [r.value for r in records]
    assert all([("stamp", b"1")] == list(r.headers) for r in records)
    assert 10 == len(consumed.of("fetch_record_buffered")) == len(consumed.of("fetch_record_unbuffered"))


@pytest.mark.parametrize("client", CLIENTS)
def test_raising_hooks_never_reach_the_client(client: str, bootstrap: str, topic: str) -> None:
    """A hook that raises on every event changes nothing for the application: every record sent,
    in order, each failure counted, no internal error."""

    class Broken(RecordingHook):
        def _add(self, event: str, **args: Any) -> None:
            raise RuntimeError(event)

    failures: list[int] = []
    sent = produce(
        client,
        bootstrap,
        topic,
        [(b"%d" % i, None) for i in range(20)],
        hooks=[Broken()],
        before_close=lambda producer: failures.append(producer.hook_dispatcher.failure_count),
    )
    assert list(range(20)) == [m.offset for m in sent]
    assert failures[0] > 0
    assert {} == internal_errors
    assert [b"%d" % i for i in range(20)] == [r.value for r in consume(client, bootstrap, topic, 20)]


@pytest.mark.parametrize("client", CLIENTS)
def test_moved_internals_leave_the_client_bare_with_one_warning(
    client: str, bootstrap: str, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the installed library lacks an internal the adapter relies on, the first wrapped
    client finds out (once per process), logs one WARNING naming it and the library version, and
    it and every later client of that library install nothing: records flow as with the bare
    client, no hook is called, nothing fails inside kafkahooks."""
    import structlog

    from kafkahooks import _instrument
    from kafkahooks._wire import aiokafka as _aiokafka
    from kafkahooks._wire import kafka_python as _kafka_python

    adapter = _aiokafka.ADAPTER if client == "aiokafka" else _kafka_python.ADAPTER
    monkeypatch.setattr(_instrument, "_moved", {})
    checks = []

    def moved() -> list[str]:
        checks.append(1)
        return ["aiokafka.conn.AIOKafkaConnection._gone"]

    monkeypatch.setattr(adapter, "check_internals", moved)
    errors = dict(internal_errors)
    recorders = [RecordingHook(), RecordingHook()]
    with structlog.testing.capture_logs() as logs:
        for recorder in recorders:
            sent = produce(client, bootstrap, topic, [(b"v", None)] * 20, hooks=[recorder], tracing="hooks")
            assert 20 == len(sent)
        got = consume(client, bootstrap, topic, 40, hooks=[RecordingHook()], tracing="hooks")
    assert 40 == len(got)
    assert [1] == checks, "checked once per process"
    assert all(recorder.of("broker_write") == [] == recorder.of("broker_connect") for recorder in recorders)
    warnings = [e for e in logs if e["event"] == "client_internals_moved"]
    assert 1 == len(warnings), logs
    assert warnings[0]["library"] == adapter.library
    assert warnings[0]["missing"] == ["aiokafka.conn.AIOKafkaConnection._gone"]
    assert warnings[0]["version"][0].isdigit()
    assert errors == internal_errors


@pytest.mark.parametrize("client", CLIENTS)
def test_a_broker_throttle_reaches_the_throttle_hook_with_its_semantics(
    client: str, proxied: tuple[str, FrameProxy]
) -> None:
    """A broker enforcing a quota writes a throttle into its responses (here the proxy, into the
    real broker's Produce responses): ``on_broker_throttle`` gets it once per response, in ns,
    from the broker the response came from, and says whether it applies after the response
    (KIP-219: Produce v6 on; both clients speak newer versions, so the client is the one to wait)."""
    bootstrap, proxy = proxied
    proxy.reset()
    proxy.throttle_ms[int(ApiKey.PRODUCE)] = 40
    recorder = RecordingHook()
    try:
        produce(client, bootstrap, f"throttled-{client}", [(b"v", None)] * 5, hooks=[recorder], linger_ms=0)
    finally:
        proxy.throttle_ms.clear()
    throttles = recorder.of("broker_throttle")
    answered = [k for k, _ in proxy.responses() if k == ApiKey.PRODUCE]
    assert answered
    assert len(throttles) == len(answered)
    assert {40_000_000} == {e.interval_ns for e in throttles}
    assert {True} == {e.throttled_after_response for e in throttles}
    assert {e.meta.node_id for e in recorder.of("broker_write", ApiKey.PRODUCE)} == {e.meta.node_id for e in throttles}
    # The batched twin, on the export worker: the same throttles, with the same semantics.
    export.flush()
    batched = [e.connection_event for e in recorder.of("connection_event") if e.kind == "throttle"]
    assert [(e.meta, e.value, e.throttled_after_response) for e in batched] == [
        (e.meta, e.interval_ns, e.throttled_after_response) for e in throttles
    ]
    assert {"kafkahooks-export"} == {e.thread for e in recorder.of("connection_event")}
