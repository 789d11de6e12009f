"""What kafkahooks sends, as Datadog's test agent receives it: data-stream stats at
``/v0.1/pipeline_stats`` and, through OpenTelemetry's own OTLP/HTTP exporters, the per-request
spans and metrics of ``tracing="hooks"``."""

from __future__ import annotations

from typing import Any

import pytest
from ddsketch.pb.ddsketch_pb2 import DDSketch as DDSketchMessage
from ddsketch.pb.proto import DDSketchProto
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from kafkahooks._selfstats import snapshot
from kafkahooks.datastreams import DatadogAgentExporter, DataStreams
from tests._drivers import consume, produce
from tests.interop.conftest import DatadogTestAgent

OUT_ORDERS = ("direction:out", "topic:orders", "type:kafka")


def test_the_agent_accepts_kafkahooks_pipeline_stats(agent: DatadogTestAgent) -> None:
    """A flushed bucket reaches the agent as one gzip-compressed msgpack payload: service, env,
    hostname and language at the top, the checkpoint's tags and hashes, sketches that parse with
    ddsketch (40 records weighed), and the produce backlog."""
    exporter = DatadogAgentExporter(agent.url, hostname="host-1")
    ds = DataStreams("svc-a", "prod", exporters=[exporter])
    ctx = ds.checkpoint(OUT_ORDERS, weight=40, payload_bytes=100.0)
    ds.backlog(("partition:0", "topic:orders", "type:kafka_produce"), 41)
    ds.flush(final=True)
    assert 1 == exporter.sent
    ((headers, _),) = [(r["headers"], r) for r in agent.requests("/v0.1/pipeline_stats")]
    assert "application/msgpack" == headers["Content-Type"]
    (payload,) = agent.pipeline_stats()
    assert ("svc-a", "prod", "host-1", "python") == (
        payload["Service"],
        payload["Env"],
        payload["Hostname"],
        payload["Lang"],
    )
    (bucket,) = payload["Stats"]
    (point,) = bucket["Stats"]
    assert (list(OUT_ORDERS), ctx.hash, 0) == (point["EdgeTags"], point["Hash"], point["ParentHash"])
    message = DDSketchMessage()
    message.ParseFromString(point["PayloadSize"])
    assert 40 == DDSketchProto.from_proto(message).count
    assert pytest.approx(1.015625) == message.mapping.gamma
    assert [{"Tags": ["partition:0", "topic:orders", "type:kafka_produce"], "Value": 41}] == bucket["Backlogs"]


def test_an_agent_without_the_endpoint_stops_the_sending(agent: DatadogTestAgent) -> None:
    """An agent answering 404 for pipeline stats (older than 7.34; here a path the test agent does
    not serve) is not sent to again, and what could not be sent is counted."""
    exporter = DatadogAgentExporter(agent.url + "/too-old")
    ds = DataStreams("svc", "prod", exporters=[exporter])
    before = snapshot().get("datastreams_agent_buckets_dropped", 0)
    for _ in range(2):
        ds.checkpoint(OUT_ORDERS)
        ds.flush(final=True)
    assert exporter.disabled
    assert 0 == exporter.sent
    assert snapshot().get("datastreams_agent_buckets_dropped", 0) >= before + 2


def spans_in(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        span
        for request in traces
        for resource in request.get("resource_spans", [])
        for scope in resource.get("scope_spans", [])
        for span in scope.get("spans", [])
    ]


def metrics_in(requests: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for request in requests:
        for resource in request.get("resource_metrics", []):
            for scope in resource.get("scope_metrics", []):
                for metric in scope.get("metrics", []):
                    found.setdefault(metric["name"], []).append(metric)
    return found


def attributes(item: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in item.get("attributes", [])}


def test_otlp_spans_and_metrics_reach_the_collector(agent: DatadogTestAgent, bootstrap: str, topic: str) -> None:
    """tracing="hooks" with OpenTelemetry's OTLP/HTTP exporters into the test agent's OTLP
    receiver: a "send" span per Produce request and a "poll" span per Fetch that returned records,
    with the semantic-convention attributes (the cluster id included), and the operation-duration
    histogram."""
    resource = Resource.create({"service.name": "kh-otlp"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{agent.otlp_url}/v1/traces")))
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{agent.otlp_url}/v1/metrics"), export_interval_millis=60_000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    telemetry: dict[str, Any] = {
        "tracing": "hooks",
        "tracer_provider": tracer_provider,
        "meter_provider": meter_provider,
        "data_streams": DataStreams("kh-otlp", exporters=[]),
    }
    produce("aiokafka", bootstrap, topic, [(b"v", None)] * 20, **telemetry)
    assert 20 == len(consume("aiokafka", bootstrap, topic, 20, **telemetry))
    assert tracer_provider.force_flush(10_000)
    assert meter_provider.force_flush(10_000)
    tracer_provider.shutdown()
    meter_provider.shutdown()

    def received() -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        spans = spans_in(agent.get("/test/session/traces", agent.otlp_url))
        return spans, metrics_in(agent.get("/test/session/metrics", agent.otlp_url))

    spans, metrics = agent.wait_for(lambda: all(received()) and received())
    sends = [s for s in spans if s["name"] == f"send {topic}"]
    polls = [s for s in spans if s["name"] == f"poll {topic}"]
    assert sends, sorted({s["name"] for s in spans})
    assert polls, sorted({s["name"] for s in spans})
    assert {"SPAN_KIND_CLIENT"} == {s["kind"] for s in sends + polls}  # batch operations (semconv 1.44)
    sent = attributes(sends[0])
    assert ("kafka", "send", topic) == (
        sent["messaging.system"],
        sent["messaging.operation.name"],
        sent["messaging.destination.name"],
    )
    assert sent["messaging.kafka.cluster.id"]  # detected from the client's metadata
    assert 20 == sum(int(attributes(s).get("messaging.batch.message_count", 1)) for s in sends)
    (duration,) = metrics["messaging.client.operation.duration"][:1]
    points = duration["histogram"]["data_points"]
    assert {"send", "poll"} <= {attributes(p)["messaging.operation.name"] for p in points}
    assert all(int(p["count"]) > 0 for p in points)
