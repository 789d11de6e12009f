"""Consumer lag from the high watermark every Fetch response carries: as metrics and in the
data-stream dump, for both clients, with no request of kafkahooks' own."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from kafkahooks.datastreams import DataStreams, JsonLinesExporter
from kafkahooks.metrics import MetricsHooks
from tests._drivers import CLIENTS, consume, produce
from tests.test_metrics import read

RECORDS = 200
AGE_S = 1.0


def lag_lines(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in rows if r["kind"] == "lag"]


SMALL_FETCHES = {"max_partition_fetch_bytes": 1024, "fetch_max_bytes": 1024}
"""A consumer that fetches a few small batches at a time (so it can stop while behind)."""


@pytest.mark.parametrize("client", CLIENTS)
def test_a_consumer_behind_reports_its_lag_in_records_and_seconds(
    client: str, bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """200 records in small batches, read a second later by a consumer that stops after 20: the
    lag gauges and the dump's lag line say how far behind the high watermark its last fetch left
    it (more than it has not read yet is impossible; none would be wrong) and how old that data is."""
    small = {"batch_size": 1024} if client == "kafka-python" else {"max_batch_size": 1024}
    produce(client, bootstrap, topic, [(b"x" * 100, None)] * RECORDS, **small)
    time.sleep(AGE_S)
    reader = InMemoryMetricReader()
    dump = tmp_path / "dump.jsonl"
    streams = DataStreams("lagging", exporters=[JsonLinesExporter(dump)])
    got = consume(
        client,
        bootstrap,
        topic,
        20,
        hooks=[MetricsHooks(meter_provider=MeterProvider(metric_readers=[reader]))],
        data_streams=streams,
        group_id="lagging",
        enable_auto_commit=False,
        **SMALL_FETCHES,
    )
    assert len(got) >= 20
    points = read(reader)
    (lag,) = [p for p in points["kafkahooks.consumer.lag"] if p.attributes["messaging.destination.name"] == topic]
    (time_lag,) = [
        p for p in points["kafkahooks.consumer.time_lag"] if p.attributes["messaging.destination.name"] == topic
    ]
    assert ("0", "lagging") == (
        lag.attributes["messaging.destination.partition.id"],
        lag.attributes["messaging.consumer.group.name"],
    )
    assert 0 < lag.value <= RECORDS - len(got)
    assert AGE_S * 0.9 <= time_lag.value < 60

    streams.flush(final=True)
    (line,) = lag_lines(dump)
    assert {"consumer_group:lagging", "partition:0", f"topic:{topic}", "type:kafka_lag"} <= set(line["tags"])
    assert any(t.startswith("kafka_cluster_id:") for t in line["tags"])
    assert (lag.value, time_lag.value) == (line["records"], pytest.approx(line["seconds"], abs=0.01))


@pytest.mark.parametrize("client", CLIENTS)
def test_a_consumer_at_the_end_has_no_lag(client: str, bootstrap: str, topic: str) -> None:
    """Everything read and then an empty fetch: the last reading is 0 records, 0 seconds."""
    produce(client, bootstrap, topic, [(b"x", None)] * 30)
    reader = InMemoryMetricReader()
    hooks = [MetricsHooks(meter_provider=MeterProvider(metric_readers=[reader]))]
    assert 30 == len(consume(client, bootstrap, topic, 30, hooks=hooks, data_streams=False))
    points = read(reader)
    (lag,) = [p for p in points["kafkahooks.consumer.lag"] if p.attributes["messaging.destination.name"] == topic]
    (time_lag,) = [
        p for p in points["kafkahooks.consumer.time_lag"] if p.attributes["messaging.destination.name"] == topic
    ]
    assert (0, 0.0) == (lag.value, time_lag.value)
