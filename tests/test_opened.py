"""Producer batches found again by their first timestamp: no first record read back from the wire."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest

from kafkahooks._selfstats import snapshot
from kafkahooks.datastreams import HEADER
from kafkahooks.hooks import ALL_KEYS, ApiKey, RequestNeeds
from kafkahooks.hooks._opened import MAX_SAME_KEY, OpenedBatches
from kafkahooks.hooks._records import Request
from tests._drivers import CLIENTS, plain_consume, produce
from tests.test_datastreams import isolated, make_streams, points, weight
from tests.test_tracing import Tracing


def evicted() -> int:
    return snapshot().get("opened_batches_evicted", 0)


def test_batches_under_one_key_are_taken_oldest_first() -> None:
    opened: OpenedBatches[str] = OpenedBatches()
    opened.add("t", 0, 5, "first")
    opened.add("t", 0, 5, "second")
    opened.add("t", 1, 5, "other partition")
    assert "first" == opened.get("t", 0, 5)  # a failed request looks, and leaves it
    assert "first" == opened.take("t", 0, 5)
    assert "second" == opened.take("t", 0, 5)
    assert opened.take("t", 0, 5) is None
    assert "other partition" == opened.take("t", 1, 5)
    assert 0 == len(opened)


def test_what_the_table_cannot_keep_is_evicted_oldest_first_and_counted() -> None:
    opened: OpenedBatches[int] = OpenedBatches(limit=3)
    before = evicted()
    for ts in range(5):
        opened.add("t", 0, ts, ts)
    assert 3 == len(opened)
    assert 2 == evicted() - before
    assert [None, None, 2, 3, 4] == [opened.take("t", 0, ts) for ts in range(5)]
    for i in range(MAX_SAME_KEY + 2):  # an application that stamps every record alike
        opened.add("t", 0, 9, i)
    assert 4 == evicted() - before
    assert 2 == opened.take("t", 0, 9)


class ProducedBatches:
    """A user plugin that keeps the batches of every Produce request it sees."""

    request_needs = RequestNeeds(ALL_KEYS, produce_batches=True)

    def __init__(self) -> None:
        self.infos: list[Any] = []

    def on_requests_finished(self, requests: Sequence[Request]) -> None:
        for r in requests:
            if r.key == ApiKey.PRODUCE and r.batches:
                self.infos.extend(r.batches.values())


@pytest.mark.parametrize("client", CLIENTS)
def test_kafkahooks_own_plugins_read_nothing_back_from_produced_batches(
    client: str, bootstrap: str, topic: str
) -> None:
    """With spans, data streams and metrics on, no produced batch's first record is copied or read
    on the I/O path, yet every record is counted in a checkpoint and every send span links to the
    application's context; records sent without a timestamp get the client's own (now)."""
    streams, capture = make_streams("no-read-back")
    tracing = Tracing()
    seen = ProducedBatches()
    before_ms = int(time.time() * 1000)
    with tracing.tracer.start_as_current_span("app") as app:
        produce(
            client,
            bootstrap,
            topic,
            [(b"v" * 100, None)] * 300,
            tracing="hooks",
            tracer_provider=tracing.provider,
            data_streams=streams,
            hooks=[seen],
            linger_ms=5,
        )
    after_ms = int(time.time() * 1000)
    records = plain_consume(bootstrap, topic, count=300)
    assert 300 == len(records) == weight(points(streams, capture), "out")
    assert seen.infos
    assert all(info.first_record is None and info.headers == () for info in seen.infos)
    assert all(before_ms <= r.timestamp <= after_ms for r in records)
    sends = tracing.spans("send")
    assert sends
    assert all([app.get_span_context().trace_id] == [x.context.trace_id for x in s.links] for s in sends)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("mode", ["batch", "record", "off"])
def test_batches_sharing_a_first_timestamp_each_record_their_checkpoint(
    client: str, mode: str, bootstrap: str, topic: str
) -> None:
    """An application that stamps its records itself opens many batches of one partition with the
    same first timestamp: each is still found, once, in the order it opened."""
    streams, capture = make_streams(f"same-timestamp-{mode}", mode)
    size = {"max_batch_size": 1024} if client == "aiokafka" else {"batch_size": 1024}
    stamp = int(time.time() * 1000) - 60_000
    isolated(
        produce,
        client,
        bootstrap,
        topic,
        [(b"v" * 100, None)] * 200,
        timestamp_ms=stamp,
        data_streams=streams,
        linger_ms=5,
        **size,
    )
    records = plain_consume(bootstrap, topic, count=200)
    assert all(stamp == r.timestamp for r in records)
    produced = points(streams, capture)
    assert 200 == len(records) == weight(produced, "out")
    if mode == "batch":  # several batches shared the key: each carried, and was counted under, its own header
        assert sum(1 for r in records if any(k == HEADER for k, _ in r.headers)) > 5
