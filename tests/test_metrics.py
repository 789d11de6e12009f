"""Metrics from the hooks, against the real broker, read with the SDK's in-memory metric reader."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from kafkahooks import export
from kafkahooks.hooks import ApiKey, key_name
from kafkahooks.metrics import MetricLabels, MetricsHooks
from kafkahooks.testing import RecordingHook
from tests._drivers import CLIENTS, consume, produce


def read(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Data points by metric name, after the export worker has recorded everything queued."""
    export.flush()
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def total(points: list[Any], **attrs: Any) -> float:
    return sum(
        p.value if hasattr(p, "value") else p.count
        for p in points
        if all(p.attributes.get(k) == v for k, v in attrs.items())
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_counts_match_requests_and_records(client: str, bootstrap: str, make_topic: Callable[..., str]) -> None:
    """Sent and consumed message counts equal the records; request histograms count each request
    under its own key only."""
    topic = make_topic(2)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    recorder = RecordingHook()
    produce(
        client,
        bootstrap,
        topic,
        [(b"v" * 64, None)] * 300,
        tracing="hooks",
        meter_provider=provider,
        hooks=[recorder],
        linger_ms=5,
        data_streams=False,
    )
    consume(client, bootstrap, topic, 300, partitions=2, tracing="hooks", meter_provider=provider, data_streams=False)
    points = read(reader)

    assert 300 == total(points["messaging.client.sent.messages"], **{"messaging.destination.name": topic})
    assert 300 == total(points["messaging.client.consumed.messages"], **{"messaging.destination.name": topic})
    assert 300 == total(points["kafkahooks.batch.records"], **{"messaging.operation.name": "send"})
    assert 300 == total(points["kafkahooks.batch.records"], **{"messaging.operation.name": "fetch"})

    produce_requests = len(recorder.of("broker_e2e", ApiKey.PRODUCE))
    assert not any(name.startswith("kafkahooks.request.") for name in points), "per-key timings are opt-in"
    assert "kafkahooks.batch.size" not in points, "the batch-size histogram is opt-in"
    sends = [
        p for p in points["messaging.client.operation.duration"] if p.attributes["messaging.operation.name"] == "send"
    ]
    assert produce_requests == sum(p.count for p in sends)
    assert {topic} == {p.attributes["messaging.destination.name"] for p in sends}
    polls = [
        p for p in points["messaging.client.operation.duration"] if p.attributes["messaging.operation.name"] == "poll"
    ]
    assert {topic} == {p.attributes["messaging.destination.name"] for p in polls}
    assert all("error.type" not in p.attributes for p in polls), "a normal stop is not a failed poll"
    assert all(p.attributes["messaging.system"] == "kafka" for p in points["messaging.client.operation.duration"])
    assert 0 == total(points.get("kafkahooks.broker.read_errors", [])), "a normal stop loses no response"
    produce_key = key_name(ApiKey.PRODUCE)
    assert total(points["kafkahooks.broker.bytes_written"], **{"kafkahooks.request.key": produce_key}) > 300 * 64
    assert total(points["kafkahooks.broker.connects"]) >= 2
    provider.shutdown()


def test_label_sets_follow_the_configuration(bootstrap: str, topic: str) -> None:
    """broker="none", topic=False leave out broker and destination labels; client_id=True adds it."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    labels = MetricLabels(broker="none", topic=False, client_id=True, detailed_timings=True)
    hooks = MetricsHooks(meter_provider=provider, labels=labels)
    produce("kafka-python", bootstrap, topic, [(b"v", None)] * 20, hooks=[hooks], client_id="labelled")
    points = read(reader)
    for name in ("kafkahooks.request.duration", "kafkahooks.request.write_wait", "kafkahooks.request.time_to_write"):
        for p in points[name]:
            assert {"kafkahooks.request.key"} == set(p.attributes) - {"error.type", "messaging.client.id"}
    for p in points["messaging.client.sent.messages"]:
        assert "messaging.destination.name" not in p.attributes
        assert "labelled" == p.attributes["messaging.client.id"]
    assert 20 == total(points["messaging.client.sent.messages"])
    provider.shutdown()


def test_self_metrics_report_drops(bootstrap: str, topic: str) -> None:
    """A buffer too small for the traffic drops, and kafkahooks.self.dropped says how much."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    tiny = MetricsHooks(meter_provider=provider, capacity=1)
    produce("kafka-python", bootstrap, topic, [(b"v", None)] * 200, hooks=[tiny], linger_ms=0, acks=1)
    assert tiny.dropped > 0
    points = read(reader)
    dropped = [p for p in points["kafkahooks.self.dropped"] if p.attributes["kafkahooks.buffer"] == "requests:producer"]
    assert dropped
    assert max(p.value for p in dropped) >= tiny.dropped
    assert "kafkahooks.self.events" in points
    provider.shutdown()


def test_lag_past_the_topic_cap_keeps_one_attribute_set_per_partition() -> None:
    """A consumer reading more topics than ``max_topics``: lag past the cap goes to the topic-less
    series of its partition, and the cached attribute sets stay one per labelled topic and
    partition (they were one per topic read, however many)."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    plugin = MetricsHooks(meter_provider=provider, labels=MetricLabels(max_topics=2))
    for round_ in range(3):
        plugin._record_lags({(f"t{i}", p): (round_ + 1, 0.5) for i in range(50) for p in range(2)})
    points = read(reader)["kafkahooks.consumer.lag"]
    labelled = {p.attributes.get("messaging.destination.name") for p in points} - {None}
    assert 2 == len(labelled)
    assert {"0", "1"} == {p.attributes["messaging.destination.partition.id"] for p in points}
    assert len(plugin._partition_attrs) <= (2 + 1) * 2
    provider.shutdown()
